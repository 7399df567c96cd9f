//! DescribeQuorum (KIP-595, KIP-853): the metadata quorum, as
//! `kafka-metadata-quorum.sh describe --status` shows it, from the openraft
//! quorum's state as this broker sees it (`metadata/raft/view.rs`): the
//! leader, the term as the leader epoch, the committed end of the raft log
//! as the high watermark, and the voters' log ends (known where this broker
//! leads). The embedded default is voter 0 alone.

use kafka_protocol::messages::describe_quorum_response::{Listener, Node, PartitionData, ReplicaState, TopicData};
use kafka_protocol::messages::{BrokerId, DescribeQuorumRequest, DescribeQuorumResponse};

use super::str_bytes;
use crate::broker::context::ShardCtx;
use crate::clock::now_ms;
use crate::metadata::raft::view::{QuorumView, Voter};
use crate::protocol::ErrorCode;

/// Kafka's name for the metadata log's topic (one partition, 0).
pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// Answers DescribeQuorum.
pub async fn handle(ctx: &ShardCtx, req: DescribeQuorumRequest) -> DescribeQuorumResponse {
    // Kafka's brokers forward DescribeQuorum to the active controller,
    // which alone knows every voter's log end: so does this one.
    let view = ctx.setup.controller.describe_quorum((**ctx.setup.quorum.load()).clone()).await;
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let known = t.topic_name.as_str() == METADATA_TOPIC;
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| match known && p.partition_index == 0 {
                    true => quorum_partition(&view),
                    false => PartitionData::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(ErrorCode::UnknownTopicOrPartition.code()),
                })
                .collect();
            TopicData::default().with_topic_name(t.topic_name).with_partitions(partitions)
        })
        .collect();
    let nodes = view.voters.iter().chain(&view.observers).map(|v| voter_node(ctx, v)).collect();
    DescribeQuorumResponse::default().with_topics(topics).with_nodes(nodes)
}

/// A voter's listener: its controller address; the embedded one-voter
/// quorum's is the broker's own (shard 0's).
fn voter_node(ctx: &ShardCtx, v: &Voter) -> Node {
    let (name, host, port) = match v.addr.rsplit_once(':') {
        Some((host, port)) => ("CONTROLLER", host.to_string(), port.parse().unwrap_or(0)),
        None => {
            let port = ctx.setup.snapshot.load().node(0).map_or(0, |at| at.port());
            ("PLAINTEXT", ctx.setup.endpoints.advertised_host.clone(), port as u16)
        }
    };
    let listener =
        Listener::default().with_name(str_bytes(name.to_string())).with_host(str_bytes(host)).with_port(port);
    Node::default().with_node_id(BrokerId(v.id as i32)).with_listeners(vec![listener])
}

/// Partition 0 of the metadata topic: leader, epoch, high watermark and
/// the voters' log ends (-1 where this node does not know them).
fn quorum_partition(view: &QuorumView) -> PartitionData {
    let now = now_ms();
    let state = |v: &Voter| {
        let seen = if v.log_end >= 0 { now } else { -1 };
        ReplicaState::default()
            .with_replica_id(BrokerId(v.id as i32))
            .with_log_end_offset(v.log_end)
            .with_last_fetch_timestamp(seen)
            .with_last_caught_up_timestamp(if v.log_end >= view.high_watermark { seen } else { -1 })
    };
    PartitionData::default()
        .with_partition_index(0)
        .with_leader_id(BrokerId(view.leader.map_or(-1, |l| l as i32)))
        .with_leader_epoch(view.term as i32)
        .with_high_watermark(view.high_watermark)
        .with_current_voters(view.voters.iter().map(state).collect())
        .with_observers(view.observers.iter().map(state).collect())
}
