//! The consumer side of the classic group protocol for `sluice consume
//! --group`: join, the leader's range assignment, sync, heartbeats and
//! leaving. Subscriptions and assignments use Kafka's consumer protocol
//! (kafka-protocol's ConsumerProtocolSubscription/Assignment), so a sluice
//! member can share a group with Java, librdkafka or kafka-python members.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, GroupId, HeartbeatRequest, JoinGroupRequest,
    LeaveGroupRequest, SyncGroupRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::client::Cluster;
use super::error::{CliError, check};
use super::offsets::{coordinator, topic_name};

const SESSION_TIMEOUT_MS: i32 = 10_000;
const REBALANCE_TIMEOUT_MS: i32 = 30_000;
/// Heartbeats go out this often (a third of the session, as clients do).
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(3);

const MEMBER_ID_REQUIRED: i16 = 79;
const UNKNOWN_MEMBER_ID: i16 = 25;
const REBALANCE_IN_PROGRESS: i16 = 27;
const ILLEGAL_GENERATION: i16 = 22;

/// This process's membership in a group.
pub struct Membership {
    pub group: String,
    pub coordinator: i32,
    pub member_id: String,
    pub generation: i32,
    last_heartbeat: Instant,
}

fn encode_versioned<T: Encodable>(msg: &T, version: i16) -> Result<Bytes, CliError> {
    let mut b = BytesMut::new();
    b.put_i16(version);
    msg.encode(&mut b, version).map_err(|e| CliError::Codec(e.to_string()))?;
    Ok(b.freeze())
}

fn decode_versioned<T: Decodable>(mut b: Bytes) -> Option<T> {
    if b.len() < 2 {
        return None;
    }
    let version = b.get_i16().clamp(0, 3);
    T::decode(&mut b, version).ok()
}

/// Kafka's range assignor: per topic, members (sorted by id) get contiguous
/// ranges, the first ones one partition more when it does not divide evenly.
pub fn range_assign(
    subscriptions: &[(String, Vec<String>)],
    partitions: &BTreeMap<String, i32>,
) -> BTreeMap<String, Vec<(String, Vec<i32>)>> {
    let mut out: BTreeMap<String, Vec<(String, Vec<i32>)>> =
        subscriptions.iter().map(|(m, _)| (m.clone(), Vec::new())).collect();
    for (topic, &count) in partitions {
        let mut members: Vec<&String> =
            subscriptions.iter().filter(|(_, ts)| ts.contains(topic)).map(|(m, _)| m).collect();
        members.sort();
        if members.is_empty() {
            continue;
        }
        let (per, extra) = (count / members.len() as i32, count % members.len() as i32);
        let mut next = 0;
        for (i, m) in members.into_iter().enumerate() {
            let n = per + i32::from((i as i32) < extra);
            out.get_mut(m).expect("every member has an entry").push((topic.clone(), (next..next + n).collect()));
            next += n;
        }
    }
    out
}

impl Membership {
    /// Joins `group` subscribed to `topic` and returns the partitions of
    /// `topic` this member is assigned.
    pub fn join(cluster: &mut Cluster, group: &str, topic: &str) -> Result<(Self, Vec<i32>), CliError> {
        let coordinator = coordinator(cluster, group)?;
        let sub = ConsumerProtocolSubscription::default().with_topics(vec![StrBytes::from_string(topic.to_string())]);
        let metadata = encode_versioned(&sub, 0)?;
        let mut member_id = String::new();
        loop {
            let req = JoinGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
                .with_session_timeout_ms(SESSION_TIMEOUT_MS)
                .with_rebalance_timeout_ms(REBALANCE_TIMEOUT_MS)
                .with_member_id(StrBytes::from_string(member_id.clone()))
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocols(vec![
                    JoinGroupRequestProtocol::default()
                        .with_name(StrBytes::from_static_str("range"))
                        .with_metadata(metadata.clone()),
                ]);
            let resp = cluster.node(coordinator)?.send(req)?;
            match resp.error_code {
                MEMBER_ID_REQUIRED => {
                    member_id = resp.member_id.to_string();
                    continue;
                }
                UNKNOWN_MEMBER_ID => {
                    member_id.clear();
                    continue;
                }
                code => check(code, || format!("cannot join group {group:?}"))?,
            }
            member_id = resp.member_id.to_string();
            let generation = resp.generation_id;
            let mut assignments = Vec::new();
            if resp.leader == resp.member_id {
                let subs: Vec<(String, Vec<String>)> = resp
                    .members
                    .iter()
                    .map(|m| {
                        let topics = decode_versioned::<ConsumerProtocolSubscription>(m.metadata.clone())
                            .map(|s| s.topics.iter().map(|t| t.to_string()).collect())
                            .unwrap_or_default();
                        (m.member_id.to_string(), topics)
                    })
                    .collect();
                let mut wanted: Vec<String> = subs.iter().flat_map(|(_, ts)| ts.clone()).collect();
                wanted.sort();
                wanted.dedup();
                cluster.refresh(Some(&wanted))?;
                let counts: BTreeMap<String, i32> = wanted
                    .iter()
                    .filter_map(|t| cluster.leaders(t).ok().map(|l| (t.clone(), l.len() as i32)))
                    .collect();
                for (m, parts) in range_assign(&subs, &counts) {
                    let asg = ConsumerProtocolAssignment::default().with_assigned_partitions(
                        parts
                            .into_iter()
                            .map(|(t, ps)| TopicPartition::default().with_topic(topic_name(&t)).with_partitions(ps))
                            .collect(),
                    );
                    assignments.push(
                        SyncGroupRequestAssignment::default()
                            .with_member_id(StrBytes::from_string(m))
                            .with_assignment(encode_versioned(&asg, 0)?),
                    );
                }
            }
            let req = SyncGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
                .with_generation_id(generation)
                .with_member_id(StrBytes::from_string(member_id.clone()))
                .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
                .with_protocol_name(Some(StrBytes::from_static_str("range")))
                .with_assignments(assignments);
            let resp = cluster.node(coordinator)?.send(req)?;
            if matches!(resp.error_code, REBALANCE_IN_PROGRESS | ILLEGAL_GENERATION) {
                continue;
            }
            check(resp.error_code, || format!("cannot sync with group {group:?}"))?;
            let mine = decode_versioned::<ConsumerProtocolAssignment>(resp.assignment)
                .map(|a| {
                    a.assigned_partitions
                        .into_iter()
                        .filter(|tp| tp.topic.as_str() == topic)
                        .flat_map(|tp| tp.partitions)
                        .collect()
                })
                .unwrap_or_default();
            let me = Membership {
                group: group.to_string(),
                coordinator,
                member_id,
                generation,
                last_heartbeat: Instant::now(),
            };
            return Ok((me, mine));
        }
    }

    /// Sends a heartbeat when one is due. `Ok(false)`: the group is
    /// rebalancing (or forgot this member) and it must join again.
    pub fn heartbeat(&mut self, cluster: &mut Cluster) -> Result<bool, CliError> {
        if self.last_heartbeat.elapsed() < HEARTBEAT_EVERY {
            return Ok(true);
        }
        self.last_heartbeat = Instant::now();
        let req = HeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.group.clone())))
            .with_generation_id(self.generation)
            .with_member_id(StrBytes::from_string(self.member_id.clone()));
        let resp = cluster.node(self.coordinator)?.send(req)?;
        match resp.error_code {
            REBALANCE_IN_PROGRESS | ILLEGAL_GENERATION | UNKNOWN_MEMBER_ID => Ok(false),
            code => check(code, || format!("heartbeat to group {:?} failed", self.group)).map(|()| true),
        }
    }

    /// Leaves the group, so that the others take over at once.
    pub fn leave(&self, cluster: &mut Cluster) -> Result<(), CliError> {
        let conn = cluster.node(self.coordinator)?;
        let v = conn.version::<LeaveGroupRequest>()?;
        let mut req = LeaveGroupRequest::default().with_group_id(GroupId(StrBytes::from_string(self.group.clone())));
        if v >= 3 {
            req.members = vec![MemberIdentity::default().with_member_id(StrBytes::from_string(self.member_id.clone()))];
        } else {
            req.member_id = StrBytes::from_string(self.member_id.clone());
        }
        conn.send_at(req, v)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_assignment_matches_kafkas() {
        let subs = vec![("b".to_string(), vec!["t".to_string()]), ("a".to_string(), vec!["t".to_string()])];
        let counts: BTreeMap<String, i32> = [("t".to_string(), 5)].into_iter().collect();
        let got = range_assign(&subs, &counts);
        assert_eq!(got["a"], vec![("t".to_string(), vec![0, 1, 2])]);
        assert_eq!(got["b"], vec![("t".to_string(), vec![3, 4])]);
    }
}
