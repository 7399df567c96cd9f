//! Produce: validate each partition's batches (header and CRC-32C, no record
//! decoding), append them to the owned partition log, and answer once they
//! are durable. acks=0 gets no response at all, as in Kafka.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use bytes::BytesMut;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use tracing::warn;

use super::metadata::default_topic;
use super::str_bytes;
use crate::broker::context::ShardCtx;
use crate::clock::now_ms;
use crate::metadata::{TopicMeta, topic_name};
use crate::protocol::{ErrorCode, batch, rewrite};
use crate::storage::producer_state::SequenceError;
use crate::storage::{Appended, StorageError};

type Durable = Pin<Box<dyn Future<Output = Result<(), StorageError>>>>;

/// One partition's outcome: decided now, or once its append is durable.
enum Outcome {
    Done(PartitionProduceResponse),
    Waiting { index: i32, base_offset: i64, log_start_offset: i64, log_append_time: i64, durable: Durable },
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

/// Appends now; the returned future resolves to the response (or `None`
/// for acks=0) once every append is durable.
pub fn handle(ctx: &Rc<ShardCtx>, req: ProduceRequest) -> impl Future<Output = Option<ProduceResponse>> + use<> {
    let acks = req.acks;
    let meta = ctx.cfg.snapshot.load();
    let mut topics = Vec::with_capacity(req.topic_data.len());
    for t in &req.topic_data {
        let name: &str = &t.name;
        let topic = meta.topic(name);
        if topic.is_none() && ctx.cfg.settings.auto_create_topics() && topic_name::validate(name).is_ok() {
            let controller = ctx.cfg.controller.clone();
            let new = default_topic(name);
            glommio::spawn_local(async move {
                let _ = controller.create_topics(vec![new], false).await;
            })
            .detach();
        }
        let mut outcomes = Vec::with_capacity(t.partition_data.len());
        for p in &t.partition_data {
            let index = p.index;
            let outcome = if !matches!(acks, -1..=1) {
                error(index, ErrorCode::InvalidRequiredAcks, Some(format!("acks={acks} is not 0, 1 or -1")))
            } else if let Err(e) = topic_name::validate(name) {
                error(index, ErrorCode::InvalidTopic, Some(e.to_string()))
            } else if let Some(topic) = topic {
                match topic.leaders.get(index as usize) {
                    None => error(index, ErrorCode::UnknownTopicOrPartition, None),
                    Some(&leader) if leader != ctx.cfg.node_id || index < 0 => {
                        error(index, ErrorCode::NotLeaderOrFollower, None)
                    }
                    Some(_) => append(ctx, topic, index, p.records.as_deref()),
                }
            } else {
                error(index, ErrorCode::UnknownTopicOrPartition, None)
            };
            outcomes.push(outcome);
        }
        // An owned copy of the name: a clone would be a slice of the request
        // body and keep all of it (the records, already copied into the log)
        // alive until the writes are durable.
        topics.push((TopicName(str_bytes(t.name.as_str())), outcomes));
    }
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
                partitions.push(match o {
                    Outcome::Done(r) => r,
                    Outcome::Waiting { index, base_offset, log_start_offset, log_append_time, durable } => {
                        match durable.await {
                            Ok(()) => PartitionProduceResponse::default()
                                .with_index(index)
                                .with_base_offset(base_offset)
                                .with_log_append_time_ms(log_append_time)
                                .with_log_start_offset(log_start_offset),
                            Err(e) => match error(index, ErrorCode::KafkaStorageError, Some(e.to_string())) {
                                Outcome::Done(r) => r,
                                Outcome::Waiting { .. } => unreachable!("error() is always Done"),
                            },
                        }
                    }
                });
            }
            responses.push(TopicProduceResponse::default().with_name(name).with_partition_responses(partitions));
        }
        Some(ProduceResponse::default().with_responses(responses))
    }
}

fn append(ctx: &ShardCtx, meta: &TopicMeta, index: i32, records: Option<&[u8]>) -> Outcome {
    let topic = meta.name.as_str();
    let Some(log) = ctx.partition(meta, index) else {
        return error(index, ErrorCode::NotLeaderOrFollower, Some("partition is not open on this shard".into()));
    };
    let Some(records) = records else {
        return error(index, ErrorCode::CorruptMessage, Some("records are null".into()));
    };
    let mut headers = match batch::validate_all(records) {
        Ok(h) => h,
        Err(e) => {
            warn!(topic, partition = index, "rejecting produce: {e}");
            return error(index, ErrorCode::CorruptMessage, Some(e.to_string()));
        }
    };
    let max = ctx.cfg.settings.topic_value(&meta.configs, "max.message.bytes");
    if let Some(h) = headers.iter().find(|h| h.total_len as i64 > max) {
        return error(
            index,
            ErrorCode::MessageTooLarge,
            Some(format!("batch of {} bytes exceeds max.message.bytes {max}", h.total_len)),
        );
    }
    // Topic policies that change the stored bytes (off by default).
    let settings = &ctx.cfg.settings;
    let mut rewritten: Option<BytesMut> = None;
    if let Some(codec) = rewrite::target_codec(settings.topic_text(&meta.configs, "compression.type"))
        && headers.iter().any(|h| rewrite::codec_of(h.attributes) != codec)
    {
        match rewrite::recompress(records, codec).map(|b| (batch::validate_all(&b), b)) {
            Ok((Ok(h), b)) => {
                headers = h;
                rewritten = Some(BytesMut::from(b));
            }
            Ok((Err(e), _)) => return error(index, ErrorCode::CorruptMessage, Some(e.to_string())),
            Err(e) => {
                warn!(topic, partition = index, "rejecting produce: {e}");
                return error(index, ErrorCode::CorruptMessage, Some(e.to_string()));
            }
        }
    }
    let mut log_append_time = -1;
    if settings.topic_text(&meta.configs, "message.timestamp.type") == "LogAppendTime" {
        log_append_time = now_ms();
        let mut buf = rewritten.take().unwrap_or_else(|| BytesMut::from(records));
        rewrite::stamp_log_append_time(&mut buf, log_append_time);
        for h in &mut headers {
            h.max_timestamp = log_append_time;
        }
        rewritten = Some(buf);
    }
    let records = rewritten.as_deref().unwrap_or(records);
    match log.append(records, &headers) {
        // A retried batch is answered like the original: once it is durable.
        Ok(Appended::New { base: base_offset, end } | Appended::Duplicate { base: base_offset, end }) => {
            Outcome::Waiting {
                index,
                base_offset,
                log_start_offset: log.log_start_offset(),
                log_append_time,
                durable: Box::pin(log.durable(end)),
            }
        }
        Err(StorageError::Sequence(e)) => {
            let code = match e {
                SequenceError::InvalidEpoch { .. } => ErrorCode::InvalidProducerEpoch,
                SequenceError::OutOfOrder { .. } => ErrorCode::OutOfOrderSequenceNumber,
            };
            warn!(topic, partition = index, "rejecting produce: {e}");
            error(index, code, Some(e.to_string()))
        }
        Err(e) => error(index, ErrorCode::KafkaStorageError, Some(e.to_string())),
    }
}
