//! ListOffsets: earliest (-2), latest (-1), or the first offset at or after
//! a timestamp.

use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::broker::context::ShardCtx;
use crate::protocol::ErrorCode;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

/// Answers ListOffsets.
pub async fn handle(ctx: &ShardCtx, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let meta = ctx.cfg.snapshot.load_full();
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let topic = meta.topic(&t.name);
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let index = p.partition_index;
            let base =
                ListOffsetsPartitionResponse::default().with_partition_index(index).with_timestamp(-1).with_offset(-1);
            let Some(topic) = topic else {
                partitions.push(base.with_error_code(ErrorCode::UnknownTopicOrPartition.code()));
                continue;
            };
            let Some(&leader) = topic.leaders.get(index as usize) else {
                partitions.push(base.with_error_code(ErrorCode::UnknownTopicOrPartition.code()));
                continue;
            };
            let log = if leader == ctx.cfg.node_id { ctx.partition(topic, index) } else { None };
            let Some(log) = log else {
                partitions.push(base.with_error_code(ErrorCode::NotLeaderOrFollower.code()));
                continue;
            };
            let answer = match p.timestamp {
                LATEST => Ok(Some((log.high_watermark(), -1))),
                EARLIEST => Ok(Some((log.log_start_offset(), -1))),
                ts => log.offset_for_timestamp(ts).await,
            };
            partitions.push(match answer {
                Ok(Some((offset, timestamp))) => base.with_offset(offset).with_timestamp(timestamp),
                Ok(None) => base,
                Err(e) => {
                    tracing::error!(topic = %topic.name, partition = index, "list offsets failed: {e}");
                    base.with_error_code(ErrorCode::KafkaStorageError.code())
                }
            });
        }
        topics.push(ListOffsetsTopicResponse::default().with_name(t.name.clone()).with_partitions(partitions));
    }
    ListOffsetsResponse::default().with_topics(topics)
}
