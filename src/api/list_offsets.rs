//! ListOffsets: earliest (-2), latest (-1), the largest timestamp (-3, v7+),
//! the earliest local offset (-4, v8+), the latest tiered offset (-5, v9+),
//! or the first offset at or after a timestamp. Without tiered storage the
//! local log is the whole log: -4 answers as -2 does, and -5 with no offset
//! (-1), as Kafka answers for a topic without remote storage.

use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::{leader_epoch, storage_errors};
use crate::broker::context::ShardCtx;
use crate::protocol::ErrorCode;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

/// The first version with leader epochs (KIP-320).
const LEADER_EPOCH_VERSION: i16 = 4;

/// Answers ListOffsets (`version`: the request's).
pub async fn handle(ctx: &ShardCtx, req: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let meta = ctx.setup.snapshot.load_full();
    // A stored batch decompresses no further than a produced one may.
    let max_decompressed = ctx.setup.settings.load().max_decompressed_bytes();
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
            let log = match ctx.owned_log(topic, index).and_then(|log| {
                leader_epoch::check(topic, index, p.current_leader_epoch)?;
                Ok(log)
            }) {
                Ok(log) => log,
                Err(code) => {
                    partitions.push(base.with_error_code(code.code()));
                    continue;
                }
            };
            let answer = match p.timestamp {
                LATEST => Ok(Some((log.high_watermark(), -1))),
                EARLIEST | EARLIEST_LOCAL => Ok(Some((log.log_start_offset(), -1))),
                MAX_TIMESTAMP => log.offset_of_max_timestamp(max_decompressed).await,
                LATEST_TIERED => Ok(None),
                ts => log.offset_for_timestamp(ts, max_decompressed).await,
            };
            partitions.push(match answer {
                Ok(Some((offset, timestamp))) => {
                    // The epoch that wrote the record at `offset` (for the
                    // latest offset, the newest, as Kafka answers): clients
                    // validate a position with it after a leader change.
                    // (Older versions cannot carry it.)
                    let epoch = log.epoch_at(if p.timestamp == LATEST { i64::MAX } else { offset });
                    let epoch = if version >= LEADER_EPOCH_VERSION { epoch } else { -1 };
                    base.with_offset(offset).with_timestamp(timestamp).with_leader_epoch(epoch)
                }
                Ok(None) => base,
                Err(e) => {
                    tracing::error!(topic = %topic.name, partition = index, "list offsets failed: {e}");
                    base.with_error_code(storage_errors::read_error(&e).code())
                }
            });
        }
        topics.push(ListOffsetsTopicResponse::default().with_name(t.name.clone()).with_partitions(partitions));
    }
    ListOffsetsResponse::default().with_topics(topics)
}
