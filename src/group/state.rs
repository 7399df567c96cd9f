//! One consumer group under the classic protocol: members, generations and
//! the rebalance state machine of Kafka's `GroupCoordinator`
//! (Empty -> PreparingRebalance -> CompletingRebalance -> Stable). Pure
//! state: the coordinator does the I/O and the waiting.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use glommio::channels::local_channel::LocalSender;

use super::record::{GroupValue, MemberValue, OffsetValue};
use crate::protocol::ErrorCode;

/// Kafka's group states, named as DescribeGroups and ListGroups show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name Kafka uses on the wire.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// What a JoinGroup gets back.
#[derive(Debug, Clone)]
pub struct JoinResult {
    pub error: ErrorCode,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Every member with its metadata, for the leader only.
    pub members: Vec<(String, Option<String>, Bytes)>,
    /// The leader need not assign again (a static leader rejoining a stable group, v9+).
    pub skip_assignment: bool,
}

impl JoinResult {
    /// A failed join.
    pub fn error(error: ErrorCode, member_id: &str) -> Self {
        Self {
            error,
            generation: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
            skip_assignment: false,
        }
    }
}

/// What a SyncGroup gets back.
#[derive(Debug, Clone)]
pub struct SyncResult {
    pub error: ErrorCode,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    /// A failed sync.
    pub fn error(error: ErrorCode) -> Self {
        Self { error, protocol_type: None, protocol_name: None, assignment: Bytes::new() }
    }
}

/// A group member.
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    /// Supported protocols (assignors) with their metadata, in preference order.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    /// A JoinGroup waiting for the rebalance to complete.
    pub join_waiter: Option<LocalSender<JoinResult>>,
    /// A SyncGroup waiting for the leader's assignment.
    pub sync_waiter: Option<LocalSender<SyncResult>>,
    /// The member is expelled if it is not heard from by then.
    pub deadline: Instant,
}

impl Member {
    /// Its metadata for `protocol`.
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols.iter().find(|(n, _)| n == protocol).map(|(_, m)| m.clone()).unwrap_or_default()
    }

    /// Heard from the member: its session starts over.
    pub fn touch(&mut self, now: Instant) {
        self.deadline = now + self.session_timeout;
    }

    fn same_protocols(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }
}

/// A consumer group and its committed offsets.
pub struct Group {
    pub id: String,
    pub state: GroupState,
    /// When the state last changed (ms since the epoch), as Kafka records it.
    pub state_since_ms: i64,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// In join order: the first member becomes leader.
    pub members: Vec<Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, until they join.
    pub pending: HashMap<String, Instant>,
    /// When the rebalance in progress completes at the latest.
    pub join_deadline: Option<Instant>,
    /// During the initial rebalance delay: its hard limit.
    pub initial_delay_limit: Option<Instant>,
    /// Committed offsets by (topic, partition).
    pub offsets: HashMap<(String, i32), OffsetValue>,
}

impl Group {
    /// A new empty group.
    pub fn new(id: &str, now_ms: i64) -> Self {
        Self {
            id: id.to_string(),
            state: GroupState::Empty,
            state_since_ms: now_ms,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: Vec::new(),
            pending: HashMap::new(),
            join_deadline: None,
            initial_delay_limit: None,
            offsets: HashMap::new(),
        }
    }

    /// Moves to `state`, noting when.
    pub fn set_state(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.state_since_ms = now_ms;
    }

    /// The member with this id.
    pub fn member(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    /// The member with this id, mutably.
    pub fn member_mut(&mut self, id: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.id == id)
    }

    /// The member id a static instance currently has.
    pub fn static_member(&self, instance: &str) -> Option<&str> {
        self.members.iter().find(|m| m.instance_id.as_deref() == Some(instance)).map(|m| m.id.as_str())
    }

    /// Whether protocols offered by a joining member fit this group.
    pub fn accepts(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if protocols.is_empty() || protocol_type.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        // Some protocol must stay common to every member.
        self.candidates().iter().any(|c| protocols.iter().any(|(n, _)| n == c))
    }

    /// Protocols every member supports.
    fn candidates(&self) -> Vec<String> {
        let Some(first) = self.members.first() else {
            return Vec::new();
        };
        first
            .protocols
            .iter()
            .map(|(n, _)| n.clone())
            .filter(|n| self.members.iter().all(|m| m.protocols.iter().any(|(p, _)| p == n)))
            .collect()
    }

    /// Kafka's vote: each member votes for its most preferred common
    /// protocol; most votes wins (the earliest candidate on a tie).
    pub fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidates();
        let mut votes = vec![0usize; candidates.len()];
        for m in &self.members {
            if let Some(i) = m.protocols.iter().find_map(|(n, _)| candidates.iter().position(|c| c == n)) {
                votes[i] += 1;
            }
        }
        let best = votes.iter().enumerate().max_by_key(|&(i, v)| (*v, std::cmp::Reverse(i)))?.0;
        candidates.into_iter().nth(best)
    }

    /// Starts a rebalance. Members waiting for a sync are told to rejoin.
    pub fn prepare_rebalance(&mut self, now: Instant, now_ms: i64, initial_delay: Duration) {
        if self.state == GroupState::CompletingRebalance {
            for m in &mut self.members {
                m.assignment = Bytes::new();
                if let Some(w) = m.sync_waiter.take() {
                    let _ = w.try_send(SyncResult::error(ErrorCode::RebalanceInProgress));
                }
            }
        }
        let max_rebalance = self.members.iter().map(|m| m.rebalance_timeout).max().unwrap_or_default();
        if self.state == GroupState::Empty && !initial_delay.is_zero() {
            // group.initial.rebalance.delay.ms: let more members arrive
            // before the first generation.
            self.join_deadline = Some(now + initial_delay.min(max_rebalance));
            self.initial_delay_limit = Some(now + max_rebalance);
        } else {
            self.join_deadline = Some(now + max_rebalance);
            self.initial_delay_limit = None;
        }
        self.set_state(GroupState::PreparingRebalance, now_ms);
    }

    /// A new member joined during the initial delay: wait a little longer,
    /// within the limit.
    pub fn extend_initial_delay(&mut self, now: Instant, initial_delay: Duration) {
        if let (Some(limit), Some(deadline)) = (self.initial_delay_limit, self.join_deadline) {
            self.join_deadline = Some(deadline.max((now + initial_delay).min(limit)));
        }
    }

    /// Whether the rebalance in progress may complete now.
    pub fn join_ready(&self, now: Instant) -> bool {
        if self.state != GroupState::PreparingRebalance {
            return false;
        }
        let deadline_passed = self.join_deadline.is_some_and(|d| now >= d);
        if self.initial_delay_limit.is_some() {
            return deadline_passed;
        }
        let all_joined = self.members.iter().all(|m| m.join_waiter.is_some()) && self.pending.is_empty();
        all_joined || deadline_passed
    }

    /// Completes the rebalance: members that did not rejoin are dropped, the
    /// generation advances and every waiting JoinGroup is answered. Returns
    /// whether the group is now empty (its new state must be persisted).
    pub fn complete_join(&mut self, now: Instant, now_ms: i64) -> bool {
        assert_eq!(self.state, GroupState::PreparingRebalance, "only a rebalance in progress completes");
        self.members.retain(|m| m.join_waiter.is_some());
        self.pending.clear();
        self.join_deadline = None;
        self.initial_delay_limit = None;
        self.generation += 1;
        if self.members.is_empty() {
            self.protocol = None;
            self.leader = None;
            self.set_state(GroupState::Empty, now_ms);
            return true;
        }
        self.protocol = self.select_protocol();
        if self.leader.as_ref().is_none_or(|l| self.member(l).is_none()) {
            self.leader = Some(self.members[0].id.clone());
        }
        self.set_state(GroupState::CompletingRebalance, now_ms);
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let all: Vec<_> =
            self.members.iter().map(|m| (m.id.clone(), m.instance_id.clone(), m.metadata(&protocol))).collect();
        for m in &mut self.members {
            m.touch(now);
            let result = JoinResult {
                error: ErrorCode::None,
                generation: self.generation,
                protocol_type: self.protocol_type.clone(),
                protocol_name: Some(protocol.clone()),
                leader: leader.clone(),
                member_id: m.id.clone(),
                members: if m.id == leader { all.clone() } else { Vec::new() },
                skip_assignment: false,
            };
            if let Some(w) = m.join_waiter.take() {
                let _ = w.try_send(result);
            }
        }
        false
    }

    /// The current generation as a join answer for `member_id` (a member
    /// rejoining without changes does not start a rebalance).
    pub fn current_join(&self, member_id: &str) -> JoinResult {
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let members = if member_id == leader {
            self.members.iter().map(|m| (m.id.clone(), m.instance_id.clone(), m.metadata(&protocol))).collect()
        } else {
            Vec::new()
        };
        JoinResult {
            error: ErrorCode::None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: Some(protocol),
            leader,
            member_id: member_id.to_string(),
            members,
            skip_assignment: false,
        }
    }

    /// Adds a member, or updates a known one, and says whether that calls for
    /// a rebalance (new member, changed protocols, or the leader rejoining).
    pub fn upsert_member(&mut self, member: Member) -> bool {
        if let Some(m) = self.member_mut(&member.id) {
            let changed = !m.same_protocols(&member.protocols);
            m.protocols = member.protocols;
            m.session_timeout = member.session_timeout;
            m.rebalance_timeout = member.rebalance_timeout;
            m.client_id = member.client_id;
            m.client_host = member.client_host;
            let is_leader = self.leader.as_deref() == Some(member.id.as_str());
            return changed || is_leader;
        }
        self.members.push(member);
        true
    }

    /// Removes a member; its waiting requests learn it is gone.
    pub fn remove_member(&mut self, id: &str) -> Option<Member> {
        let i = self.members.iter().position(|m| m.id == id)?;
        let mut m = self.members.remove(i);
        if let Some(w) = m.join_waiter.take() {
            let _ = w.try_send(JoinResult::error(ErrorCode::UnknownMemberId, id));
        }
        if let Some(w) = m.sync_waiter.take() {
            let _ = w.try_send(SyncResult::error(ErrorCode::UnknownMemberId));
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = None;
        }
        Some(m)
    }

    /// After members left or were expelled: what the state machine does next.
    pub fn after_departure(&mut self, now: Instant, now_ms: i64, initial_delay: Duration) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                if self.members.is_empty() {
                    // Nobody left to rebalance: straight to a new empty generation.
                    self.prepare_rebalance(now, now_ms, Duration::ZERO);
                } else {
                    self.prepare_rebalance(now, now_ms, initial_delay);
                }
            }
            _ => {}
        }
    }

    /// The sync answer for a member of the current, stable generation.
    pub fn sync_answer(&self, member_id: &str) -> SyncResult {
        SyncResult {
            error: ErrorCode::None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            assignment: self.member(member_id).map(|m| m.assignment.clone()).unwrap_or_default(),
        }
    }

    /// The group as it is stored in `__consumer_offsets`.
    pub fn to_value(&self) -> GroupValue {
        let protocol = self.protocol.clone().unwrap_or_default();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            state_timestamp: self.state_since_ms,
            members: self
                .members
                .iter()
                .map(|m| MemberValue {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout.as_millis() as i32,
                    session_timeout_ms: m.session_timeout.as_millis() as i32,
                    subscription: m.metadata(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Restores a stored group (on load): members get a full session to
    /// reconnect before they are expelled.
    pub fn restore(&mut self, v: GroupValue, now: Instant) {
        self.generation = v.generation;
        self.protocol_type = Some(v.protocol_type).filter(|t| !t.is_empty());
        self.leader = v.leader;
        self.state_since_ms = v.state_timestamp;
        let protocol = v.protocol.clone().unwrap_or_default();
        self.members = v
            .members
            .into_iter()
            .map(|m| Member {
                id: m.member_id,
                instance_id: m.group_instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                session_timeout: Duration::from_millis(m.session_timeout_ms.max(0) as u64),
                rebalance_timeout: Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64),
                protocols: vec![(protocol.clone(), m.subscription)],
                assignment: m.assignment,
                join_waiter: None,
                sync_waiter: None,
                deadline: now + Duration::from_millis(m.session_timeout_ms.max(0) as u64),
            })
            .collect();
        self.protocol = v.protocol;
        self.state = if self.members.is_empty() { GroupState::Empty } else { GroupState::Stable };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, protocols: &[&str]) -> Member {
        Member {
            id: id.into(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(30),
            protocols: protocols.iter().map(|p| (p.to_string(), Bytes::from_static(b"m"))).collect(),
            assignment: Bytes::new(),
            join_waiter: None,
            sync_waiter: None,
            deadline: Instant::now(),
        }
    }

    #[test]
    fn protocol_vote_prefers_the_common_majority_choice() {
        let mut g = Group::new("g", 0);
        g.members.push(member("a", &["range", "roundrobin"]));
        g.members.push(member("b", &["roundrobin", "range"]));
        g.members.push(member("c", &["roundrobin", "range"]));
        assert_eq!(g.select_protocol().as_deref(), Some("roundrobin"));
        g.members.push(member("d", &["range"]));
        assert_eq!(g.select_protocol().as_deref(), Some("range"));
    }

    #[test]
    fn a_member_without_a_common_protocol_is_refused() {
        let mut g = Group::new("g", 0);
        g.protocol_type = Some("consumer".into());
        g.members.push(member("a", &["range"]));
        let offered = vec![("sticky".to_string(), Bytes::new())];
        assert!(!g.accepts("consumer", &offered));
        assert!(!g.accepts("connect", &[("range".to_string(), Bytes::new())]));
        assert!(g.accepts("consumer", &[("range".to_string(), Bytes::new())]));
    }

    #[test]
    fn rebalance_completes_when_everyone_rejoined_and_bumps_the_generation() {
        let now = Instant::now();
        let mut g = Group::new("g", 0);
        g.prepare_rebalance(now, 0, Duration::ZERO);
        let (tx, rx) = glommio::channels::local_channel::new_bounded(1);
        let mut m = member("a", &["range"]);
        m.join_waiter = Some(tx);
        g.upsert_member(m);
        assert!(g.join_ready(now));
        assert!(!g.complete_join(now, 1));
        assert_eq!(g.state, GroupState::CompletingRebalance);
        assert_eq!(g.generation, 1);
        assert_eq!(g.leader.as_deref(), Some("a"));
        drop(rx);
    }
}
