//! The follower's side: one task per (shard, leader node) that copies every
//! partition the shard follows from that leader. Each round it fetches from
//! each partition's log end with the shard's node id as `replica_id`,
//! appends what came with the log's follower path (the leader's offsets,
//! epochs and producer state), and takes the leader's high watermark. Each
//! fetch also reports the partition's durable end (`durable_tag`), which
//! is what the leader counts towards its high watermark. While appends
//! sync and the leader holds more than it sent, the next fetch goes out at
//! once (`unsynced`): the sync overlaps the transfer of what follows.
//!
//! A follower whose log holds an older leader's tail is told so
//! (`DivergingEpoch`) and cuts its log back before it fetches again. The
//! task ends when the shard follows nothing from that leader any more.

use std::cell::Cell;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use tracing::{info, warn};

use crate::broker::context::ShardCtx;
use crate::metadata::TopicMeta;
use crate::metadata::model::ClusterMeta;
use crate::protocol::ErrorCode;
use crate::storage::PartitionLog;

use super::durable_tag;
use super::peer::Peer;
use super::throttle;
use super::unsynced::{Next, Unsynced};

/// Pause after a failed exchange or while the leader cannot be reached.
const RETRY: Duration = Duration::from_millis(200);
/// How long a fetcher with nothing to follow lives on.
const IDLE_END: Duration = Duration::from_secs(5);
/// Time a fetch may take beyond `replica.fetch.wait.max.ms`.
const ANSWER_SLACK: Duration = Duration::from_secs(5);

/// One partition followed from the leader.
struct Followed {
    topic: Arc<TopicMeta>,
    partition: i32,
    log: Rc<PartitionLog>,
    /// The offset this round's fetch asked from (its log end then).
    asked: Cell<i64>,
}

/// Makes sure a fetcher copies from `leader` on this shard.
pub fn follow(ctx: &Rc<ShardCtx>, leader: i32) {
    if ctx.replication.fetchers.borrow_mut().insert(leader) {
        info!(shard = ctx.setup.node_id, leader, "fetching from a leader");
        glommio::spawn_local(run(ctx.clone(), leader)).detach();
    }
}

/// Copies from `leader` while this shard follows anything of it.
async fn run(ctx: Rc<ShardCtx>, leader: i32) {
    let mut peer: Option<Peer> = None;
    let mut idle_since: Option<Instant> = None;
    let mut failures = Failures::default();
    let mut writes = Failures::default();
    let mut unsynced = Unsynced::default();
    let mut next = Next::Parked;
    loop {
        let meta = ctx.setup.snapshot.load_full();
        let followed = followed_from(&ctx, &meta, leader);
        if followed.is_empty() {
            // The shard may be told to follow before the metadata that says
            // so is published to it: only a while with nothing to follow
            // ends the task.
            let since = *idle_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= IDLE_END {
                ctx.replication.fetchers.borrow_mut().remove(&leader);
                info!(shard = ctx.setup.node_id, leader, "no longer fetching from this leader");
                return;
            }
            peer = None;
            glommio::timer::sleep(RETRY).await;
            continue;
        }
        idle_since = None;
        let Some(addr) = leader_addr(&meta, leader).await else {
            glommio::timer::sleep(RETRY).await;
            continue;
        };
        if peer.as_ref().is_none_or(|p| p.addr() != addr) {
            match Peer::connect(addr, format!("sluice-replica-{}", ctx.setup.node_id)).await {
                Ok(p) => peer = Some(p),
                Err(e) => {
                    if let Some(n) = failures.failed() {
                        warn!(shard = ctx.setup.node_id, leader, failures = n, "{e}");
                    }
                    glommio::timer::sleep(RETRY).await;
                    continue;
                }
            }
        }
        let conn = peer.as_mut().expect("connected above");
        let settings = ctx.setup.settings.load_full();
        let wait = if next == Next::Pipelined { Duration::ZERO } else { settings.replica_fetch_wait() };
        let Some(req) = request(&ctx, &followed, wait, settings.replica_fetch_bytes()) else {
            // Every partition is throttled and the quota spent for now.
            glommio::timer::sleep(RETRY).await;
            continue;
        };
        match conn.fetch(&req, wait + ANSWER_SLACK).await {
            Ok(resp) => {
                failures = Failures::default();
                let round = take(&ctx, &followed, resp, &mut unsynced).await;
                next = unsynced_after(&ctx, &mut unsynced, round, &mut writes).await;
            }
            Err(e) => {
                if let Some(n) = failures.failed() {
                    warn!(shard = ctx.setup.node_id, leader, failures = n, "replica fetch failed: {e}");
                }
                peer = None;
                glommio::timer::sleep(RETRY).await;
            }
        }
    }
}

/// Settles `unsynced` after a round that appended something or not (see
/// `unsynced`), pausing when a write failed or the leader refused
/// something: the same records would come back at once. `writes` counts
/// such write failures, for a warning now and then.
async fn unsynced_after(ctx: &ShardCtx, unsynced: &mut Unsynced, round: Round, writes: &mut Failures) -> Next {
    let next = unsynced.settle(round == Round::Behind).await;
    if next == Next::Stalled
        && let Some(n) = writes.failed()
    {
        warn!(shard = ctx.setup.node_id, failures = n, "replicated records could not be written: pausing");
    }
    if next == Next::Stalled || round == Round::Stalled {
        glommio::timer::sleep(RETRY).await;
        return Next::Parked;
    }
    next
}

/// Failed exchanges with a leader since the last success, reported at the
/// first and then at most once per `REPORT_EVERY`: a leader that is down
/// is retried five times a second.
#[derive(Default)]
struct Failures {
    count: u64,
    reported: Option<Instant>,
}

impl Failures {
    const REPORT_EVERY: Duration = Duration::from_secs(10);

    /// Counts one more failure; the count to report if one is due.
    fn failed(&mut self) -> Option<u64> {
        self.count += 1;
        if self.reported.is_some_and(|t| t.elapsed() < Self::REPORT_EVERY) {
            return None;
        }
        self.reported = Some(Instant::now());
        Some(self.count)
    }
}

/// The partitions this shard holds as a follower of `leader`.
fn followed_from(ctx: &ShardCtx, meta: &ClusterMeta, leader: i32) -> Vec<Followed> {
    let me = ctx.setup.node_id;
    let mut out = Vec::new();
    for t in meta.topics.values() {
        for (p, r) in t.replicas.iter().enumerate() {
            if t.leaders[p] != leader || leader == me || !r.contains(&me) {
                continue;
            }
            if let Some(log) = ctx.partition(t, p as i32) {
                out.push(Followed { topic: t.clone(), partition: p as i32, log, asked: Cell::new(-1) });
            }
        }
    }
    out
}

/// Where node `leader` listens, if its broker is registered and not
/// fenced. A host name is resolved off the reactor.
async fn leader_addr(meta: &ClusterMeta, leader: i32) -> Option<SocketAddr> {
    let at = meta.node(leader).filter(|at| !at.broker.fenced)?;
    let (host, port) = (at.broker.host.clone(), at.port() as u16);
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Some(SocketAddr::new(ip, port));
    }
    let resolved = glommio::executor().spawn_blocking(move || (host.as_str(), port).to_socket_addrs()).await;
    resolved.ok()?.next()
}

/// The Fetch a follower sends: every followed partition from its log end,
/// but those throttled while the follower quota is spent (none left: no
/// fetch).
fn request(
    ctx: &ShardCtx,
    followed: &[Followed],
    wait: Duration,
    (per_partition, total): (i32, i32),
) -> Option<FetchRequest> {
    let me = ctx.setup.node_id;
    let (_, rate) = ctx.throttle_rates();
    let spent = ctx.replication.follower_quota.borrow_mut().exceeded(rate, Instant::now());
    let mut topics: Vec<FetchTopic> = Vec::new();
    // A leader whose quota runs out answers the partitions listed first:
    // each round starts elsewhere, so that none is always last.
    let turn = ctx.replication.next_turn() % followed.len().max(1);
    let rotated = followed[turn..].iter().chain(&followed[..turn]);
    let settings = ctx.setup.settings.load();
    let list = throttle::default_list(&settings, throttle::FOLLOWER_REPLICAS);
    for f in rotated.filter(|f| !(spent && throttled(list, me, f))) {
        let p = f.partition as usize;
        f.asked.set(f.log.log_end());
        let part = FetchPartition::default()
            .with_partition(f.partition)
            .with_current_leader_epoch(f.topic.epochs[p])
            .with_fetch_offset(f.asked.get())
            .with_last_fetched_epoch(f.log.latest_epoch().unwrap_or(-1))
            .with_log_start_offset(f.log.log_start_offset())
            .with_partition_max_bytes(per_partition);
        let part = durable_tag::with_durable_end(part, f.log.durable_end());
        match topics.iter_mut().find(|t| t.topic.0.as_str() == f.topic.name.as_str()) {
            Some(t) => t.partitions.push(part),
            None => topics.push(
                FetchTopic::default()
                    .with_topic(TopicName(crate::api::str_bytes(f.topic.name.clone())))
                    .with_partitions(vec![part]),
            ),
        }
    }
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(me))
        .with_max_wait_ms(wait.as_millis().min(i32::MAX as u128) as i32)
        .with_min_bytes(1)
        .with_max_bytes(total)
        .with_topics(topics);
    (!req.topics.is_empty()).then_some(req)
}

/// Whether this follower's copy of `f` is throttled (listed in its
/// topic's follower.replication.throttled.replicas, else in `list`, the
/// broker's, and out of the ISR).
fn throttled(list: &str, me: i32, f: &Followed) -> bool {
    throttle::applies(list, &f.topic, throttle::FOLLOWER_REPLICAS, f.partition, me, me)
}

/// How a round went, for the next fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Round {
    /// Records were appended (they may still be syncing), and the leader
    /// holds more than it sent.
    Behind,
    /// Records were appended, and they were all the leader had.
    Appended,
    /// Nothing came.
    Idle,
    /// The leader refused something, or a log refused what came.
    Stalled,
}

/// Appends what the leader sent (into `unsynced`, as they may still be
/// syncing) and takes the leader's high watermark.
async fn take(ctx: &Rc<ShardCtx>, followed: &[Followed], resp: FetchResponse, unsynced: &mut Unsynced) -> Round {
    let mut round = Round::Idle;
    let mut marks = Vec::new();
    let settings = ctx.setup.settings.load_full();
    let list = throttle::default_list(&settings, throttle::FOLLOWER_REPLICAS);
    for t in &resp.responses {
        for part in &t.partitions {
            let Some(f) = followed
                .iter()
                .find(|f| f.topic.name.as_str() == t.topic.0.as_str() && f.partition == part.partition_index)
            else {
                continue;
            };
            let key = (f.topic.id, f.partition);
            if ctx.replication.leads(key) || !still_following(ctx, f) {
                continue;
            }
            if throttled(list, ctx.setup.node_id, f) {
                let (_, rate) = ctx.throttle_rates();
                let bytes = part.records.as_ref().map_or(0, |r| r.len());
                ctx.replication.follower_quota.borrow_mut().record(bytes, rate, Instant::now());
            }
            match take_partition(ctx, f, part).await {
                Taken::Appended(log, end) => {
                    unsynced.add(log.clone(), end);
                    marks.push((key, log, part.high_watermark));
                    let behind = durable_tag::leader_end(part).is_some_and(|leader| leader > end);
                    round = match round {
                        Round::Stalled => Round::Stalled,
                        _ if behind => Round::Behind,
                        Round::Idle => Round::Appended,
                        other => other,
                    };
                }
                Taken::Nothing => marks.push((key, f.log.clone(), part.high_watermark)),
                Taken::Refused => round = Round::Stalled,
            }
        }
    }
    for (key, log, hw) in marks {
        // Not where this shard took the lead meanwhile (an election while
        // the fetch was out): its followers bound it now.
        if log.is_replicated() && !ctx.replication.leads(key) {
            log.bound_high_watermark(hw);
        }
    }
    round
}

/// What became of one partition's answer.
enum Taken {
    /// Records were appended to this log up to this end offset (not yet
    /// durable).
    Appended(Rc<PartitionLog>, i64),
    /// Nothing to append: no records, or a diverged tail was cut.
    Nothing,
    /// The leader refused the fetch, or the log refused the records.
    Refused,
}

/// Whether `f`'s leader and epoch are still those the metadata gives it
/// now: an answer that arrives after a change of leader is dropped.
fn still_following(ctx: &ShardCtx, f: &Followed) -> bool {
    let p = f.partition as usize;
    let meta = ctx.setup.snapshot.load();
    meta.topic(&f.topic.name)
        .filter(|t| t.id == f.topic.id)
        .is_some_and(|t| t.leaders.get(p) == f.topic.leaders.get(p) && t.epochs.get(p) == f.topic.epochs.get(p))
}

/// Takes one partition's answer: appends its records, or cuts back a
/// diverged log, or reports an error.
async fn take_partition(ctx: &Rc<ShardCtx>, f: &Followed, part: &PartitionData) -> Taken {
    let name = &f.topic.name;
    if f.log.log_end() != f.asked.get() {
        // The log moved while the fetch was out: a write failed and cut it
        // back to its durable end (or it was truncated). The answer starts
        // past the new end; appending it would leave a hole that the next
        // fetch reports as held. Dropped, as Kafka's follower drops an
        // answer to an offset that is no longer its log end.
        return Taken::Nothing;
    }
    if part.error_code == ErrorCode::OffsetOutOfRange.code() && part.log_start_offset > f.log.log_end() {
        // Retention or DeleteRecords moved the leader's start past all this
        // copy holds (a new replica of an old partition, or one long away).
        if let Err(e) = ctx.start_copy_afresh(&f.topic, f.partition, part.log_start_offset).await {
            warn!(shard = ctx.setup.node_id, topic = %name, partition = f.partition, "cannot start the copy afresh: {e}");
        }
        return Taken::Refused;
    }
    if part.error_code != 0 {
        // A stale view of who leads (the metadata will catch up), or
        // something to say.
        let quiet = [ErrorCode::NotLeaderOrFollower, ErrorCode::FencedLeaderEpoch, ErrorCode::UnknownLeaderEpoch]
            .iter()
            .any(|c| c.code() == part.error_code);
        if !quiet {
            warn!(shard = ctx.setup.node_id, topic = %name, partition = f.partition, code = part.error_code, "replica fetch refused");
        }
        return Taken::Refused;
    }
    if part.diverging_epoch.epoch >= 0 || part.diverging_epoch.end_offset >= 0 {
        let before = f.log.log_end();
        truncate_diverged(f, part.diverging_epoch.epoch, part.diverging_epoch.end_offset).await;
        // Nothing cut (an epoch the leader cannot place, at its high
        // watermark already): the same answer would come back at once.
        return if f.log.log_end() < before { Taken::Nothing } else { Taken::Refused };
    }
    let Some(records) = part.records.as_ref().filter(|r| !r.is_empty()) else { return Taken::Nothing };
    let Some(log) = log_for(ctx, f, records).await else { return Taken::Refused };
    match log.append_as_follower(records) {
        Ok((_, end)) => Taken::Appended(log, end),
        Err(e) => {
            warn!(shard = ctx.setup.node_id, topic = %name, partition = f.partition, "replicated records refused: {e}");
            Taken::Refused
        }
    }
}

/// The log to append `records` to: `f`'s, unless it holds nothing and the
/// first batch begins below its start. That happens to a copy started
/// afresh at its leader's log start when DeleteRecords put that start
/// inside a batch: the copy starts again at the batch, as Kafka's follower
/// does. `None` if that failed.
async fn log_for(ctx: &Rc<ShardCtx>, f: &Followed, records: &[u8]) -> Option<Rc<PartitionLog>> {
    let base = crate::protocol::batch::peek(records).map(|b| b.base_offset)?;
    let (start, end) = (f.log.log_start_offset(), f.log.log_end());
    if base >= end || start != end {
        return Some(f.log.clone());
    }
    if let Err(e) = ctx.start_copy_afresh(&f.topic, f.partition, base).await {
        warn!(shard = ctx.setup.node_id, topic = %f.topic.name, partition = f.partition, "cannot start the copy afresh: {e}");
        return None;
    }
    ctx.partition(&f.topic, f.partition)
}

/// Cuts `f`'s log back to where it stops agreeing with the leader: the
/// end of the leader's `epoch`, or of this log's own record of that epoch
/// if it ends sooner (Kafka's follower truncation).
async fn truncate_diverged(f: &Followed, epoch: i32, leader_end: i64) {
    // This log's end of the latest epoch it has at or below `epoch`; none
    // known: only what it holds bounds the cut.
    let (_, own_end) = f.log.end_offset_for_epoch(epoch);
    let to = leader_end.min(if own_end >= 0 { own_end } else { f.log.log_end() }).max(0);
    info!(topic = %f.topic.name, partition = f.partition, epoch, leader_end, to, "the log diverged from its leader's: truncating");
    if let Err(e) = f.log.truncate_to(to).await {
        warn!(topic = %f.topic.name, partition = f.partition, "truncation failed: {e}");
        glommio::timer::sleep(RETRY).await;
    }
}
