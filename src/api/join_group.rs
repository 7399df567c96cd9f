//! JoinGroup: a member joins (or rejoins) and waits for the rebalance.

use bytes::Bytes;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};

use super::str_bytes;
use crate::broker::context::ShardCtx;
use crate::group::coordinator::JoinRequest;
use crate::protocol::ErrorCode;

/// Answers JoinGroup once the member's rebalance completes.
pub async fn handle(
    ctx: &ShardCtx,
    req: JoinGroupRequest,
    version: i16,
    client_id: &str,
    client_host: &str,
) -> JoinGroupResponse {
    let limit = ctx.setup.settings.load().group_member_metadata_max_bytes();
    let metadata: usize = req.protocols.iter().map(|p| p.metadata.len()).sum();
    if metadata > limit {
        // The group keeps every member's metadata until its next rebalance.
        tracing::warn!(
            group = req.group_id.as_str(),
            metadata,
            limit,
            "refusing a JoinGroup: metadata past group.member.metadata.max.bytes"
        );
        return JoinGroupResponse::default()
            .with_error_code(ErrorCode::InvalidRequest.code())
            .with_generation_id(-1)
            .with_protocol_name((version < 7).then(|| str_bytes("")))
            .with_member_id(req.member_id);
    }
    let join = JoinRequest {
        group_id: req.group_id.to_string(),
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.map(|s| s.to_string()),
        client_id: client_id.to_string(),
        client_host: client_host.to_string(),
        session_timeout_ms: req.session_timeout_ms,
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms: if version >= 1 { req.rebalance_timeout_ms } else { req.session_timeout_ms },
        protocol_type: req.protocol_type.to_string(),
        // Copies: the group keeps them until the next rebalance, and a slice
        // would keep the whole request body (a pooled buffer) alive with them.
        protocols: req
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), Bytes::copy_from_slice(&p.metadata)))
            .collect(),
        require_known_member_id: version >= 4,
    };
    let r = ctx.groups.join(ctx, join).await;
    let members = r
        .members
        .into_iter()
        .map(|(id, inst, meta)| {
            JoinGroupResponseMember::default()
                .with_member_id(str_bytes(id))
                .with_group_instance_id(if version >= 5 { inst.map(str_bytes) } else { None })
                .with_metadata(meta)
        })
        .collect();
    JoinGroupResponse::default()
        .with_error_code(r.error.code())
        .with_generation_id(r.generation)
        .with_protocol_type(if version >= 7 { r.protocol_type.map(str_bytes) } else { None })
        .with_protocol_name(r.protocol_name.map(str_bytes).or_else(|| (version < 7).then(|| str_bytes(""))))
        .with_leader(str_bytes(r.leader))
        .with_skip_assignment(version >= 9 && r.skip_assignment)
        .with_member_id(str_bytes(r.member_id))
        .with_members(members)
}
