//! ListPartitionReassignments (KIP-455, `kafka-reassign-partitions.sh
//! --verify` / `--list`): the moves under way, each with its replicas (the
//! target and the original together) and those it adds and removes. A null
//! topic list asks for every move.

use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse};

use super::str_bytes;
use crate::broker::context::ShardCtx;
use crate::metadata::TopicMeta;

fn ids(nodes: &[i32]) -> Vec<BrokerId> {
    nodes.iter().map(|n| BrokerId(*n)).collect()
}

/// The moves of `t` among `partitions` (all if `None`).
fn ongoing(t: &TopicMeta, partitions: Option<&[i32]>) -> Vec<OngoingPartitionReassignment> {
    t.reassigning
        .iter()
        .filter(|(p, _)| partitions.is_none_or(|only| only.contains(&(**p as i32))))
        .map(|(&p, r)| {
            OngoingPartitionReassignment::default()
                .with_partition_index(p as i32)
                .with_replicas(ids(&t.replicas[p]))
                .with_adding_replicas(ids(&r.adding()))
                .with_removing_replicas(ids(&r.removing()))
        })
        .collect()
}

/// Answers ListPartitionReassignments.
pub fn handle(ctx: &ShardCtx, req: ListPartitionReassignmentsRequest) -> ListPartitionReassignmentsResponse {
    let meta = ctx.setup.snapshot.load();
    let wanted: Vec<(&TopicMeta, Option<&[i32]>)> = match &req.topics {
        None => meta.topics.values().map(|t| (&**t, None)).collect(),
        Some(ts) => ts
            .iter()
            .filter_map(|t| meta.topic(t.name.as_str()).map(|m| (&**m, Some(t.partition_indexes.as_slice()))))
            .collect(),
    };
    let topics = wanted
        .into_iter()
        .filter_map(|(t, only)| {
            let partitions = ongoing(t, only);
            (!partitions.is_empty()).then(|| {
                OngoingTopicReassignment::default()
                    .with_name(kafka_protocol::messages::TopicName(str_bytes(t.name.clone())))
                    .with_partitions(partitions)
            })
        })
        .collect();
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}
