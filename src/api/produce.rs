//! Produce, in two steps. [`check`] validates each partition's batches:
//! header and CRC-32C, then a walk over every record that trusts no count or
//! length in them (compressed records are decompressed as a stream, bounded,
//! yielding to the shard's other tasks as it goes), then the rewrites a
//! topic's settings ask for. [`handle`] appends what passed to the owned
//! partition logs and answers once it is durable. acks=0 gets no response
//! at all, as in Kafka.
//!
//! The connection runs both before it reads its next frame, so a
//! connection's produce requests append in the order they arrived.

use crate::config::typed::{TimestampType, TopicSettings};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use tracing::warn;

use super::metadata::default_topic;
use super::storage_errors;
use super::str_bytes;
use crate::broker::context::ShardCtx;
use crate::clock::now_ms;
use crate::config::BrokerSettings;
use crate::group::OFFSETS_TOPIC;
use crate::metadata::{TopicMeta, topic_name};
use crate::protocol::batch::{self, BatchHeader};
use crate::protocol::batch_walk::BatchWalk;
use crate::protocol::record_walk::WalkError;
use crate::protocol::{ErrorCode, rewrite};

use crate::storage::{Appended, PartitionLog, StorageError};

/// Resolves once the append is acknowledged: durable here (acks=1), or on
/// every in-sync replica (acks=all), or with the error to answer.
type Durable = Pin<Box<dyn Future<Output = Result<(), Refusal>>>>;

/// Decompressed bytes a compressed batch's walk reads between chances to
/// yield to the shard's other tasks.
const WALK_STEP: u64 = 256 << 10;

/// One partition's outcome: decided now, or once its append is durable.
enum Outcome {
    Done(PartitionProduceResponse),
    Waiting { index: i32, base_offset: i64, log_start_offset: i64, log_append_time: i64, durable: Durable },
}

/// A partition's records after [`check`]: refused, or ready to append.
enum Checked {
    Refused(Outcome),
    Ready(Ready),
}

/// Records that passed every check, and what they were checked against.
struct Ready {
    index: i32,
    /// The topic whose settings they were checked under: one deleted and
    /// created again meanwhile may have others.
    topic_id: uuid::Uuid,
    records: Stored,
    headers: Vec<BatchHeader>,
    log_append_time: i64,
    /// The topic's `min.insync.replicas`, for an acks=all answer.
    min_isr: usize,
}

/// The bytes to store: the request's own, or a rewrite of them.
enum Stored {
    AsSent(Bytes),
    Rewritten(BytesMut),
}

/// A produce request whose records have all been checked.
pub struct CheckedRequest {
    acks: i16,
    /// How long an acks=all request waits for the ISR.
    timeout: Duration,
    topics: Vec<(String, Vec<Checked>)>,
}

fn error(index: i32, code: ErrorCode, message: Option<String>) -> Outcome {
    Outcome::Done(
        PartitionProduceResponse::default()
            .with_index(index)
            .with_error_code(code.code())
            .with_base_offset(-1)
            .with_error_message(message.map(str_bytes)),
    )
}

fn refuse(index: i32, code: ErrorCode, message: String) -> Checked {
    Checked::Refused(error(index, code, Some(message)))
}

/// Why a partition cannot take records here: a code and its message.
type Refusal = (ErrorCode, Option<String>);

/// The topic's metadata and this shard's log of its partition `index`, or
/// the error a producer gets instead. Asked again at append time: a topic
/// can go while its records are checked.
fn owned_log(ctx: &ShardCtx, name: &str, index: i32) -> Result<(Arc<TopicMeta>, Rc<PartitionLog>), Refusal> {
    let meta = ctx.setup.snapshot.load();
    let Some(topic) = meta.topic(name) else {
        return Err((ErrorCode::UnknownTopicOrPartition, None));
    };
    match ctx.owned_log(topic, index) {
        Ok(log) => Ok((topic.clone(), log)),
        Err(code) => Err((code, None)),
    }
}

/// Checks every partition's records in `req` (see the module docs),
/// yielding to the shard's other tasks while it walks compressed records.
pub async fn check(ctx: &Rc<ShardCtx>, req: ProduceRequest) -> CheckedRequest {
    let acks = req.acks;
    let timeout = Duration::from_millis(req.timeout_ms.max(0) as u64);
    let mut topics = Vec::with_capacity(req.topic_data.len());
    for t in req.topic_data {
        let name = t.name.to_string();
        let known = ctx.setup.snapshot.load().topic(&name).is_some();
        if !known && ctx.setup.settings.load().auto_create_topics() && topic_name::validate(&name).is_ok() {
            let controller = ctx.setup.controller.clone();
            let new = default_topic(&name);
            glommio::spawn_local(async move {
                let _ = controller.create_topics(vec![new], false).await;
            })
            .detach();
        }
        let mut checked = Vec::with_capacity(t.partition_data.len());
        for p in t.partition_data {
            checked.push(check_partition(ctx, acks, &name, p.index, p.records).await);
        }
        topics.push((name, checked));
    }
    CheckedRequest { acks, timeout, topics }
}

async fn check_partition(ctx: &ShardCtx, acks: i16, name: &str, index: i32, records: Option<Bytes>) -> Checked {
    if !matches!(acks, -1..=1) {
        return refuse(index, ErrorCode::InvalidRequiredAcks, format!("acks={acks} is not 0, 1 or -1"));
    }
    if let Err(e) = topic_name::validate(name) {
        return refuse(index, ErrorCode::InvalidTopic, e.to_string());
    }
    if name == OFFSETS_TOPIC {
        // Only the group coordinator writes group and offset records, as in
        // Kafka: a forged one would be replayed into every group's state.
        return refuse(index, ErrorCode::InvalidTopic, format!("Cannot append to internal topic {name}"));
    }
    let topic = match owned_log(ctx, name, index) {
        Ok((topic, _)) => topic,
        Err((code, message)) => return Checked::Refused(error(index, code, message)),
    };
    // Held across the record walk's yields: an owned snapshot, not a guard.
    let settings = ctx.setup.settings.load_full();
    let t = settings.topic(&topic.overrides);
    let min_isr = t.min_insync_replicas.max(1) as usize;
    let isr = &topic.isr[index as usize];
    if acks == -1 && isr.len() < min_isr {
        // Refused before it is appended, as Kafka answers it.
        let why = format!(
            "The size of the current ISR {isr:?} is insufficient to satisfy the min.isr requirement of {min_isr} for partition {name}-{index}"
        );
        return refuse(index, ErrorCode::NotEnoughReplicas, why);
    }
    let Some(records) = records else {
        return refuse(index, ErrorCode::CorruptMessage, "records are null".into());
    };
    match check_records(&settings, &t, &topic, records).await {
        Ok((records, headers, log_append_time)) => {
            Checked::Ready(Ready { index, topic_id: topic.id, records, headers, log_append_time, min_isr })
        }
        Err((code, message)) => {
            let message = message.unwrap_or_default();
            warn!(topic = name, partition = index, "rejecting produce: {message}");
            refuse(index, code, message)
        }
    }
}

/// The checks and rewrites of one partition's records, under the topic's
/// settings `t`.
async fn check_records(
    settings: &BrokerSettings,
    t: &TopicSettings,
    topic: &TopicMeta,
    records: Bytes,
) -> Result<(Stored, Vec<BatchHeader>, i64), Refusal> {
    let mut headers = batch::validate_all(&records).map_err(|e| (ErrorCode::CorruptMessage, Some(e.to_string())))?;
    let max = t.max_message_bytes.max(0) as usize;
    if let Some(h) = headers.iter().find(|h| h.total_len > max) {
        let message = format!("batch of {} bytes exceeds max.message.bytes {max}", h.total_len);
        return Err((ErrorCode::MessageTooLarge, Some(message)));
    }
    let compacted = t.cleanup.compact;
    let max_decompressed = settings.max_decompressed_bytes();
    let mut at = 0;
    for h in &headers {
        let one = &records[at..at + h.total_len];
        at += h.total_len;
        let null_key = walk_records(one, h, max_decompressed).await.map_err(|e| {
            let code = match e {
                WalkError::TooLarge { .. } => ErrorCode::MessageTooLarge,
                // Bytes that do not decompress, or name no codec.
                WalkError::Codec(_) => ErrorCode::CorruptMessage,
                // A record that is not what its batch says: Kafka's
                // InvalidRecordException, which producers do not retry.
                _ => ErrorCode::InvalidRecord,
            };
            (code, Some(e.to_string()))
        })?;
        if null_key && compacted {
            let message = format!("Compacted topic cannot accept message without key in topic {}", topic.name);
            return Err((ErrorCode::InvalidRecord, Some(message)));
        }
    }
    // Topic policies that change the stored bytes (off by default).
    let recompress_to = rewrite::target_codec(t.compression.name())
        .filter(|&codec| headers.iter().any(|h| rewrite::codec_of(h.attributes) != codec));
    let mut stored = match recompress_to {
        None => Stored::AsSent(records),
        Some(codec) => {
            let out = recompress(records, headers.clone(), codec, max_decompressed, max).await?;
            headers = batch::validate_all(&out).map_err(|e| (ErrorCode::CorruptMessage, Some(e.to_string())))?;
            Stored::Rewritten(out)
        }
    };
    let mut log_append_time = -1;
    if t.timestamp_type == TimestampType::LogAppendTime {
        log_append_time = now_ms();
        let mut buf = match stored {
            Stored::AsSent(b) => BytesMut::from(&b[..]),
            Stored::Rewritten(b) => b,
        };
        rewrite::stamp_log_append_time(&mut buf, log_append_time);
        for h in &mut headers {
            h.max_timestamp = log_append_time;
        }
        stored = Stored::Rewritten(buf);
    }
    Ok((stored, headers, log_append_time))
}

/// Walks the records of one batch, yielding between steps; whether some
/// record has a null key.
async fn walk_records(one: &[u8], h: &BatchHeader, max_decompressed: usize) -> Result<bool, WalkError> {
    let mut walk = BatchWalk::new(one, h, max_decompressed)?;
    while !walk.step(WALK_STEP)? {
        glommio::yield_if_needed().await;
    }
    glommio::yield_if_needed().await;
    Ok(walk.facts().null_key)
}

/// Re-encodes every batch with `codec` on the shard's blocking thread: a
/// recompression of tens of MiB takes long enough to delay every other
/// connection of the shard if it ran on the reactor.
async fn recompress(
    records: Bytes,
    headers: Vec<BatchHeader>,
    codec: kafka_protocol::records::Compression,
    max_decompressed: usize,
    max_batch: usize,
) -> Result<BytesMut, Refusal> {
    let work = move || {
        let mut out = BytesMut::with_capacity(records.len());
        let mut at = 0;
        for h in &headers {
            let one = &records[at..at + h.total_len];
            at += h.total_len;
            out.extend_from_slice(&rewrite::recompress(one, h, codec, max_decompressed, max_batch)?);
        }
        Ok::<_, rewrite::RewriteError>(out)
    };
    match glommio::executor().spawn_blocking(work).await {
        Ok(out) => Ok(out),
        Err(e @ rewrite::RewriteError::TooLarge { .. }) => Err((ErrorCode::MessageTooLarge, Some(e.to_string()))),
        Err(e) => Err((ErrorCode::CorruptMessage, Some(e.to_string()))),
    }
}

/// Appends the checked records now; the returned future resolves to the
/// response (or `None` for acks=0) once every append is durable.
pub fn handle(ctx: &Rc<ShardCtx>, req: CheckedRequest) -> impl Future<Output = Option<ProduceResponse>> + use<> {
    let (acks, timeout) = (req.acks, req.timeout);
    let topics: Vec<(String, Vec<Outcome>)> = req
        .topics
        .into_iter()
        .map(|(name, checked)| {
            let outcomes = checked
                .into_iter()
                .map(|c| match c {
                    Checked::Refused(outcome) => outcome,
                    Checked::Ready(ready) => append(ctx, &name, &ready, acks, timeout),
                })
                .collect();
            (name, outcomes)
        })
        .collect();
    async move {
        if acks == 0 {
            // No response, but the connection still waits for the writes:
            // that is what keeps acks=0 producers from queueing without bound.
            for (_, outcomes) in topics {
                for o in outcomes {
                    if let Outcome::Waiting { durable, .. } = o {
                        let _ = durable.await;
                    }
                }
            }
            return None;
        }
        let mut responses = Vec::with_capacity(topics.len());
        for (name, outcomes) in topics {
            let mut partitions = Vec::with_capacity(outcomes.len());
            for o in outcomes {
                partitions.push(answer(o).await);
            }
            responses.push(
                TopicProduceResponse::default()
                    .with_name(TopicName(str_bytes(name)))
                    .with_partition_responses(partitions),
            );
        }
        Some(ProduceResponse::default().with_responses(responses))
    }
}

/// A partition's response, once its append is acknowledged.
async fn answer(o: Outcome) -> PartitionProduceResponse {
    match o {
        Outcome::Done(r) => r,
        Outcome::Waiting { index, base_offset, log_start_offset, log_append_time, durable } => match durable.await {
            Ok(()) => PartitionProduceResponse::default()
                .with_index(index)
                .with_base_offset(base_offset)
                .with_log_append_time_ms(log_append_time)
                .with_log_start_offset(log_start_offset),
            Err((code, message)) => PartitionProduceResponse::default()
                .with_index(index)
                .with_error_code(code.code())
                .with_base_offset(-1)
                .with_error_message(message.map(str_bytes)),
        },
    }
}

fn append(ctx: &ShardCtx, name: &str, ready: &Ready, acks: i16, timeout: Duration) -> Outcome {
    let Ready { index, topic_id, ref records, ref headers, log_append_time, min_isr } = *ready;
    let log = match owned_log(ctx, name, index) {
        Ok((topic, log)) if topic.id == topic_id => log,
        Ok(_) => {
            let why = "the topic was created again while its records were checked";
            return error(index, ErrorCode::NotLeaderOrFollower, Some(why.into()));
        }
        Err((code, message)) => return error(index, code, message),
    };
    let records: &[u8] = match records {
        Stored::AsSent(b) => b,
        Stored::Rewritten(b) => b,
    };
    match log.append(records, headers) {
        // A retried batch is answered like the original: once it is durable.
        Ok(Appended::New { base: base_offset, end } | Appended::Duplicate { base: base_offset, end }) => {
            let durable: Durable = if acks == -1 && log.is_replicated() {
                let (ctx, me, name) = (ctx.setup.snapshot.clone(), ctx.setup.node_id, name.to_string());
                let watch = IsrWatch { ctx, me, name, index, min_isr };
                Box::pin(in_sync(log.durable(end), log.committed(end), timeout, watch))
            } else {
                let durable = log.durable(end);
                Box::pin(async move { durable.await.map_err(storage_refusal) })
            };
            Outcome::Waiting { index, base_offset, log_start_offset: log.log_start_offset(), log_append_time, durable }
        }
        Err(e) => {
            if let StorageError::Sequence(_) = e {
                warn!(topic = name, partition = index, "rejecting produce: {e}");
            }
            error(index, storage_errors::append_error(&e), Some(e.to_string()))
        }
    }
}

fn storage_refusal(e: StorageError) -> Refusal {
    (ErrorCode::KafkaStorageError, Some(e.to_string()))
}

/// What an acks=all wait that ran out of time looks at to choose its
/// answer.
struct IsrWatch {
    ctx: crate::metadata::controller::Snapshot,
    me: i32,
    name: String,
    index: i32,
    min_isr: usize,
}

impl IsrWatch {
    /// `NOT_ENOUGH_REPLICAS_AFTER_APPEND` if the ISR is now smaller than
    /// `min.insync.replicas`.
    fn below_min_isr(&self) -> Option<Refusal> {
        let meta = self.ctx.load();
        let isr = &meta.topic(&self.name)?.isr.get(self.index as usize)?.clone();
        (isr.len() < self.min_isr).then(|| {
            let why = format!("the ISR {isr:?} shrank below min.insync.replicas {} after the append", self.min_isr);
            (ErrorCode::NotEnoughReplicasAfterAppend, Some(why))
        })
    }

    /// Why the ISR did not take the records in time, as Kafka answers: the
    /// leader moved, the ISR shrank below `min.insync.replicas`, or it is
    /// only slow.
    fn refusal(&self) -> Refusal {
        let meta = self.ctx.load();
        let p = self.index as usize;
        let Some(t) = meta.topic(&self.name).filter(|t| p < t.leaders.len()) else {
            return (ErrorCode::UnknownTopicOrPartition, None);
        };
        if t.leaders[p] != self.me {
            return (ErrorCode::NotLeaderOrFollower, Some("leadership moved before the ISR took the records".into()));
        }
        if t.isr[p].len() < self.min_isr {
            let why =
                format!("the ISR {:?} shrank below min.insync.replicas {} after the append", t.isr[p], self.min_isr);
            return (ErrorCode::NotEnoughReplicasAfterAppend, Some(why));
        }
        (ErrorCode::RequestTimedOut, Some("the in-sync replicas did not take the records in time".into()))
    }
}

/// An acks=all append's acknowledgement: durable here, then held by every
/// in-sync replica (the high watermark passed it), within `timeout`.
async fn in_sync(
    durable: impl Future<Output = Result<(), StorageError>>,
    committed: impl Future<Output = Result<(), StorageError>>,
    timeout: Duration,
    watch: IsrWatch,
) -> Result<(), Refusal> {
    durable.await.map_err(storage_refusal)?;
    let expired = async {
        glommio::timer::sleep(timeout).await;
        Err(watch.refusal())
    };
    let committed = async {
        committed.await.map_err(|e| match e {
            StorageError::LeaderMoved => (ErrorCode::NotLeaderOrFollower, Some(e.to_string())),
            e => storage_refusal(e),
        })?;
        // As Kafka answers: held by the ISR, but the ISR shrank below
        // min.insync.replicas meanwhile (so it may be held by the leader
        // alone).
        watch.below_min_isr().map_or(Ok(()), Err)
    };
    futures_lite::future::or(committed, expired).await
}
