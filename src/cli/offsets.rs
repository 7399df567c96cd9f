//! Offsets as the tools need them: log start/end per partition
//! (ListOffsets), a group's coordinator (FindCoordinator), its committed
//! offsets (OffsetFetch) and commits (OffsetCommit).

use std::collections::BTreeMap;

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, GroupId, ListOffsetsRequest, OffsetCommitRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::client::Cluster;
use super::error::{CliError, check};

/// ListOffsets timestamps for the earliest and the next (log end) offset.
pub const EARLIEST: i64 = -2;
pub const LATEST: i64 = -1;

pub fn topic_name(t: &str) -> TopicName {
    TopicName(StrBytes::from_string(t.to_string()))
}

/// The offset of each partition of `topic` at `timestamp` (EARLIEST, LATEST
/// or a time in ms; -1 in the result when no record is that late).
pub fn list_offsets(cluster: &mut Cluster, topic: &str, timestamp: i64) -> Result<BTreeMap<i32, i64>, CliError> {
    let leaders = cluster.leaders(topic)?;
    let mut out = BTreeMap::new();
    let mut by_node: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for (p, &l) in leaders.iter().enumerate() {
        by_node.entry(l).or_default().push(p as i32);
    }
    for (node, parts) in by_node {
        let req = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
            ListOffsetsTopic::default().with_name(topic_name(topic)).with_partitions(
                parts
                    .iter()
                    .map(|&p| {
                        ListOffsetsPartition::default()
                            .with_partition_index(p)
                            .with_current_leader_epoch(-1)
                            .with_timestamp(timestamp)
                    })
                    .collect(),
            ),
        ]);
        let resp = cluster.node(node)?.send(req)?;
        for t in resp.topics {
            for p in t.partitions {
                check(p.error_code, || format!("cannot list offsets of {topic}-{}", p.partition_index))?;
                out.insert(p.partition_index, p.offset);
            }
        }
    }
    Ok(out)
}

/// The node coordinating `group`.
pub fn coordinator(cluster: &mut Cluster, group: &str) -> Result<i32, CliError> {
    let req = FindCoordinatorRequest::default().with_key(StrBytes::from_string(group.to_string())).with_key_type(0);
    let v = cluster.any().version::<FindCoordinatorRequest>()?.min(3);
    let resp = cluster.any().send_at(req, v)?;
    check(resp.error_code, || format!("cannot find the coordinator of group {group:?}"))?;
    Ok(resp.node_id.0)
}

/// Committed offsets of `group` for `topics` (all of the group's when `None`):
/// (topic, partition) -> offset, only those with a commit.
pub fn committed(
    cluster: &mut Cluster,
    coordinator: i32,
    group: &str,
    topics: Option<&[(String, Vec<i32>)]>,
) -> Result<BTreeMap<(String, i32), i64>, CliError> {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_topics(topics.map(|ts| {
            ts.iter()
                .map(|(t, ps)| {
                    OffsetFetchRequestTopic::default().with_name(topic_name(t)).with_partition_indexes(ps.clone())
                })
                .collect()
        }));
    let conn = cluster.node(coordinator)?;
    let v = conn.version::<OffsetFetchRequest>()?.min(7);
    let resp = conn.send_at(req, v)?;
    check(resp.error_code, || format!("cannot fetch the offsets of group {group:?}"))?;
    let mut out = BTreeMap::new();
    for t in resp.topics {
        for p in t.partitions {
            check(p.error_code, || format!("cannot fetch the offset of {}-{}", t.name.as_str(), p.partition_index))?;
            if p.committed_offset >= 0 {
                out.insert((t.name.to_string(), p.partition_index), p.committed_offset);
            }
        }
    }
    Ok(out)
}

/// Commits `offsets` for `group` (generation -1 and no member id: a commit
/// from outside the group protocol, or the member's own).
pub fn commit(
    cluster: &mut Cluster,
    coordinator: i32,
    group: &str,
    generation: i32,
    member_id: &str,
    offsets: &BTreeMap<(String, i32), i64>,
) -> Result<(), CliError> {
    let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for ((t, p), o) in offsets {
        topics.entry(t).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(*p)
                .with_committed_offset(*o)
                .with_committed_leader_epoch(-1)
                .with_committed_metadata(Some(StrBytes::from_static_str(""))),
        );
    }
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(StrBytes::from_string(member_id.to_string()))
        .with_retention_time_ms(-1)
        .with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| OffsetCommitRequestTopic::default().with_name(topic_name(t)).with_partitions(ps))
                .collect(),
        );
    let conn = cluster.node(coordinator)?;
    let v = conn.version::<OffsetCommitRequest>()?.min(8);
    let resp = conn.send_at(req, v)?;
    for t in resp.topics {
        for p in t.partitions {
            check(p.error_code, || {
                format!("cannot commit {}-{} for group {group:?}", t.name.as_str(), p.partition_index)
            })?;
        }
    }
    Ok(())
}
