//! OffsetFetch: committed offsets of one group (v1-7) or several (v8+);
//! partitions without a commit answer offset -1.

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};

use super::str_bytes;
use crate::broker::context::ShardCtx;
use crate::group::record::OffsetValue;
use crate::protocol::ErrorCode;

/// (topic, partition, committed offset) of one group, or the group's error.
type Fetched = Result<Vec<(String, i32, Option<OffsetValue>)>, ErrorCode>;

/// Answers OffsetFetch.
pub async fn handle(ctx: &ShardCtx, req: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
    if version >= 8 {
        let mut groups = Vec::with_capacity(req.groups.len());
        for g in req.groups {
            let wanted = g
                .topics
                .map(|ts| ts.into_iter().map(|t| (t.name.to_string(), t.partition_indexes)).collect::<Vec<_>>());
            let fetched = ctx.groups.fetch_offsets(ctx, &g.group_id, wanted).await;
            groups.push(group_entry(g.group_id, fetched));
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted = req.topics.map(|ts| ts.into_iter().map(|t| (t.name.to_string(), t.partition_indexes)).collect());
    match ctx.groups.fetch_offsets(ctx, &req.group_id, wanted).await {
        Err(code) => OffsetFetchResponse::default().with_error_code(code.code()),
        Ok(rows) => {
            let mut topics: Vec<OffsetFetchResponseTopic> = Vec::new();
            for (t, p, v) in rows {
                if topics.last().is_none_or(|last| *last.name != *t) {
                    topics.push(OffsetFetchResponseTopic::default().with_name(TopicName(str_bytes(t))));
                }
                let (offset, epoch, meta) = split(v);
                topics.last_mut().expect("just pushed").partitions.push(
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(p)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(epoch)
                        .with_metadata(Some(str_bytes(meta))),
                );
            }
            OffsetFetchResponse::default().with_topics(topics)
        }
    }
}

fn split(v: Option<OffsetValue>) -> (i64, i32, String) {
    match v {
        Some(v) => (v.offset, v.leader_epoch, v.metadata),
        None => (-1, -1, String::new()),
    }
}

fn group_entry(id: GroupId, fetched: Fetched) -> OffsetFetchResponseGroup {
    let rows = match fetched {
        Ok(rows) => rows,
        Err(code) => return OffsetFetchResponseGroup::default().with_group_id(id).with_error_code(code.code()),
    };
    let mut topics: Vec<OffsetFetchResponseTopics> = Vec::new();
    for (t, p, v) in rows {
        if topics.last().is_none_or(|last| *last.name != *t) {
            topics.push(OffsetFetchResponseTopics::default().with_name(TopicName(str_bytes(t))));
        }
        let (offset, epoch, meta) = split(v);
        topics.last_mut().expect("just pushed").partitions.push(
            OffsetFetchResponsePartitions::default()
                .with_partition_index(p)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(epoch)
                .with_metadata(Some(str_bytes(meta))),
        );
    }
    OffsetFetchResponseGroup::default().with_group_id(id).with_topics(topics)
}
