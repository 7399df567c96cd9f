//! DeleteGroups: an empty group and its committed offsets go (tombstones).

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use crate::broker::context::ShardCtx;

/// Answers DeleteGroups.
pub async fn handle(ctx: &ShardCtx, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(req.groups_names.len());
    for id in req.groups_names {
        let code = ctx.groups.delete(ctx, &id).await;
        results.push(DeletableGroupResult::default().with_group_id(id).with_error_code(code.code()));
    }
    DeleteGroupsResponse::default().with_results(results)
}
