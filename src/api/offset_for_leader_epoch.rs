//! OffsetForLeaderEpoch: where a leader epoch ended on the partition's
//! leader. Clients ask it after a leader change to check that their
//! position is still on the log (librdkafka and the Java client validate
//! positions so, KIP-320); followers will ask it before fetching, to cut a
//! tail of an older epoch (issue 24). A `current_leader_epoch` that is not
//! the partition's is refused as Kafka refuses it: an older one is
//! FENCED_LEADER_EPOCH, a newer one UNKNOWN_LEADER_EPOCH (this broker has
//! not caught up with it yet).

use kafka_protocol::messages::offset_for_leader_epoch_request::OffsetForLeaderPartition;
use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::leader_epoch;
use crate::broker::context::ShardCtx;
use crate::metadata::model::TopicMeta;
use crate::protocol::ErrorCode;

/// Answers OffsetForLeaderEpoch.
pub fn handle(ctx: &ShardCtx, req: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
    let meta = ctx.setup.snapshot.load_full();
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let topic = meta.topic(&t.topic);
            let partitions = t.partitions.iter().map(|p| answer(ctx, topic.map(|t| &**t), p)).collect();
            OffsetForLeaderTopicResult::default().with_topic(t.topic.clone()).with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

fn answer(ctx: &ShardCtx, topic: Option<&TopicMeta>, p: &OffsetForLeaderPartition) -> EpochEndOffset {
    let base = EpochEndOffset::default().with_partition(p.partition).with_leader_epoch(-1).with_end_offset(-1);
    let Some(topic) = topic else {
        return base.with_error_code(ErrorCode::UnknownTopicOrPartition.code());
    };
    let log = match ctx.owned_log(topic, p.partition) {
        Ok(log) => log,
        Err(code) => return base.with_error_code(code.code()),
    };
    if let Err(code) = leader_epoch::check(topic, p.partition, p.current_leader_epoch) {
        return base.with_error_code(code.code());
    }
    let (epoch, end) = log.end_offset_for_epoch(p.leader_epoch);
    base.with_leader_epoch(i32::try_from(epoch).unwrap_or(-1)).with_end_offset(end)
}
