//! A shard's group coordinator: the groups whose `__consumer_offsets`
//! partition this shard owns. Every group request for them is served here,
//! on the one thread that owns the partition, so group state needs no locks;
//! a request for a group owned elsewhere gets `NOT_COORDINATOR`.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use glommio::channels::local_channel;
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::Decodable;
use tracing::{error, info, warn};

use super::persist::{self, Write};
use super::record::{OffsetValue, RecordKey, RecordValue};
use super::state::{Group, GroupState, JoinResult, Member, SyncResult};
use crate::broker::context::ShardCtx;
use crate::broker::notify::Notify;
use crate::clock::now_ms;
use crate::metadata::TopicMeta;
use crate::protocol::ErrorCode;
use crate::storage::PartitionLog;

/// The internal topic holding groups and committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// The `__consumer_offsets` partition of a group: Kafka's rule,
/// `abs(groupId.hashCode()) % partitions` with Java's String hash, so that a
/// group lands on the partition Kafka would put it on.
pub fn partition_for(group: &str, partitions: usize) -> i32 {
    assert!(partitions > 0, "__consumer_offsets has partitions");
    let mut h: i32 = 0;
    for unit in group.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    (abs as usize % partitions) as i32
}

/// A JoinGroup, as the coordinator needs it.
pub struct JoinRequest {
    pub group_id: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+ clients expect MEMBER_ID_REQUIRED on a first join.
    pub require_known_member_id: bool,
}

/// A SyncGroup.
pub struct SyncRequest {
    pub group_id: String,
    pub generation: i32,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

/// One partition's commit.
pub struct CommitPartition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// A group as DescribeGroups shows it.
pub struct GroupSummary {
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol: String,
    /// (member id, instance id, client id, client host, metadata, assignment).
    pub members: Vec<(String, Option<String>, String, String, Bytes, Bytes)>,
}

/// Loading state of an owned `__consumer_offsets` partition.
enum Load {
    Loading(Rc<Notify>),
    Loaded,
}

/// The groups of one shard.
#[derive(Default)]
pub struct Coordinator {
    groups: RefCell<HashMap<String, Group>>,
    loads: RefCell<HashMap<i32, Load>>,
}

fn ms(v: i64) -> Duration {
    Duration::from_millis(v.max(0) as u64)
}

impl Coordinator {
    /// The owned `__consumer_offsets` partition of `group`, loaded.
    async fn home(&self, ctx: &ShardCtx, group: &str) -> Result<Rc<PartitionLog>, ErrorCode> {
        if group.is_empty() {
            return Err(ErrorCode::InvalidGroupId);
        }
        let (topic, p) = locate(ctx, group)?;
        if topic.leaders[p as usize] != ctx.setup.node_id {
            return Err(ErrorCode::NotCoordinator);
        }
        let log = ctx.partition(&topic, p).ok_or(ErrorCode::CoordinatorLoadInProgress)?;
        self.ensure_loaded(p, &log).await?;
        Ok(log)
    }

    /// Replays partition `p` into the group map the first time it is needed.
    async fn ensure_loaded(&self, p: i32, log: &Rc<PartitionLog>) -> Result<(), ErrorCode> {
        loop {
            let wait = match self.loads.borrow().get(&p) {
                Some(Load::Loaded) => return Ok(()),
                Some(Load::Loading(n)) => Some(n.clone()),
                None => None,
            };
            match wait {
                Some(n) => {
                    let notified = n.notified();
                    if matches!(self.loads.borrow().get(&p), Some(Load::Loading(_))) {
                        notified.await;
                    }
                }
                None => break,
            }
        }
        let done = Rc::new(Notify::default());
        self.loads.borrow_mut().insert(p, Load::Loading(done.clone()));
        let now = Instant::now();
        let mut loaded: HashMap<String, Group> = HashMap::new();
        let stamp = now_ms();
        let result = persist::replay(log, |key, value| {
            let g = loaded.entry(key.group().to_string()).or_insert_with(|| Group::new(key.group(), stamp));
            match (key, value) {
                (RecordKey::Offset { topic, partition, .. }, Some(RecordValue::Offset(v))) => {
                    g.offsets.insert((topic, partition), v);
                }
                (RecordKey::Offset { topic, partition, .. }, None) => {
                    g.offsets.remove(&(topic, partition));
                }
                (RecordKey::Group { .. }, Some(RecordValue::Group(v))) => g.restore(v, now),
                (RecordKey::Group { group }, None) => {
                    // Deleted: offsets written before the tombstone went with it.
                    loaded.remove(&group);
                }
                _ => {}
            }
        })
        .await;
        let ok = match result {
            Ok(n) => {
                loaded.retain(|_, g| !g.members.is_empty() || !g.offsets.is_empty());
                if n > 0 {
                    info!(partition = p, records = n, groups = loaded.len(), "loaded consumer groups");
                }
                self.groups.borrow_mut().extend(loaded);
                self.loads.borrow_mut().insert(p, Load::Loaded);
                Ok(())
            }
            Err(e) => {
                warn!(partition = p, "cannot load consumer groups: {e}");
                self.loads.borrow_mut().remove(&p);
                Err(ErrorCode::CoordinatorLoadInProgress)
            }
        };
        done.notify_all();
        ok
    }

    /// Forgets the groups of `__consumer_offsets` partition `p`: this shard
    /// no longer leads it (a new leader loads them from its own log), and
    /// should it lead it again it must load them afresh.
    pub fn unload(&self, p: i32, partitions: usize) {
        if self.loads.borrow_mut().remove(&p).is_some() {
            self.groups.borrow_mut().retain(|g, _| partition_for(g, partitions) != p);
            info!(partition = p, "consumer groups unloaded: another node leads their partition now");
        }
    }

    /// Loads every owned `__consumer_offsets` partition (for ListGroups and
    /// topic deletion). Returns whether all of them loaded.
    async fn load_all(&self, ctx: &ShardCtx) -> bool {
        let Some(topic) = ctx.setup.snapshot.load().topic(OFFSETS_TOPIC).cloned() else {
            return true;
        };
        let mut all = true;
        for (p, &leader) in topic.leaders.iter().enumerate() {
            if leader == ctx.setup.node_id
                && let Some(log) = ctx.partition(&topic, p as i32)
            {
                all &= self.ensure_loaded(p as i32, &log).await.is_ok();
            }
        }
        all
    }

    /// JoinGroup: resolves when the rebalance it takes part in completes.
    pub async fn join(&self, ctx: &ShardCtx, req: JoinRequest) -> JoinResult {
        let log = match self.home(ctx, &req.group_id).await {
            Ok(l) => l,
            Err(e) => return JoinResult::error(e, &req.member_id),
        };
        let s = ctx.setup.settings.load();
        let session = i64::from(req.session_timeout_ms);
        if session < s.typed().group_min_session_timeout_ms || session > s.typed().group_max_session_timeout_ms {
            return JoinResult::error(ErrorCode::InvalidSessionTimeout, &req.member_id);
        }
        let initial_delay = ms(s.typed().group_initial_rebalance_delay_ms);
        let max_size = s.typed().group_max_size;
        let (now, stamp) = (Instant::now(), now_ms());
        let mut persist_now = None;
        let rx = {
            let mut groups = self.groups.borrow_mut();
            if !req.member_id.is_empty() && !groups.contains_key(&req.group_id) {
                return JoinResult::error(ErrorCode::UnknownMemberId, &req.member_id);
            }
            let g = groups.entry(req.group_id.clone()).or_insert_with(|| Group::new(&req.group_id, stamp));
            if !g.accepts(&req.protocol_type, &req.protocols) {
                return JoinResult::error(ErrorCode::InconsistentGroupProtocol, &req.member_id);
            }
            let mut member_id = req.member_id.clone();
            let mut known_static = None;
            if member_id.is_empty() {
                let prefix = req.instance_id.as_deref().unwrap_or(&req.client_id);
                let new_id = format!("{prefix}-{}", uuid::Uuid::new_v4());
                if let Some(inst) = &req.instance_id {
                    known_static = g.static_member(inst).map(str::to_string);
                } else if req.require_known_member_id {
                    // KIP-394: the id is handed out first, and the member
                    // joins with it, so a lost response leaves no ghost member.
                    g.pending.insert(new_id.clone(), now + ms(session));
                    return JoinResult::error(ErrorCode::MemberIdRequired, &new_id);
                }
                member_id = new_id;
            } else {
                if let Some(inst) = &req.instance_id
                    && let Some(current) = g.static_member(inst)
                    && current != member_id
                {
                    return JoinResult::error(ErrorCode::FencedInstanceId, &req.member_id);
                }
                if g.pending.remove(&member_id).is_none() && g.member(&member_id).is_none() {
                    return JoinResult::error(ErrorCode::UnknownMemberId, &req.member_id);
                }
            }
            if let Some(old) = &known_static {
                // A static member came back under a new id: it takes the old
                // member's place, and the old id is fenced.
                let m = g.member_mut(old).expect("found by instance id");
                if let Some(w) = m.join_waiter.take() {
                    let _ = w.try_send(JoinResult::error(ErrorCode::FencedInstanceId, old));
                }
                if let Some(w) = m.sync_waiter.take() {
                    let _ = w.try_send(SyncResult::error(ErrorCode::FencedInstanceId));
                }
                m.id = member_id.clone();
                if g.leader.as_deref() == Some(old.as_str()) {
                    g.leader = Some(member_id.clone());
                }
            }
            let existed = g.member(&member_id).is_some();
            if !existed && g.members.len() as i64 >= max_size {
                return JoinResult::error(ErrorCode::GroupMaxSizeReached, &member_id);
            }
            if g.members.is_empty() {
                g.protocol_type = Some(req.protocol_type.clone());
            }
            let member = Member {
                id: member_id.clone(),
                instance_id: req.instance_id.clone(),
                client_id: req.client_id.clone(),
                client_host: req.client_host.clone(),
                session_timeout: ms(session),
                rebalance_timeout: ms(i64::from(req.rebalance_timeout_ms)),
                protocols: req.protocols.clone(),
                assignment: Bytes::new(),
                join_waiter: None,
                sync_waiter: None,
                deadline: now + ms(session),
            };
            let changed = g.upsert_member(member);
            let stable = matches!(g.state, GroupState::Stable | GroupState::CompletingRebalance);
            if existed && stable && (!changed || known_static.is_some()) {
                // Nothing changed (or a static member came back): the
                // current generation stands, no rebalance.
                let mut answer = g.current_join(&member_id);
                if known_static.is_some() {
                    answer.skip_assignment = answer.leader == member_id;
                    persist_now = Some(g.to_value());
                }
                drop(groups);
                if let Some(v) = persist_now {
                    self.persist_group(&log, req.group_id.clone(), v);
                }
                return answer;
            }
            let (tx, rx) = local_channel::new_bounded(1);
            g.member_mut(&member_id).expect("just upserted").join_waiter = Some(tx);
            match g.state {
                GroupState::Empty | GroupState::Stable | GroupState::CompletingRebalance => {
                    g.prepare_rebalance(now, stamp, initial_delay)
                }
                GroupState::PreparingRebalance if !existed => g.extend_initial_delay(now, initial_delay),
                _ => {}
            }
            if g.join_ready(now) && g.complete_join(now, stamp) {
                persist_now = Some(g.to_value());
            }
            rx
        };
        if let Some(v) = persist_now {
            self.persist_group(&log, req.group_id.clone(), v);
        }
        rx.recv().await.unwrap_or_else(|| JoinResult::error(ErrorCode::UnknownServerError, &req.member_id))
    }

    /// SyncGroup: the leader's assignment is stored, then every member gets
    /// its share.
    pub async fn sync(&self, ctx: &ShardCtx, req: SyncRequest) -> SyncResult {
        let log = match self.home(ctx, &req.group_id).await {
            Ok(l) => l,
            Err(e) => return SyncResult::error(e),
        };
        let now = Instant::now();
        let (rx, store) = {
            let mut groups = self.groups.borrow_mut();
            let Some(g) = groups.get_mut(&req.group_id) else {
                return SyncResult::error(ErrorCode::UnknownMemberId);
            };
            if let Err(e) = check_member(g, &req.member_id, req.instance_id.as_deref()) {
                return SyncResult::error(e);
            }
            if req.generation != g.generation {
                return SyncResult::error(ErrorCode::IllegalGeneration);
            }
            if req.protocol_type.as_ref().is_some_and(|t| Some(t) != g.protocol_type.as_ref())
                || req.protocol_name.as_ref().is_some_and(|n| Some(n) != g.protocol.as_ref())
            {
                return SyncResult::error(ErrorCode::InconsistentGroupProtocol);
            }
            match g.state {
                GroupState::Empty | GroupState::Dead => return SyncResult::error(ErrorCode::UnknownMemberId),
                GroupState::PreparingRebalance => return SyncResult::error(ErrorCode::RebalanceInProgress),
                GroupState::Stable => {
                    g.member_mut(&req.member_id).expect("checked").touch(now);
                    return g.sync_answer(&req.member_id);
                }
                GroupState::CompletingRebalance => {}
            }
            let (tx, rx) = local_channel::new_bounded(1);
            let m = g.member_mut(&req.member_id).expect("checked");
            m.touch(now);
            m.sync_waiter = Some(tx);
            let mut store = None;
            if g.leader.as_deref() == Some(req.member_id.as_str()) {
                let assigned: HashMap<&str, &Bytes> = req.assignments.iter().map(|(m, a)| (m.as_str(), a)).collect();
                for m in &mut g.members {
                    m.assignment = assigned.get(m.id.as_str()).map(|a| (*a).clone()).unwrap_or_default();
                }
                store = Some((g.generation, g.to_value()));
            }
            (rx, store)
        };
        if let Some((generation, value)) = store {
            let key = RecordKey::Group { group: req.group_id.clone() };
            let result = persist::append(&log, &[(key, Some(RecordValue::Group(value)))], now_ms()).await;
            let mut groups = self.groups.borrow_mut();
            if let Some(g) = groups.get_mut(&req.group_id)
                && g.generation == generation
                && g.state == GroupState::CompletingRebalance
            {
                match result {
                    Ok(()) => {
                        g.set_state(GroupState::Stable, now_ms());
                        let answers: Vec<_> = g.members.iter().map(|m| g.sync_answer(&m.id)).collect();
                        for (m, a) in g.members.iter_mut().zip(answers) {
                            if let Some(w) = m.sync_waiter.take() {
                                let _ = w.try_send(a);
                            }
                        }
                    }
                    Err(e) => {
                        warn!(group = %req.group_id, "cannot store the group's assignment: {e}");
                        for m in &mut g.members {
                            m.assignment = Bytes::new();
                            if let Some(w) = m.sync_waiter.take() {
                                let _ = w.try_send(SyncResult::error(ErrorCode::CoordinatorNotAvailable));
                            }
                        }
                        let delay = ms(ctx.setup.settings.load().typed().group_initial_rebalance_delay_ms);
                        g.prepare_rebalance(Instant::now(), now_ms(), delay);
                    }
                }
            }
        }
        rx.recv().await.unwrap_or_else(|| SyncResult::error(ErrorCode::UnknownServerError))
    }

    /// Heartbeat: keeps a member alive and tells it when to rejoin.
    pub async fn heartbeat(
        &self,
        ctx: &ShardCtx,
        group: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> ErrorCode {
        if let Err(e) = self.home(ctx, group).await {
            return e;
        }
        let mut groups = self.groups.borrow_mut();
        let Some(g) = groups.get_mut(group) else {
            return ErrorCode::UnknownMemberId;
        };
        if let Err(e) = check_member(g, member_id, instance_id) {
            return e;
        }
        match g.state {
            GroupState::Empty | GroupState::Dead => ErrorCode::UnknownMemberId,
            GroupState::PreparingRebalance => {
                g.member_mut(member_id).expect("checked").touch(Instant::now());
                ErrorCode::RebalanceInProgress
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                if generation != g.generation {
                    return ErrorCode::IllegalGeneration;
                }
                g.member_mut(member_id).expect("checked").touch(Instant::now());
                ErrorCode::None
            }
        }
    }

    /// LeaveGroup: (member id, instance id) pairs; one result each.
    pub async fn leave(
        &self,
        ctx: &ShardCtx,
        group: &str,
        leaving: &[(String, Option<String>)],
    ) -> Result<Vec<ErrorCode>, ErrorCode> {
        let log = self.home(ctx, group).await?;
        let (now, stamp) = (Instant::now(), now_ms());
        let delay = ms(ctx.setup.settings.load().typed().group_initial_rebalance_delay_ms);
        let mut groups = self.groups.borrow_mut();
        let Some(g) = groups.get_mut(group) else {
            return Err(ErrorCode::UnknownMemberId);
        };
        let mut results = Vec::with_capacity(leaving.len());
        let mut left = false;
        for (member_id, instance_id) in leaving {
            let id = match instance_id {
                Some(inst) => match g.static_member(inst) {
                    None => Err(ErrorCode::UnknownMemberId),
                    Some(cur) if !member_id.is_empty() && cur != member_id => Err(ErrorCode::FencedInstanceId),
                    Some(cur) => Ok(cur.to_string()),
                },
                None if g.member(member_id).is_some() => Ok(member_id.clone()),
                None => Err(ErrorCode::UnknownMemberId),
            };
            match id {
                Ok(id) => {
                    g.remove_member(&id);
                    info!(group, member = %id, "member left the group");
                    left = true;
                    results.push(ErrorCode::None);
                }
                Err(e) => results.push(e),
            }
        }
        if left {
            g.after_departure(now, stamp, delay);
            if g.join_ready(now) && g.complete_join(now, stamp) {
                let v = g.to_value();
                drop(groups);
                self.persist_group(&log, group.to_string(), v);
            }
        }
        Ok(results)
    }

    /// OffsetCommit: one result per partition, in order.
    pub async fn commit(
        &self,
        ctx: &ShardCtx,
        group: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        partitions: &[CommitPartition],
    ) -> Vec<ErrorCode> {
        let all = |e: ErrorCode| vec![e; partitions.len()];
        let log = match self.home(ctx, group).await {
            Ok(l) => l,
            Err(e) => return all(e),
        };
        let stamp = now_ms();
        {
            let mut groups = self.groups.borrow_mut();
            if generation < 0 && member_id.is_empty() {
                // A commit from outside the group protocol (assign() users,
                // admin tools): only while the group has no members.
                let g = groups.entry(group.to_string()).or_insert_with(|| Group::new(group, stamp));
                if g.state != GroupState::Empty {
                    return all(ErrorCode::UnknownMemberId);
                }
            } else {
                let Some(g) = groups.get_mut(group) else {
                    return all(ErrorCode::IllegalGeneration);
                };
                if let Err(e) = check_member(g, member_id, instance_id) {
                    return all(e);
                }
                if g.state == GroupState::CompletingRebalance {
                    return all(ErrorCode::RebalanceInProgress);
                }
                if generation != g.generation {
                    return all(ErrorCode::IllegalGeneration);
                }
                g.member_mut(member_id).expect("checked").touch(Instant::now());
            }
        }
        let meta = ctx.setup.snapshot.load();
        let max_metadata = ctx.setup.settings.load().typed().offset_metadata_max_bytes;
        let mut results = Vec::with_capacity(partitions.len());
        let mut writes: Vec<Write> = Vec::new();
        // The committed topics' ids: one deleted while the commit is stored
        // has had its offsets dropped (see `drop_topic_offsets`), after
        // this commit's record, and they must not come back in memory.
        let mut ids = HashMap::new();
        for p in partitions {
            let topic = meta.topic(&p.topic);
            let exists = topic.is_some_and(|t| p.partition >= 0 && (p.partition as usize) < t.leaders.len());
            if let Some(t) = topic {
                ids.insert(p.topic.clone(), t.id);
            }
            let code = if !exists {
                ErrorCode::UnknownTopicOrPartition
            } else if p.metadata.as_ref().is_some_and(|m| m.len() as i64 > max_metadata) {
                ErrorCode::OffsetMetadataTooLarge
            } else {
                let key =
                    RecordKey::Offset { group: group.to_string(), topic: p.topic.clone(), partition: p.partition };
                let value = OffsetValue {
                    offset: p.offset,
                    leader_epoch: p.leader_epoch,
                    metadata: p.metadata.clone().unwrap_or_default(),
                    commit_timestamp: stamp,
                };
                writes.push((key, Some(RecordValue::Offset(value))));
                ErrorCode::None
            };
            results.push(code);
        }
        if let Err(e) = persist::append(&log, &writes, stamp).await {
            warn!(group, "cannot store committed offsets: {e}");
            return results
                .into_iter()
                .map(|c| if c == ErrorCode::None { ErrorCode::CoordinatorNotAvailable } else { c })
                .collect();
        }
        let meta = ctx.setup.snapshot.load();
        let mut groups = self.groups.borrow_mut();
        let g = groups.entry(group.to_string()).or_insert_with(|| Group::new(group, stamp));
        for (key, value) in writes {
            if let (RecordKey::Offset { topic, partition, .. }, Some(RecordValue::Offset(v))) = (key, value)
                && meta.topic(&topic).map(|t| t.id) == ids.get(&topic).copied()
            {
                g.offsets.insert((topic, partition), v);
            }
        }
        results
    }

    /// OffsetFetch for one group: committed offsets of `wanted` partitions
    /// (every committed one when `None`), as (topic, partition, offset).
    pub async fn fetch_offsets(
        &self,
        ctx: &ShardCtx,
        group: &str,
        wanted: Option<Vec<(String, Vec<i32>)>>,
    ) -> Result<Vec<(String, i32, Option<OffsetValue>)>, ErrorCode> {
        self.home(ctx, group).await?;
        let groups = self.groups.borrow();
        let offsets = groups.get(group).map(|g| &g.offsets);
        let get = |t: &str, p: i32| offsets.and_then(|o| o.get(&(t.to_string(), p)).cloned());
        Ok(match wanted {
            Some(topics) => topics
                .into_iter()
                .flat_map(|(t, parts)| parts.into_iter().map(move |p| (t.clone(), p)))
                .map(|(t, p)| {
                    let v = get(&t, p);
                    (t, p, v)
                })
                .collect(),
            None => {
                let mut all: Vec<_> =
                    offsets.into_iter().flatten().map(|((t, p), v)| (t.clone(), *p, Some(v.clone()))).collect();
                all.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
                all
            }
        })
    }

    /// DescribeGroups for one group (`None`: no such group here).
    pub async fn describe(&self, ctx: &ShardCtx, group: &str) -> Result<Option<GroupSummary>, ErrorCode> {
        self.home(ctx, group).await?;
        let groups = self.groups.borrow();
        let Some(g) = groups.get(group) else {
            return Ok(None);
        };
        let stable = g.state == GroupState::Stable;
        let protocol = g.protocol.clone().unwrap_or_default();
        Ok(Some(GroupSummary {
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: if stable { protocol.clone() } else { String::new() },
            members: g
                .members
                .iter()
                .map(|m| {
                    let (meta, asg) = if stable {
                        (m.metadata(&protocol), m.assignment.clone())
                    } else {
                        (Bytes::new(), Bytes::new())
                    };
                    (m.id.clone(), m.instance_id.clone(), m.client_id.clone(), m.client_host.clone(), meta, asg)
                })
                .collect(),
        }))
    }

    /// ListGroups: (group id, protocol type, state) of every group here.
    pub async fn list(&self, ctx: &ShardCtx) -> Vec<(String, String, GroupState)> {
        self.load_all(ctx).await;
        let mut out: Vec<_> = self
            .groups
            .borrow()
            .values()
            .map(|g| (g.id.clone(), g.protocol_type.clone().unwrap_or_default(), g.state))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// DeleteGroups for one group: only an empty group can go.
    pub async fn delete(&self, ctx: &ShardCtx, group: &str) -> ErrorCode {
        let log = match self.home(ctx, group).await {
            Ok(l) => l,
            Err(e) => return e,
        };
        let writes: Vec<Write> = {
            let groups = self.groups.borrow();
            let Some(g) = groups.get(group) else {
                return ErrorCode::GroupIdNotFound;
            };
            if g.state != GroupState::Empty {
                return ErrorCode::NonEmptyGroup;
            }
            g.offsets
                .keys()
                .map(|(t, p)| (RecordKey::Offset { group: group.to_string(), topic: t.clone(), partition: *p }, None))
                .chain(std::iter::once((RecordKey::Group { group: group.to_string() }, None)))
                .collect()
        };
        if let Err(e) = persist::append(&log, &writes, now_ms()).await {
            warn!(group, "cannot delete the group: {e}");
            return ErrorCode::CoordinatorNotAvailable;
        }
        let mut groups = self.groups.borrow_mut();
        if groups.get(group).is_some_and(|g| g.state == GroupState::Empty) {
            groups.remove(group);
            info!(group, "group deleted");
        }
        ErrorCode::None
    }

    /// OffsetDelete: committed offsets of partitions the group does not
    /// consume go; subscribed ones get GROUP_SUBSCRIBED_TO_TOPIC.
    pub async fn delete_offsets(
        &self,
        ctx: &ShardCtx,
        group: &str,
        partitions: &[(String, i32)],
    ) -> Result<Vec<ErrorCode>, ErrorCode> {
        let log = self.home(ctx, group).await?;
        let (writes, results) = {
            let groups = self.groups.borrow();
            let g = groups.get(group).ok_or(ErrorCode::GroupIdNotFound)?;
            let subscribed = subscribed_topics(g);
            let mut writes: Vec<Write> = Vec::new();
            let mut results = Vec::with_capacity(partitions.len());
            for (t, p) in partitions {
                if subscribed.contains(t) {
                    results.push(ErrorCode::GroupSubscribedToTopic);
                    continue;
                }
                if g.offsets.contains_key(&(t.clone(), *p)) {
                    writes
                        .push((RecordKey::Offset { group: group.to_string(), topic: t.clone(), partition: *p }, None));
                }
                results.push(ErrorCode::None);
            }
            (writes, results)
        };
        persist::append(&log, &writes, now_ms()).await.map_err(|_| ErrorCode::CoordinatorNotAvailable)?;
        if let Some(g) = self.groups.borrow_mut().get_mut(group) {
            for (k, _) in &writes {
                if let RecordKey::Offset { topic, partition, .. } = k {
                    g.offsets.remove(&(topic.clone(), *partition));
                }
            }
        }
        Ok(results)
    }

    /// Stores a group's state in the background.
    fn persist_group(&self, log: &Rc<PartitionLog>, group: String, value: super::record::GroupValue) {
        self.spawn_persist(log, vec![(RecordKey::Group { group }, Some(RecordValue::Group(value)))]);
    }

    /// Writes group records in the background (a completed rebalance that
    /// left the group empty, a static member's new id).
    fn spawn_persist(&self, log: &Rc<PartitionLog>, writes: Vec<Write>) {
        let log = log.clone();
        glommio::spawn_local(async move {
            if let Err(e) = persist::append(&log, &writes, now_ms()).await {
                warn!("cannot store group state: {e}");
            }
        })
        .detach();
    }

    /// One pass of the coordinator's clock: expels members whose session
    /// ran out, completes rebalances whose time is up, and (when
    /// `expire_offsets`) drops offsets of groups empty for longer than
    /// `offsets.retention.minutes`.
    pub fn tick(&self, ctx: &ShardCtx, expire_offsets: bool) {
        let (now, stamp) = (Instant::now(), now_ms());
        let s = ctx.setup.settings.load();
        let delay = ms(s.typed().group_initial_rebalance_delay_ms);
        let retention_ms = s.typed().offsets_retention_minutes.saturating_mul(60_000);
        let mut writes: Vec<Write> = Vec::new();
        let mut groups = self.groups.borrow_mut();
        let mut gone = Vec::new();
        for g in groups.values_mut() {
            g.pending.retain(|_, deadline| *deadline > now);
            let expired: Vec<String> = g
                .members
                .iter()
                .filter(|m| m.join_waiter.is_none() && m.deadline <= now)
                .map(|m| m.id.clone())
                .collect();
            for id in &expired {
                info!(group = %g.id, member = %id, "member's session expired; removing it from the group");
                g.remove_member(id);
            }
            if !expired.is_empty() {
                g.after_departure(now, stamp, delay);
            }
            if g.join_ready(now) && g.complete_join(now, stamp) {
                writes.push((RecordKey::Group { group: g.id.clone() }, Some(RecordValue::Group(g.to_value()))));
            }
            if expire_offsets && g.state == GroupState::Empty {
                let before = g.offsets.len();
                let since = g.state_since_ms;
                let group = g.id.clone();
                g.offsets.retain(|(t, p), v| {
                    let keep = v.commit_timestamp.max(since).saturating_add(retention_ms) > stamp;
                    if !keep {
                        writes
                            .push((RecordKey::Offset { group: group.clone(), topic: t.clone(), partition: *p }, None));
                    }
                    keep
                });
                if g.offsets.is_empty() && before > 0 {
                    info!(group = %g.id, offsets = before, "expired the committed offsets of an empty group");
                    writes.push((RecordKey::Group { group: g.id.clone() }, None));
                    gone.push(g.id.clone());
                }
            }
        }
        for id in gone {
            groups.remove(&id);
        }
        drop(groups);
        for (log, writes) in by_partition(ctx, writes) {
            self.spawn_persist(&log, writes);
        }
    }

    /// Topic deletion: the topic's committed offsets go from every group
    /// here, as in Kafka, and a group left empty with no offsets leaves the
    /// group list. A topic created again under the name must not resume at
    /// the old topic's offsets: a group's consumers would skip its first
    /// records. Awaited before the deletion is answered, so the tombstones
    /// are in their partitions' logs before any commit for a new topic of
    /// the name. (The metadata no longer has the topic when this runs: a
    /// commit for it either failed or was appended before the tombstones.)
    pub async fn drop_topic_offsets(&self, ctx: &ShardCtx, topic: &str) {
        debug_assert!(ctx.setup.snapshot.load().topic(topic).is_none(), "the topic is deleted first");
        // Groups not yet loaded would bring the offsets back when they are.
        if !self.load_all(ctx).await {
            error!(topic, "some consumer groups could not be loaded: their offsets of the deleted topic stay");
        }
        let mut writes: Vec<Write> = Vec::new();
        self.groups.borrow_mut().retain(|id, g| {
            let before = g.offsets.len();
            g.offsets.retain(|(t, p), _| {
                let keep = t != topic;
                if !keep {
                    let key = RecordKey::Offset { group: id.clone(), topic: t.clone(), partition: *p };
                    writes.push((key, None));
                }
                keep
            });
            let dropped = before - g.offsets.len();
            if dropped > 0 {
                info!(group = %id, topic, offsets = dropped, "dropped the committed offsets of a deleted topic");
            }
            // No tombstone for the group: a commit of another topic may be
            // on its way to disk, and a tombstone after it would take that
            // offset too. A load leaves out an empty group without offsets.
            !(dropped > 0 && g.offsets.is_empty() && g.state == GroupState::Empty)
        });
        for (log, writes) in by_partition(ctx, writes) {
            if let Err(e) = persist::append(&log, &writes, now_ms()).await {
                error!(topic, "cannot store the removal of a deleted topic's offsets (they return at restart): {e}");
            }
        }
    }
}

/// Group records sorted to each group's own `__consumer_offsets` partition
/// (those this shard has open).
fn by_partition(ctx: &ShardCtx, writes: Vec<Write>) -> Vec<(Rc<PartitionLog>, Vec<Write>)> {
    let Some(topic) = ctx.setup.snapshot.load().topic(OFFSETS_TOPIC).cloned() else {
        return Vec::new();
    };
    let mut sorted: HashMap<i32, Vec<Write>> = HashMap::new();
    for w in writes {
        sorted.entry(partition_for(w.0.group(), topic.leaders.len())).or_default().push(w);
    }
    // Only where this shard leads: a follower's log takes only its leader's
    // batches.
    let led = |p: i32| topic.leaders.get(p as usize) == Some(&ctx.setup.node_id);
    sorted
        .into_iter()
        .filter(|(p, _)| led(*p))
        .filter_map(|(p, writes)| Some((ctx.partition(&topic, p)?, writes)))
        .collect()
}

/// The offsets topic and the partition of `group`.
pub fn locate(ctx: &ShardCtx, group: &str) -> Result<(Arc<TopicMeta>, i32), ErrorCode> {
    let meta = ctx.setup.snapshot.load();
    let topic = meta.topic(OFFSETS_TOPIC).cloned().ok_or(ErrorCode::CoordinatorNotAvailable)?;
    if topic.leaders.is_empty() {
        return Err(ErrorCode::CoordinatorNotAvailable);
    }
    let p = partition_for(group, topic.leaders.len());
    Ok((topic, p))
}

/// Kafka's member checks: a static instance id must match the member it
/// belongs to (or the caller is a fenced zombie), and the member must exist.
fn check_member(g: &Group, member_id: &str, instance_id: Option<&str>) -> Result<(), ErrorCode> {
    if let Some(inst) = instance_id
        && let Some(current) = g.static_member(inst)
        && current != member_id
    {
        return Err(ErrorCode::FencedInstanceId);
    }
    if g.member(member_id).is_none() {
        return Err(ErrorCode::UnknownMemberId);
    }
    Ok(())
}

/// Topics the members of a consumer-protocol group subscribe to.
fn subscribed_topics(g: &Group) -> HashSet<String> {
    let mut topics = HashSet::new();
    if g.protocol_type.as_deref() != Some("consumer") {
        return topics;
    }
    let protocol = g.protocol.clone().unwrap_or_default();
    for m in &g.members {
        let mut meta = m.metadata(&protocol);
        if meta.len() < 2 {
            continue;
        }
        let version = i16::from_be_bytes([meta[0], meta[1]]);
        let _ = bytes::Buf::get_i16(&mut meta);
        if let Ok(sub) = ConsumerProtocolSubscription::decode(&mut meta, version.clamp(0, 3)) {
            topics.extend(sub.topics.iter().map(|t| t.to_string()));
        }
    }
    topics
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_matches_kafkas_rule() {
        // Java: "test_group".hashCode() == 2059298962 -> % 50 == 12.
        assert_eq!(partition_for("test_group", 50), 12);
        assert_eq!(partition_for("", 50), 0);
        for g in ["a", "group-1", "消费者"] {
            assert!((0..50).contains(&partition_for(g, 50)));
        }
    }
}
