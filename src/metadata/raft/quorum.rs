//! The metadata quorum the controller writes through: openraft on a small
//! tokio runtime of its own (never on a shard's reactor), over the log store
//! and state machine beside this file. The controller's thread blocks on
//! each proposal, as it blocked on the file log's fsync.
//!
//! One voter is the embedded default: this broker alone, no listener. With
//! several (`controller.quorum.voters`), each listens on its controller
//! address, the static voter set initializes every node alike (as KRaft's
//! static quorum), and a proposal made on a node that does not lead is
//! forwarded to the one that does.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver;
use openraft::{BasicNode, Config, Raft, SnapshotPolicy};
use tracing::debug;

use super::log_store::MetaLogStore;
use super::members;
use super::network::{TcpPeers, exchange, exchange_within};
use super::server;
use super::sessions::{self, Sessions};
use super::snapshot_file::SnapshotFile;
use super::state_machine::MetaStateMachine;
use super::view::{self, QuorumView, SharedView};
use super::wire::{ProposeError, Request, Response, VoterChange};
use super::{MetaCommand, MetaRaft, MetaReply};
use crate::metadata::model::ClusterMeta;
use crate::metadata::record::MetaRecord;

/// The quorum's directory inside the data dir (Kafka's metadata log dir
/// name).
pub const DIR_NAME: &str = "__cluster_metadata-0";

/// How long start-up waits for a leader: the other voters may still be
/// starting.
pub const ELECTION_WAIT: Duration = Duration::from_secs(120);

/// How long a proposal keeps trying to reach a leader.
const PROPOSE_WAIT: Duration = Duration::from_secs(15);

/// How long one attempt to reach the leader (or commit there) may take.
const ATTEMPT: Duration = Duration::from_secs(5);

/// How long a controlled shutdown waits to tell the quorum.
const LEAVE_WAIT: Duration = Duration::from_secs(5);

/// Who votes, and this node's part.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    /// This node's id.
    pub id: u64,
    /// Every voter's id and controller address (`host:port`).
    pub voters: BTreeMap<u64, String>,
    /// Set for a node that is not among `voters`: the address voters send
    /// it the log at (it joins as an openraft learner).
    pub learner_addr: Option<String>,
    /// `controller.quorum.bootstrap.servers`: asked to join where `voters`
    /// is empty.
    pub bootstrap: Vec<String>,
    /// Whether it may vote (`process.roles` names `controller`): it
    /// registers as a controller, and a learner that may vote becomes a
    /// voter when an operator adds it (AddRaftVoter).
    pub can_vote: bool,
    /// When to snapshot and how much log to keep behind a snapshot.
    pub snapshots: SnapshotSettings,
}

/// When a node snapshots its metadata, and what log it keeps.
#[derive(Debug, Clone, Copy)]
pub struct SnapshotSettings {
    /// A snapshot every this many log entries.
    pub every: u64,
    /// Entries kept in the log behind a snapshot, so that a voter that fell
    /// a little behind catches up from the log rather than a whole snapshot.
    pub keep: u64,
}

impl Default for SnapshotSettings {
    fn default() -> Self {
        Self { every: 1000, keep: 1000 }
    }
}

impl QuorumConfig {
    /// The embedded default: voter 0 alone.
    pub fn one_voter() -> Self {
        Self {
            id: 0,
            voters: BTreeMap::from([(0, String::new())]),
            learner_addr: None,
            bootstrap: Vec::new(),
            can_vote: true,
            snapshots: SnapshotSettings::default(),
        }
    }

    /// Where this node's controller listener is reached.
    fn own_addr(&self) -> Option<&str> {
        self.voters.get(&self.id).or(self.learner_addr.as_ref()).map(String::as_str).filter(|a| !a.is_empty())
    }

    /// Whether this is the embedded one-voter quorum (this broker alone).
    pub fn is_single(&self) -> bool {
        self.voters.len() < 2 && self.learner_addr.is_none()
    }

    fn raft_config(&self) -> io::Result<Config> {
        let mut config = Config {
            cluster_name: "sluice-metadata".into(),
            // The state machine lives in memory: a start installs the saved
            // snapshot and replays the log after it (snapshot_file.rs).
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshots.every),
            max_in_snapshot_log_to_keep: self.snapshots.keep,
            ..Default::default()
        };
        if self.voters.len() > 1 {
            // openraft's defaults (50 ms, 150-300 ms) suit dedicated
            // machines; brokers share a few cores with partition work.
            config.heartbeat_interval = 250;
            config.election_timeout_min = 1500;
            config.election_timeout_max = 3000;
        }
        config.validate().map_err(io::Error::other)
    }
}

/// Asks the voters, until the leader accepts, to send this node the log
/// (a broker that does not vote, at each start).
async fn join(config: &QuorumConfig, addr: &str) -> io::Result<()> {
    let deadline = Instant::now() + ELECTION_WAIT;
    let targets: Vec<&String> =
        if config.voters.is_empty() { config.bootstrap.iter().collect() } else { config.voters.values().collect() };
    assert!(!targets.is_empty(), "a node that joins knows the voters or bootstrap servers");
    let mut next = targets.iter().copied().cycle();
    let mut to = next.next().expect("targets");
    loop {
        let req = Request::Join { id: config.id, addr: addr.to_string() };
        match exchange_within(to, &req, ATTEMPT).await {
            Ok(Response::Joined(Ok(()))) => return Ok(()),
            Ok(Response::Joined(Err(ProposeError::NotLeader { leader: Some(l) })))
                if config.voters.contains_key(&l) =>
            {
                to = &config.voters[&l];
                continue;
            }
            other => debug!(%to, "joining the metadata quorum: {other:?}"),
        }
        if Instant::now() > deadline {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "no voter of the metadata quorum took this node in"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        to = next.next().expect("targets");
    }
}

/// What a node that joins learns of the quorum before it starts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Discovered {
    /// Every voter's id and controller address.
    pub voters: BTreeMap<u64, String>,
    /// The cluster's id, for a fresh data dir (and to refuse another
    /// cluster's).
    pub cluster_id: String,
}

/// Asks `servers` (bootstrap servers, or the voters' addresses) in turn,
/// until one answers, for the voters and the cluster id.
pub fn discover(servers: &[String], wait: Duration) -> io::Result<Discovered> {
    assert!(!servers.is_empty(), "at least one bootstrap server");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let deadline = Instant::now() + wait;
        for server in servers.iter().cycle() {
            match exchange_within(server, &Request::Voters, ATTEMPT).await {
                Ok(Response::Voters(d)) if !d.voters.is_empty() => return Ok(d),
                other => debug!(%server, "asking for the metadata quorum's voters: {other:?}"),
            }
            if Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let servers = servers.join(",");
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no bootstrap server ({servers}) named the quorum's voters"),
        ))
    })
}

/// The running quorum.
pub struct Quorum {
    rt: tokio::runtime::Runtime,
    raft: MetaRaft,
    sm: MetaStateMachine,
    config: QuorumConfig,
    view: SharedView,
    sessions: Arc<Sessions>,
    /// Set by a controlled shutdown: this broker's heartbeats stop.
    stopping: Arc<std::sync::atomic::AtomicBool>,
}

impl Quorum {
    /// Opens the quorum in `data_dir`, initializing it on first start, and
    /// returns once a leader is known and this node has applied everything
    /// committed before. `base` carries this node's cluster id and node
    /// count; `listener` is the controller listener (none for one voter).
    pub fn open(
        data_dir: &Path,
        base: ClusterMeta,
        config: QuorumConfig,
        listener: Option<std::net::TcpListener>,
    ) -> io::Result<Self> {
        // A node that joins (learner_addr) may be a voter already: one
        // AddRaftVoter made so, restarted.
        assert!(
            config.voters.contains_key(&config.id) || config.learner_addr.is_some(),
            "a node of the quorum is a voter or joins"
        );
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sluice-raft")
            .enable_all()
            .build()?;
        let store = MetaLogStore::open(&data_dir.join(DIR_NAME))?;
        let dir = data_dir.join(DIR_NAME);
        let sm = MetaStateMachine::open(base, SnapshotFile::new(&dir))?;
        let raft_config = Arc::new(config.raft_config()?);
        let raft =
            rt.block_on(Raft::new(config.id, raft_config, TcpPeers, store, sm.clone())).map_err(io::Error::other)?;
        let members: BTreeMap<u64, BasicNode> =
            config.voters.iter().map(|(id, addr)| (*id, BasicNode::new(addr))).collect();
        rt.block_on(async {
            // Before the listener serves: a peer's vote would make this
            // node's log no longer pristine, and initializing it fail.
            if config.learner_addr.is_none() && !raft.is_initialized().await.map_err(io::Error::other)? {
                raft.initialize(members).await.map_err(io::Error::other)?;
            }
            Ok::<_, io::Error>(())
        })?;
        let sessions = Arc::new(Sessions::default());
        let view = SharedView::default();
        rt.spawn(view::follow(raft.clone(), view.clone(), config.voters.clone()));
        if let Some(l) = listener {
            l.set_nonblocking(true)?;
            let l = rt.block_on(async { tokio::net::TcpListener::from_std(l) })?;
            let node =
                server::Node { raft: raft.clone(), sm: sm.clone(), sessions: sessions.clone(), view: view.clone() };
            rt.spawn(server::serve(l, node));
        }
        // Every start, not only the first: a broker unregistered (and so
        // removed from the learners) that comes back must be sent the log
        // again; joining as the learner it already is changes nothing. A
        // node that AddRaftVoter made a voter does not join again.
        if let Some(addr) = &config.learner_addr {
            // From the core's own state: its metrics may not have been
            // reported yet.
            let me = config.id;
            let voting = rt
                .block_on(raft.with_raft_state(move |st| st.membership_state.effective().voter_ids().any(|v| v == me)))
                .map_err(io::Error::other)?;
            if !voting {
                rt.block_on(join(&config, addr))?;
            }
        }
        rt.block_on(async {
            raft.wait(Some(ELECTION_WAIT))
                .metrics(|m| m.current_leader.is_some(), "a voter leads")
                .await
                .map_err(io::Error::other)?;
            Ok::<_, io::Error>(())
        })?;
        let quorum = Self { rt, raft, sm, config, view, sessions, stopping: Default::default() };
        // Entries apply in order: once an empty command is applied here,
        // every one committed before it is too.
        quorum.propose(MetaCommand::always(Vec::new()))?;
        quorum.register_controller()?;
        Ok(quorum)
    }

    /// Records that this node may vote, and where it listens, unless the
    /// metadata has it so already (AddRaftVoter takes only such nodes).
    /// A node that no longer may vote is taken off (empty address).
    fn register_controller(&self) -> io::Result<()> {
        let (Some(addr), false) = (self.config.own_addr(), self.config.is_single()) else {
            return Ok(());
        };
        let addr = if self.config.can_vote { addr } else { "" };
        let id = i32::try_from(self.config.id).map_err(io::Error::other)?;
        let registered = self.meta().controllers.get(&id).cloned().unwrap_or_default();
        if registered != addr {
            self.propose(MetaCommand::always(vec![MetaRecord::ControllerRegistered { id, addr: addr.to_string() }]))?;
        }
        Ok(())
    }

    /// Commits `cmd` and returns its reply once this node has applied it.
    pub fn propose(&self, cmd: MetaCommand) -> io::Result<MetaReply> {
        self.rt.block_on(async {
            let reply = self.commit(cmd).await?;
            self.raft
                .wait(Some(PROPOSE_WAIT))
                .applied_index_at_least(Some(reply.index), "the committed command applies here")
                .await
                .map_err(io::Error::other)?;
            Ok(reply)
        })
    }

    /// Commits `cmd` through the leader, this node or another, retrying
    /// while none is known or reachable.
    async fn commit(&self, cmd: MetaCommand) -> io::Result<MetaReply> {
        let deadline = Instant::now() + PROPOSE_WAIT;
        loop {
            let result = match self.raft.current_leader().await {
                Some(id) if id == self.config.id => {
                    // A leader that lost its majority may wait long for a
                    // commit that does not come.
                    tokio::time::timeout(ATTEMPT, server::propose_here(&self.raft, cmd.clone()))
                        .await
                        .unwrap_or_else(|_| Err(ProposeError::Unavailable("no commit in time".into())))
                }
                Some(id) => self.forward(id, &cmd).await,
                None => Err(ProposeError::NotLeader { leader: None }),
            };
            match result {
                Ok(reply) => return Ok(reply),
                Err(e) if Instant::now() < deadline => {
                    debug!("metadata proposal not committed yet: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(io::Error::other(e)),
            }
        }
    }

    /// Sends `cmd` to voter `leader`'s controller listener.
    async fn forward(&self, leader: u64, cmd: &MetaCommand) -> Result<MetaReply, ProposeError> {
        let addr = members::addr_of(&self.raft, leader).ok_or(ProposeError::NotLeader { leader: None })?;
        match exchange_within(&addr, &Request::Propose(cmd.clone()), ATTEMPT).await {
            Ok(Response::Proposed(r)) => r,
            Ok(other) => Err(ProposeError::Unavailable(format!("unexpected answer from node {leader}: {other:?}"))),
            Err(e) => Err(ProposeError::Unavailable(format!("node {leader}: {e}"))),
        }
    }

    /// The metadata as of the last applied entry.
    pub fn meta(&self) -> ClusterMeta {
        self.sm.meta()
    }

    /// Starts broker sessions where the quorum has several voters (alone,
    /// a broker has no one to be fenced by): this broker heartbeats every
    /// `interval` to the leader, and whichever node leads fences brokers
    /// silent for `timeout`.
    pub fn start_sessions(&self, broker: i32, interval: Duration, timeout: Duration) {
        if self.config.is_single() {
            return;
        }
        self.start_expiry(timeout);
        let (raft, sm, sessions) = (self.raft.clone(), self.sm.clone(), self.sessions.clone());
        let stopping = self.stopping.clone();
        self.rt.spawn(sessions::heartbeat(raft, sm, sessions, broker, interval, stopping));
    }

    /// Has this node, while it leads, fence brokers silent for `timeout`
    /// (a voter without shards runs this alone: it has no broker to
    /// heartbeat for).
    pub fn start_expiry(&self, timeout: Duration) {
        let (raft, sm, sessions) = (self.raft.clone(), self.sm.clone(), self.sessions.clone());
        self.rt.spawn(sessions::expire(raft, sm, sessions, timeout, self.stopping.clone()));
    }

    /// A controlled shutdown's first step: the quorum fences this broker,
    /// so that clients stop being sent to it. Gives up after a few seconds
    /// (a quorum without a majority cannot be told).
    pub fn leave(&self, broker: i32) -> io::Result<()> {
        if self.config.is_single() {
            return Ok(());
        }
        self.stopping.store(true, std::sync::atomic::Ordering::Release);
        let fence = MetaCommand::always(vec![MetaRecord::BrokerFenced { broker }]);
        self.rt
            .block_on(async { tokio::time::timeout(LEAVE_WAIT, self.commit(fence)).await })
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the quorum did not answer"))?
            .map(|_| ())
    }

    /// Has the leader stop sending the log to learner `id` (a broker that
    /// does not vote, decommissioned); nothing for a voter.
    pub fn remove_learner(&self, id: u64) -> io::Result<()> {
        self.at_leader(Request::RemoveLearner { id }, |raft| async move { server::remove_learner(&raft, id).await })
    }

    /// Has the leader change the voter set.
    pub fn change_voters(&self, change: VoterChange) -> io::Result<()> {
        self.at_leader(Request::ChangeVoters(change), |raft| async move { server::change_voters(&raft, change).await })
    }

    /// The voters and the learners, as this node's membership has them.
    pub fn members(&self) -> (BTreeSet<u64>, BTreeSet<u64>) {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        let membership = m.membership_config.membership();
        (membership.voter_ids().collect(), membership.learner_ids().collect())
    }

    /// Does a membership change on the leader: here (`here`) where this
    /// node leads, else by sending `req` to it; retried while no leader is
    /// known or reachable.
    fn at_leader<F, Fut>(&self, req: Request, here: F) -> io::Result<()>
    where
        F: Fn(MetaRaft) -> Fut,
        Fut: std::future::Future<Output = Result<(), ProposeError>>,
    {
        self.rt.block_on(async {
            let deadline = Instant::now() + PROPOSE_WAIT;
            loop {
                let result = match self.raft.current_leader().await {
                    // A change the voters cannot commit (too few answer)
                    // must not hold the caller.
                    Some(l) if l == self.config.id => tokio::time::timeout(ATTEMPT, here(self.raft.clone()))
                        .await
                        .unwrap_or_else(|_| Err(ProposeError::Unavailable("not committed in time".into()))),
                    Some(l) => match members::addr_of(&self.raft, l) {
                        Some(addr) => match exchange_within(&addr, &req, ATTEMPT).await {
                            Ok(Response::Joined(r)) => r,
                            other => Err(ProposeError::Unavailable(format!("{other:?}"))),
                        },
                        None => Err(ProposeError::NotLeader { leader: None }),
                    },
                    None => Err(ProposeError::NotLeader { leader: None }),
                };
                match result {
                    Ok(()) => return Ok(()),
                    Err(e @ ProposeError::Refused(_)) => {
                        return Err(io::Error::new(io::ErrorKind::InvalidInput, e));
                    }
                    Err(e) if Instant::now() < deadline => {
                        debug!("{req:?} not done yet: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => return Err(io::Error::other(e)),
                }
            }
        })
    }

    /// The quorum as its leader sees it (every voter's log end), or as
    /// this node does where the leader cannot be asked within a few
    /// seconds.
    pub fn leader_view(&self) -> QuorumView {
        let local = (**self.view.load()).clone();
        let Some(addr) = local.leader.filter(|&l| l != self.config.id).and_then(|l| members::addr_of(&self.raft, l))
        else {
            return local;
        };
        let asked = self.rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(3), exchange(&mut None, &addr, &Request::Describe)).await
        });
        match asked {
            Ok(Ok(Response::Described(view))) => view,
            _ => local,
        }
    }

    /// The leader this node knows of.
    pub fn leader(&self) -> Option<u64> {
        self.rt.block_on(self.raft.current_leader())
    }

    /// Whether this node leads the quorum now.
    pub fn leads(&self) -> bool {
        self.leader() == Some(self.config.id)
    }

    /// The quorum as this node sees it, kept current.
    pub fn view(&self) -> SharedView {
        self.view.clone()
    }

    /// Signalled whenever applied metadata may have changed.
    pub fn changes(&self) -> flume::Receiver<()> {
        self.sm.changes()
    }
}

#[cfg(test)]
#[path = "quorum_tests.rs"]
mod tests;
