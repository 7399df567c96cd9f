//! OffsetDelete: drops committed offsets of partitions a group no longer reads.

use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use crate::broker::context::ShardCtx;

/// Answers OffsetDelete.
pub async fn handle(ctx: &ShardCtx, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let wanted: Vec<(String, i32)> =
        req.topics.iter().flat_map(|t| t.partitions.iter().map(|p| (t.name.to_string(), p.partition_index))).collect();
    let codes = match ctx.groups.delete_offsets(ctx, &req.group_id, &wanted).await {
        Ok(c) => c,
        Err(code) => return OffsetDeleteResponse::default().with_error_code(code.code()),
    };
    let mut codes = codes.into_iter();
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(codes.next().expect("one result per partition").code())
                })
                .collect();
            OffsetDeleteResponseTopic::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}
