//! DescribeQuorum (KIP-595, KIP-853): the metadata quorum, as
//! `kafka-metadata-quorum.sh describe --status` shows it. Today the quorum is
//! the embedded one: this broker's controller is its only voter (node 0, the
//! `controller_id` DescribeCluster reports) and leads it at epoch 1, with no
//! election ever held; the high watermark and the voter's log end are the
//! number of records in the metadata log, all committed once written. The
//! openraft quorum of issue 23 will answer from its Raft state instead.

use kafka_protocol::messages::describe_quorum_response::{Listener, Node, PartitionData, ReplicaState, TopicData};
use kafka_protocol::messages::{BrokerId, DescribeQuorumRequest, DescribeQuorumResponse};

use super::str_bytes;
use crate::broker::context::ShardCtx;
use crate::clock::now_ms;
use crate::protocol::ErrorCode;

/// Kafka's name for the metadata log's topic (one partition, 0).
pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// The one voter of the embedded quorum.
const VOTER: i32 = 0;

/// The embedded quorum's leader epoch: it has had one leader, ever.
const EPOCH: i32 = 1;

/// Answers DescribeQuorum.
pub fn handle(ctx: &ShardCtx, req: DescribeQuorumRequest) -> DescribeQuorumResponse {
    let log_end = ctx.setup.snapshot.load().log_end;
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let known = t.topic_name.as_str() == METADATA_TOPIC;
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| match known && p.partition_index == 0 {
                    true => quorum_partition(log_end),
                    false => PartitionData::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(ErrorCode::UnknownTopicOrPartition.code()),
                })
                .collect();
            TopicData::default().with_topic_name(t.topic_name).with_partitions(partitions)
        })
        .collect();
    let listener = Listener::default()
        .with_name(str_bytes("PLAINTEXT".to_string()))
        .with_host(str_bytes(ctx.setup.endpoints.advertised_host.clone()))
        .with_port(ctx.setup.endpoints.port(VOTER) as u16);
    DescribeQuorumResponse::default()
        .with_topics(topics)
        .with_nodes(vec![Node::default().with_node_id(BrokerId(VOTER)).with_listeners(vec![listener])])
}

/// Partition 0 of the metadata topic: the one voter, caught up.
fn quorum_partition(log_end: i64) -> PartitionData {
    let now = now_ms();
    let voter = ReplicaState::default()
        .with_replica_id(BrokerId(VOTER))
        .with_log_end_offset(log_end)
        .with_last_fetch_timestamp(now)
        .with_last_caught_up_timestamp(now);
    PartitionData::default()
        .with_partition_index(0)
        .with_leader_id(BrokerId(VOTER))
        .with_leader_epoch(EPOCH)
        .with_high_watermark(log_end)
        .with_current_voters(vec![voter])
}
