//! ListGroups: the groups this node coordinates, filtered by state (v4+)
//! and type (v5+). Clients ask every node and merge the answers.

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use super::str_bytes;
use crate::broker::context::ShardCtx;

/// Answers ListGroups.
pub async fn handle(ctx: &ShardCtx, req: ListGroupsRequest) -> ListGroupsResponse {
    let wants_type = req.types_filter.is_empty() || req.types_filter.iter().any(|t| t.eq_ignore_ascii_case("classic"));
    let groups = ctx
        .groups
        .list(ctx)
        .await
        .into_iter()
        .filter(|_| wants_type)
        .filter(|(_, _, state)| {
            req.states_filter.is_empty() || req.states_filter.iter().any(|s| s.eq_ignore_ascii_case(state.name()))
        })
        .map(|(id, protocol_type, state)| {
            ListedGroup::default()
                .with_group_id(GroupId(str_bytes(id)))
                .with_protocol_type(str_bytes(protocol_type))
                .with_group_state(str_bytes(state.name()))
                .with_group_type(str_bytes("classic"))
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}
