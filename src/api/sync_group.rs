//! SyncGroup: the leader hands in the assignment, every member gets its part.

use bytes::Bytes;
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use super::str_bytes;
use crate::broker::context::ShardCtx;
use crate::group::coordinator::SyncRequest;
use crate::protocol::ErrorCode;

/// Answers SyncGroup once the generation's assignment is stored.
pub async fn handle(ctx: &ShardCtx, req: SyncGroupRequest, version: i16) -> SyncGroupResponse {
    let limit = ctx.setup.settings.load().group_member_metadata_max_bytes();
    if let Some(a) = req.assignments.iter().find(|a| a.assignment.len() > limit) {
        // Members keep their assignment until the next rebalance.
        tracing::warn!(
            group = req.group_id.as_str(),
            member = a.member_id.as_str(),
            bytes = a.assignment.len(),
            limit,
            "refusing a SyncGroup: an assignment past group.member.metadata.max.bytes"
        );
        return SyncGroupResponse::default().with_error_code(ErrorCode::InvalidRequest.code());
    }
    let sync = SyncRequest {
        group_id: req.group_id.to_string(),
        generation: req.generation_id,
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.map(|s| s.to_string()),
        protocol_type: req.protocol_type.map(|s| s.to_string()),
        protocol_name: req.protocol_name.map(|s| s.to_string()),
        // Copies: members keep their assignment until the next rebalance, and
        // a slice would keep the leader's whole request body alive with it.
        assignments: req
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), Bytes::copy_from_slice(&a.assignment)))
            .collect(),
    };
    let r = ctx.groups.sync(ctx, sync).await;
    let v5 = version >= 5;
    SyncGroupResponse::default()
        .with_error_code(r.error.code())
        .with_protocol_type(if v5 { r.protocol_type.map(str_bytes) } else { None })
        .with_protocol_name(if v5 { r.protocol_name.map(str_bytes) } else { None })
        .with_assignment(r.assignment)
}
