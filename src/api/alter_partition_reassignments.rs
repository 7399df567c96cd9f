//! AlterPartitionReassignments (KIP-455, `kafka-reassign-partitions.sh
//! --execute` / `--cancel`): moves each named partition to the replicas
//! given, or cancels its move (null replicas). New replicas copy the
//! leader and join the ISR; once every target replica is in sync the move
//! completes (see `metadata/reassignment.rs`). Answered per partition, as
//! Kafka does: `INVALID_REPLICA_ASSIGNMENT`, `NO_REASSIGNMENT_IN_PROGRESS`,
//! `UNKNOWN_TOPIC_OR_PARTITION`.

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse};

use super::str_bytes;
use crate::broker::context::ShardCtx;

/// Answers AlterPartitionReassignments.
pub async fn handle(ctx: &ShardCtx, req: AlterPartitionReassignmentsRequest) -> AlterPartitionReassignmentsResponse {
    let moves: Vec<(String, i32, Option<Vec<i32>>)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                let replicas = p.replicas.as_ref().map(|r| r.iter().map(|n| n.0).collect());
                (t.name.to_string(), p.partition_index, replicas)
            })
        })
        .collect();
    let results = ctx.setup.controller.alter_reassignments(moves).await.into_iter();
    let mut results = results;
    let responses = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let answer = ReassignablePartitionResponse::default().with_partition_index(p.partition_index);
                    match results.next() {
                        Some(Ok(())) | None => answer,
                        Some(Err(e)) => {
                            answer.with_error_code(e.code.code()).with_error_message(Some(str_bytes(e.message)))
                        }
                    }
                })
                .collect();
            ReassignableTopicResponse::default().with_name(t.name.clone()).with_partitions(partitions)
        })
        .collect();
    AlterPartitionReassignmentsResponse::default().with_responses(responses)
}
