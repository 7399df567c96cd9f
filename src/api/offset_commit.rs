//! OffsetCommit: committed offsets become records of the group's
//! `__consumer_offsets` partition, acknowledged once durable.

use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use crate::broker::context::ShardCtx;
use crate::group::coordinator::CommitPartition;

/// Answers OffsetCommit.
pub async fn handle(ctx: &ShardCtx, req: OffsetCommitRequest) -> OffsetCommitResponse {
    let partitions: Vec<CommitPartition> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| CommitPartition {
                topic: t.name.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
            })
        })
        .collect();
    let codes = ctx
        .groups
        .commit(
            ctx,
            &req.group_id,
            req.generation_id_or_member_epoch,
            &req.member_id,
            req.group_instance_id.as_deref(),
            &partitions,
        )
        .await;
    let mut codes = codes.into_iter();
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let code = codes.next().expect("one result per partition");
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code.code())
                })
                .collect();
            OffsetCommitResponseTopic::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
