//! Heartbeat: keeps a member's session alive.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use crate::broker::context::ShardCtx;

/// Answers Heartbeat.
pub async fn handle(ctx: &ShardCtx, req: HeartbeatRequest) -> HeartbeatResponse {
    let code = ctx
        .groups
        .heartbeat(ctx, &req.group_id, req.generation_id, &req.member_id, req.group_instance_id.as_deref())
        .await;
    HeartbeatResponse::default().with_error_code(code.code())
}
