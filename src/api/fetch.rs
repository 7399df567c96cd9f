//! Fetch: whole batches from the owned partitions, long-polling until
//! `min_bytes` are available or `max_wait_ms` passes. Records are never
//! null (librdkafka rejects null), and limits follow KIP-74: the first
//! non-empty partition returns at least one batch even over the limits.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::FetchPartition;
use kafka_protocol::messages::fetch_response::{EpochEndOffset, FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use uuid::Uuid;

use super::{leader_epoch, storage_errors};
use crate::broker::context::ShardCtx;
use crate::metadata::TopicMeta;
use crate::protocol::ErrorCode;
use crate::protocol::zero_copy::StandIns;
use crate::replication::durable_tag;
use crate::replication::leader::{self, Position};
use crate::replication::progress::Ends;
use crate::replication::throttle;
use crate::storage::{PartitionLog, ReadError};

/// First version that names topics by id instead of by name.
const TOPIC_ID_VERSION: i16 = 13;

fn partition_error(index: i32, code: ErrorCode) -> PartitionData {
    PartitionData::default()
        .with_partition_index(index)
        .with_error_code(code.code())
        .with_high_watermark(-1)
        .with_records(Some(Bytes::new()))
}

/// Who reads: a consumer (up to the high watermark) or a follower
/// replica (up to the durable end).
#[derive(Clone, Copy)]
enum Reader {
    Consumer,
    Replica,
}

/// The follower replica a fetch comes from, if any: `replica_id` before
/// v15, `replica_state` from it (consumers send -1).
fn replica_of(req: &FetchRequest, version: i16) -> Option<i32> {
    let id = if version >= 15 { req.replica_state.replica_id.0 } else { req.replica_id.0 };
    (id >= 0).then_some(id)
}

/// Checks a follower's fetch of `p` against the leader's log, and records
/// where it is: a follower that is not a replica of the partition is
/// refused; one whose log diverged is told where to cut it (the error).
fn replica_position(
    ctx: &ShardCtx,
    topic: &TopicMeta,
    index: i32,
    replica: i32,
    p: &FetchPartition,
    log: &PartitionLog,
) -> Result<(), Position> {
    let part = index as usize;
    if !topic.replicas[part].contains(&replica) {
        return Err(Position::NotAReplica);
    }
    match leader::position(log, p.fetch_offset, p.last_fetched_epoch) {
        // A follower never holds more than the leader's durable log: an
        // offset past it (from a follower that sent no epoch) is not
        // recorded as progress, which would let the high watermark pass
        // what the follower has.
        Position::Consistent if p.fetch_offset > log.durable_end() => Err(Position::Ahead),
        Position::Consistent => {
            let ends = Ends::new(p.fetch_offset, durable_tag::durable_end(p));
            ctx.replication.on_replica_fetch(topic, part, replica, ends, log);
            Ok(())
        }
        other => Err(other),
    }
}

/// The answer to a follower refused by [`replica_position`].
fn replica_refused(index: i32, refused: Position, log: &PartitionLog) -> PartitionData {
    match refused {
        Position::Diverging { epoch, end_offset } => PartitionData::default()
            .with_partition_index(index)
            .with_high_watermark(log.high_watermark())
            .with_log_start_offset(log.log_start_offset())
            .with_diverging_epoch(EpochEndOffset::default().with_epoch(epoch).with_end_offset(end_offset))
            .with_records(Some(Bytes::new())),
        Position::Ahead => partition_error(index, ErrorCode::OffsetOutOfRange)
            .with_high_watermark(log.high_watermark())
            .with_log_start_offset(log.log_start_offset()),
        _ => partition_error(index, ErrorCode::NotLeaderOrFollower),
    }
}

/// One pass over the requested partitions: the response, the bytes it
/// carries, and whether any partition has an error (which ends the wait).
async fn collect(ctx: &ShardCtx, req: &FetchRequest, version: i16) -> (FetchResponse, StandIns, usize, bool) {
    let replica = replica_of(req, version);
    let (me, (leader_rate, _)) = (ctx.setup.node_id, ctx.throttle_rates());
    let mut stand_ins = StandIns::default();
    let meta = ctx.setup.snapshot.load_full();
    let settings = ctx.setup.settings.load_full();
    let leader_list = throttle::default_list(&settings, throttle::LEADER_REPLICAS);
    // The broker's `fetch.max.bytes` caps what a client may ask for.
    let mut budget = (req.max_bytes.max(0) as usize).min(settings.fetch_max_bytes());
    let mut total = 0usize;
    let mut any_error = false;
    let mut responses = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let topic = if version >= TOPIC_ID_VERSION { meta.topic_by_id(&t.topic_id) } else { meta.topic(&t.topic) };
        let unknown =
            if version >= TOPIC_ID_VERSION { ErrorCode::UnknownTopicId } else { ErrorCode::UnknownTopicOrPartition };
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let index = p.partition;
            let Some(topic) = topic else {
                any_error = true;
                partitions.push(partition_error(index, unknown));
                continue;
            };
            let log = match ctx.owned_log(topic, index).and_then(|log| {
                leader_epoch::check(topic, index, p.current_leader_epoch)?;
                Ok(log)
            }) {
                Ok(log) => log,
                Err(code) => {
                    any_error = true;
                    partitions.push(partition_error(index, code));
                    continue;
                }
            };
            let reader = match replica {
                None => Reader::Consumer,
                Some(r) => match replica_position(ctx, topic, index, r, p, &log) {
                    Ok(()) => Reader::Replica,
                    Err(refused) => {
                        any_error = true;
                        partitions.push(replica_refused(index, refused, &log));
                        continue;
                    }
                },
            };
            // A throttled follower whose leader's quota is spent gets no
            // records this time, as from an idle partition.
            let throttled =
                replica.is_some_and(|r| throttle::applies(leader_list, topic, throttle::LEADER_REPLICAS, index, me, r));
            let now = Instant::now();
            if throttled && ctx.replication.leader_quota.borrow_mut().exceeded(leader_rate, now) {
                partitions.push(
                    PartitionData::default()
                        .with_partition_index(index)
                        .with_high_watermark(log.high_watermark())
                        .with_last_stable_offset(log.high_watermark())
                        .with_log_start_offset(log.log_start_offset())
                        .with_records(Some(Bytes::new())),
                );
                continue;
            }
            let limit = (p.partition_max_bytes.max(0) as usize).min(budget);
            // KIP-74: until something is returned, allow one whole batch.
            let data = match reader {
                Reader::Consumer => log.read(p.fetch_offset, limit, total == 0).await,
                Reader::Replica => log.read_as_replica(p.fetch_offset, limit, total == 0).await,
            };
            match data {
                Ok(f) => {
                    let len = f.len();
                    if throttled {
                        ctx.replication.leader_quota.borrow_mut().record(len, leader_rate, now);
                    }
                    total += len;
                    budget = budget.saturating_sub(len);
                    let data = PartitionData::default()
                        .with_partition_index(index)
                        .with_high_watermark(f.high_watermark)
                        .with_last_stable_offset(f.high_watermark)
                        .with_log_start_offset(f.log_start_offset)
                        .with_records(Some(stand_ins.stand_in(f.pieces)));
                    partitions.push(match reader {
                        // What more the follower could read: whether to
                        // fetch again at once (`durable_tag`).
                        Reader::Replica if version >= 12 => durable_tag::with_leader_end(data, log.durable_end()),
                        _ => data,
                    });
                }
                Err(e) => {
                    any_error = true;
                    if let ReadError::Io(_) = e {
                        tracing::error!(topic = %topic.name, partition = index, "fetch failed: {e}");
                    }
                    // The bounds tell an out-of-range consumer where to go.
                    partitions.push(
                        partition_error(index, storage_errors::read_error(&e))
                            .with_high_watermark(log.high_watermark())
                            .with_last_stable_offset(log.high_watermark())
                            .with_log_start_offset(log.log_start_offset()),
                    );
                }
            }
        }
        let (name, id): (TopicName, Uuid) = (t.topic.clone(), t.topic_id);
        responses
            .push(FetchableTopicResponse::default().with_topic(name).with_topic_id(id).with_partitions(partitions));
    }
    (FetchResponse::default().with_responses(responses), stand_ins, total, any_error)
}

/// Answers Fetch, waiting for data up to `max_wait_ms`. Record sets are
/// behind stand-ins, for [`crate::protocol::frame::encode_response_pieces`].
pub async fn handle(ctx: &ShardCtx, req: FetchRequest, version: i16) -> (FetchResponse, StandIns) {
    let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let min_bytes = req.min_bytes.max(0) as usize;
    loop {
        // Subscribe before reading, so data that lands meanwhile wakes us.
        let notified = ctx.notify.notified();
        let (resp, stand_ins, bytes, any_error) = collect(ctx, &req, version).await;
        let now = Instant::now();
        if bytes >= min_bytes || any_error || now >= deadline || req.topics.is_empty() {
            return (resp, stand_ins);
        }
        futures_lite::future::or(notified, async {
            glommio::timer::sleep(deadline - now).await;
        })
        .await;
    }
}
