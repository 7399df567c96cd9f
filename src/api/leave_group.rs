//! LeaveGroup: one member (v0-2) or a batch of members (v3+) leave.

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use crate::broker::context::ShardCtx;

/// Answers LeaveGroup.
pub async fn handle(ctx: &ShardCtx, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    let leaving: Vec<(String, Option<String>)> = if version >= 3 {
        req.members
            .iter()
            .map(|m| (m.member_id.to_string(), m.group_instance_id.as_ref().map(|s| s.to_string())))
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    match ctx.groups.leave(ctx, &req.group_id, &leaving).await {
        Err(code) => LeaveGroupResponse::default().with_error_code(code.code()),
        Ok(codes) if version < 3 => LeaveGroupResponse::default().with_error_code(codes[0].code()),
        Ok(codes) => {
            let members = req
                .members
                .into_iter()
                .zip(codes)
                .map(|(m, c)| {
                    MemberResponse::default()
                        .with_member_id(m.member_id)
                        .with_group_instance_id(m.group_instance_id)
                        .with_error_code(c.code())
                })
                .collect();
            LeaveGroupResponse::default().with_members(members)
        }
    }
}
