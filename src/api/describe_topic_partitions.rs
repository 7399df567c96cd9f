//! DescribeTopicPartitions (KIP-966): topics and their partitions in name
//! order, a page at a time. A page holds at most `response_partition_limit`
//! partitions (capped by `max.request.partition.size.limit`); when a topic
//! does not fit, `next_cursor` names the topic and partition the next page
//! starts at, as Kafka's handler does.

use kafka_protocol::messages::describe_topic_partitions_request::Cursor as RequestCursor;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName};

use super::str_bytes;
use crate::broker::context::ShardCtx;
use crate::metadata::model::ClusterMeta;
use crate::metadata::{TopicMeta, topic_name};
use crate::protocol::ErrorCode;

/// What a topic allows with no authorizer configured: every topic operation
/// (READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS,
/// ALTER_CONFIGS), as Kafka reports them.
pub const TOPIC_OPERATIONS: i32 =
    (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);

/// Answers DescribeTopicPartitions.
pub fn handle(ctx: &ShardCtx, req: DescribeTopicPartitionsRequest) -> DescribeTopicPartitionsResponse {
    let meta = ctx.setup.snapshot.load();
    let all = req.topics.is_empty();
    let after = req.cursor.as_ref().map_or("", |c| c.topic_name.as_str());
    let asked: Vec<String> = req.topics.iter().map(|t| t.name.to_string()).collect();
    let mut names: Vec<String> = if all {
        meta.topics.keys().filter(|n| n.as_str() >= after).cloned().collect()
    } else {
        req.topics.iter().map(|t| t.name.to_string()).filter(|n| n.as_str() >= after).collect()
    };
    names.sort();
    names.dedup();
    if let Some(c) = &req.cursor
        && (c.partition_index < 0 || (!all && !names.iter().any(|n| n.as_str() == c.topic_name.as_str())))
    {
        // Kafka refuses the whole request; the response has no top-level
        // error code, so every topic asked for carries it.
        let refused = asked.iter().map(|n| error_topic(n, ErrorCode::InvalidRequest)).collect();
        return DescribeTopicPartitionsResponse::default().with_topics(refused);
    }
    let cap = ctx.setup.settings.load().typed().max_request_partition_size_limit.max(1);
    let limit = i64::from(req.response_partition_limit).clamp(1, cap) as usize;
    page(&meta, &names, req.cursor.as_ref(), limit, all)
}

/// One page, from the cursor's partition of its topic on.
fn page(
    meta: &ClusterMeta,
    names: &[String],
    cursor: Option<&RequestCursor>,
    limit: usize,
    all: bool,
) -> DescribeTopicPartitionsResponse {
    let mut topics = Vec::new();
    let mut left = limit;
    for name in names {
        if left == 0 {
            return response(topics, Some((name, 0)));
        }
        let Some(topic) = meta.topic(name) else {
            // Listing everything skips what vanished; a named topic is reported.
            if !all {
                let code = if topic_name::validate(name).is_ok() {
                    ErrorCode::UnknownTopicOrPartition
                } else {
                    ErrorCode::InvalidTopic
                };
                topics.push(error_topic(name, code));
            }
            continue;
        };
        let first =
            cursor.filter(|c| c.topic_name.as_str() == name.as_str()).map_or(0, |c| c.partition_index.max(0) as usize);
        let total = topic.leaders.len();
        let end = total.min(first.saturating_add(left));
        topics.push(topic_entry(meta, topic, first..end));
        left -= end.saturating_sub(first);
        if end < total {
            return response(topics, Some((name, end as i32)));
        }
    }
    response(topics, None)
}

fn response(
    topics: Vec<DescribeTopicPartitionsResponseTopic>,
    next: Option<(&String, i32)>,
) -> DescribeTopicPartitionsResponse {
    let next_cursor = next.map(|(name, partition)| {
        Cursor::default().with_topic_name(TopicName(str_bytes(name.clone()))).with_partition_index(partition)
    });
    DescribeTopicPartitionsResponse::default().with_topics(topics).with_next_cursor(next_cursor)
}

/// A topic with the partitions in `range`.
fn topic_entry(
    meta: &ClusterMeta,
    t: &TopicMeta,
    range: std::ops::Range<usize>,
) -> DescribeTopicPartitionsResponseTopic {
    let partitions = range
        .map(|p| {
            // A fenced broker's partitions have no leader until it is back
            // or a live replica in sync takes over.
            let live = meta.is_live(t.leaders[p]);
            let leader = BrokerId(if live { t.leaders[p] } else { -1 });
            DescribeTopicPartitionsResponsePartition::default()
                .with_partition_index(p as i32)
                .with_error_code(if live { 0 } else { ErrorCode::LeaderNotAvailable.code() })
                .with_leader_id(leader)
                .with_leader_epoch(t.epochs[p])
                .with_replica_nodes(t.replicas[p].iter().map(|n| BrokerId(*n)).collect())
                .with_isr_nodes(t.isr[p].iter().map(|n| BrokerId(*n)).collect())
                // No eligible leader replicas (KIP-966) without replication.
                .with_eligible_leader_replicas(Some(Vec::new()))
                .with_last_known_elr(Some(Vec::new()))
        })
        .collect();
    DescribeTopicPartitionsResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(t.name.clone()))))
        .with_topic_id(t.id)
        .with_is_internal(t.name == crate::group::OFFSETS_TOPIC)
        .with_partitions(partitions)
        .with_topic_authorized_operations(TOPIC_OPERATIONS)
}

fn error_topic(name: &str, code: ErrorCode) -> DescribeTopicPartitionsResponseTopic {
    DescribeTopicPartitionsResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(name))))
        .with_error_code(code.code())
        .with_topic_authorized_operations(i32::MIN)
}
