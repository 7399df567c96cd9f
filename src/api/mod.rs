//! Request handlers, one module per API, and dispatch by API key.

pub mod alter_configs;
pub mod alter_partition_reassignments;
pub mod alter_replica_log_dirs;
pub mod api_versions;
pub mod config_resource;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_quorum;
pub mod describe_topic_partitions;
pub mod elect_leaders;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leader_epoch;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod list_partition_reassignments;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod raft_voters;
pub mod storage_errors;
pub mod sync_group;
pub mod unregister_broker;

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use kafka_protocol::messages::{RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use crate::broker::context::ShardCtx;
use crate::protocol::frame::{self, Frame, Request};

/// A response on its way: an encoded frame, or nothing (acks=0 produce).
pub type Pending = Pin<Box<dyn Future<Output = Option<Frame>>>>;

/// Starts handling `req` from the client at `client_host` (Kafka's
/// "/address" form). Work whose order matters (checking and appending
/// records) is done when this returns; the rest happens when the result is
/// polled.
pub async fn dispatch(ctx: &Rc<ShardCtx>, req: Request, client_host: &Rc<str>) -> Pending {
    let (key, version, correlation_id) = (req.api_key, req.version, req.header.correlation_id);
    let client_id = req.header.client_id.as_deref().unwrap_or_default().to_string();
    let client_host = client_host.clone();
    let ctx = ctx.clone();
    let respond = move |body: ResponseKind| frame::encode_response(key, version, correlation_id, &body).map(Frame::One);
    match req.body {
        RequestKind::Produce(r) => {
            let checked = produce::check(&ctx, r).await;
            let pending = produce::handle(&ctx, checked);
            Box::pin(async move { pending.await.and_then(|r| respond(r.into())) })
        }
        RequestKind::Fetch(r) => Box::pin(async move {
            let (resp, stand_ins) = fetch::handle(&ctx, r, version).await;
            frame::encode_response_pieces(key, version, correlation_id, &resp, stand_ins)
        }),
        RequestKind::ListOffsets(r) => {
            Box::pin(async move { respond(list_offsets::handle(&ctx, r, version).await.into()) })
        }
        RequestKind::Metadata(r) => Box::pin(async move { respond(metadata::handle(&ctx, r, version).await.into()) }),
        RequestKind::ApiVersions(_) => Box::pin(async move { respond(api_versions::response().into()) }),
        RequestKind::CreateTopics(r) => Box::pin(async move { respond(create_topics::handle(&ctx, r).await.into()) }),
        RequestKind::DeleteTopics(r) => Box::pin(async move { respond(delete_topics::handle(&ctx, r).await.into()) }),
        RequestKind::CreatePartitions(r) => {
            Box::pin(async move { respond(create_partitions::handle(&ctx, r).await.into()) })
        }
        RequestKind::DescribeCluster(r) => Box::pin(async move { respond(describe_cluster::handle(&ctx, r).into()) }),
        RequestKind::DescribeConfigs(r) => Box::pin(async move { respond(describe_configs::handle(&ctx, r).into()) }),
        RequestKind::DescribeQuorum(r) => {
            Box::pin(async move { respond(describe_quorum::handle(&ctx, r).await.into()) })
        }
        RequestKind::OffsetForLeaderEpoch(r) => {
            let answer = offset_for_leader_epoch::handle(&ctx, r);
            Box::pin(async move { respond(answer.into()) })
        }
        RequestKind::AddRaftVoter(r) => Box::pin(async move { respond(raft_voters::add(&ctx, r).await.into()) }),
        RequestKind::RemoveRaftVoter(r) => Box::pin(async move { respond(raft_voters::remove(&ctx, r).await.into()) }),
        RequestKind::AlterPartitionReassignments(r) => {
            Box::pin(async move { respond(alter_partition_reassignments::handle(&ctx, r).await.into()) })
        }
        RequestKind::ListPartitionReassignments(r) => {
            Box::pin(async move { respond(list_partition_reassignments::handle(&ctx, r).into()) })
        }
        RequestKind::ElectLeaders(r) => {
            Box::pin(async move { respond(elect_leaders::handle(&ctx, r, version).await.into()) })
        }
        RequestKind::UnregisterBroker(r) => {
            Box::pin(async move { respond(unregister_broker::handle(&ctx, r).await.into()) })
        }
        RequestKind::DeleteRecords(r) => Box::pin(async move { respond(delete_records::handle(&ctx, r).await.into()) }),
        RequestKind::InitProducerId(r) => {
            Box::pin(async move { respond(init_producer_id::handle(&ctx, r).await.into()) })
        }
        RequestKind::IncrementalAlterConfigs(r) => {
            Box::pin(async move { respond(incremental_alter_configs::handle(&ctx, r).await.into()) })
        }
        RequestKind::FindCoordinator(r) => {
            Box::pin(async move { respond(find_coordinator::handle(&ctx, r, version).await.into()) })
        }
        RequestKind::JoinGroup(r) => {
            Box::pin(
                async move { respond(join_group::handle(&ctx, r, version, &client_id, &client_host).await.into()) },
            )
        }
        RequestKind::SyncGroup(r) => {
            Box::pin(async move { respond(sync_group::handle(&ctx, r, version).await.into()) })
        }
        RequestKind::Heartbeat(r) => Box::pin(async move { respond(heartbeat::handle(&ctx, r).await.into()) }),
        RequestKind::LeaveGroup(r) => {
            Box::pin(async move { respond(leave_group::handle(&ctx, r, version).await.into()) })
        }
        RequestKind::OffsetCommit(r) => Box::pin(async move { respond(offset_commit::handle(&ctx, r).await.into()) }),
        RequestKind::OffsetFetch(r) => {
            Box::pin(async move { respond(offset_fetch::handle(&ctx, r, version).await.into()) })
        }
        RequestKind::DescribeGroups(r) => {
            Box::pin(async move { respond(describe_groups::handle(&ctx, r, version).await.into()) })
        }
        RequestKind::ListGroups(r) => Box::pin(async move { respond(list_groups::handle(&ctx, r).await.into()) }),
        RequestKind::DeleteGroups(r) => Box::pin(async move { respond(delete_groups::handle(&ctx, r).await.into()) }),
        RequestKind::OffsetDelete(r) => Box::pin(async move { respond(offset_delete::handle(&ctx, r).await.into()) }),
        RequestKind::AlterConfigs(r) => Box::pin(async move { respond(alter_configs::handle(&ctx, r).await.into()) }),
        RequestKind::DescribeTopicPartitions(r) => {
            Box::pin(async move { respond(describe_topic_partitions::handle(&ctx, r).into()) })
        }
        RequestKind::DescribeLogDirs(r) => {
            Box::pin(async move { respond(describe_log_dirs::handle(&ctx, r).await.into()) })
        }
        RequestKind::AlterReplicaLogDirs(r) => {
            Box::pin(async move { respond(alter_replica_log_dirs::handle(&ctx, r).into()) })
        }
        other => {
            // The version table only admits the APIs above; anything else is a
            // bug in that table, answered by closing the connection.
            tracing::error!(?key, "request decoded for an API without a handler: {:?}", std::mem::discriminant(&other));
            Box::pin(async { None })
        }
    }
}

/// A `StrBytes` from any string.
pub fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}
