//! DescribeGroups: state, protocol and members of each group.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};

use super::str_bytes;
use crate::broker::context::ShardCtx;
use crate::group::state::GroupState;
use crate::protocol::ErrorCode;

/// Answers DescribeGroups. An unknown group is "Dead" (v6 adds GROUP_ID_NOT_FOUND).
pub async fn handle(ctx: &ShardCtx, req: DescribeGroupsRequest, version: i16) -> DescribeGroupsResponse {
    let mut groups = Vec::with_capacity(req.groups.len());
    for id in req.groups {
        let entry = DescribedGroup::default().with_group_id(id.clone()).with_authorized_operations(i32::MIN);
        let described = match ctx.groups.describe(ctx, &id).await {
            Err(code) => entry.with_error_code(code.code()).with_group_state(str_bytes(GroupState::Dead.name())),
            Ok(None) => {
                let e = entry.with_group_state(str_bytes(GroupState::Dead.name()));
                if version >= 6 { e.with_error_code(ErrorCode::GroupIdNotFound.code()) } else { e }
            }
            Ok(Some(g)) => {
                let members = g
                    .members
                    .into_iter()
                    .map(|(member, instance, client, host, meta, asg)| {
                        DescribedGroupMember::default()
                            .with_member_id(str_bytes(member))
                            .with_group_instance_id(if version >= 4 { instance.map(str_bytes) } else { None })
                            .with_client_id(str_bytes(client))
                            .with_client_host(str_bytes(host))
                            .with_member_metadata(meta)
                            .with_member_assignment(asg)
                    })
                    .collect();
                entry
                    .with_group_state(str_bytes(g.state.name()))
                    .with_protocol_type(str_bytes(g.protocol_type))
                    .with_protocol_data(str_bytes(g.protocol))
                    .with_members(members)
            }
        };
        groups.push(described);
    }
    DescribeGroupsResponse::default().with_groups(groups)
}
