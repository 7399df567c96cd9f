//! The controller: one plain OS thread per broker that checks admin
//! changes against the metadata, commits them through the quorum, and
//! publishes what the quorum committed (its own changes and other
//! brokers') to this broker's shards (`publish.rs`). Shards reach it over a
//! bounded channel; nothing on the produce/fetch path waits for it.

use crate::storage::hw_checkpoint::HwEntry;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use thiserror::Error;
use tracing::{error, info, warn};
use uuid::Uuid;

use super::election;
use super::log;
use super::model::{BrokerReg, ClusterMeta, TopicMeta};
use super::placement;
use super::publish::{OpenFailures, Publisher, resolved};
use super::raft::MetaCommand;
use super::raft::quorum::{Quorum, QuorumConfig};
use super::raft::view::{QuorumView, SharedView};
use super::raft::wire::VoterChange;
use super::reassignment;
use super::record::MetaRecord;
use super::topic_name;
use crate::config::edit::{self, ConfigEdit, Scope};
use crate::config::{self, BrokerSettings, ConfigError, ConfigSource, Kind, SharedSettings};

/// How often a change checked against metadata that moved on meanwhile (a
/// change committed by another broker's controller) is checked again
/// before the client is told to retry.
const CONFLICT_RETRIES: usize = 5;
use crate::protocol::ErrorCode;

/// Bound on queued admin commands: admin traffic is small; a full queue
/// means the controller is stuck and callers should wait, not pile up.
pub const COMMAND_QUEUE: usize = 1024;

/// Most partitions one topic may have: a bound on what one request can make
/// the controller allocate, persist and open.
pub const MAX_PARTITIONS: i32 = 100_000;

fn too_many_partitions(n: i32) -> AdminError {
    AdminError::new(
        ErrorCode::InvalidPartitions,
        format!("{n} partitions requested; at most {MAX_PARTITIONS} per topic"),
    )
}

/// Refuses `n` new partitions that would leave too few file descriptors.
fn descriptors_for(n: usize) -> Result<(), AdminError> {
    crate::broker::descriptors::room_for(n as u64)
        .map_err(|e| AdminError::new(ErrorCode::PolicyViolation, e.to_string()))
}

/// Checks partitions `first..` of topic `name` placed on `replicas` before
/// they are committed: every copy's directory name fits a file name, and
/// this broker has descriptors for the copies it would hold beyond the
/// `held` it holds already (other brokers find out when they open theirs).
fn check_placed(
    meta: &ClusterMeta,
    (broker, held): (i32, usize),
    name: &str,
    first: usize,
    replicas: &[Vec<i32>],
) -> Result<(), AdminError> {
    if let Some(dir) = meta.overlong_dir(name, first, replicas) {
        return Err(AdminError::new(
            ErrorCode::InvalidTopic,
            format!(
                "the directory of a further copy on one broker, {dir:?}, would be {} bytes, longer than a file name may be ({}): use a shorter topic name or place the copies on different brokers",
                dir.len(),
                super::model::MAX_DIR_NAME
            ),
        ));
    }
    descriptors_for(meta.copies_on(replicas, broker).saturating_sub(held))
}

/// The shared, lock-free-to-read metadata snapshot.
pub type Snapshot = Arc<ArcSwap<ClusterMeta>>;

/// An admin request that failed, with the Kafka error code to answer with.
#[derive(Debug, Clone, Error)]
#[error("{message}")]
pub struct AdminError {
    /// Kafka error code.
    pub code: ErrorCode,
    /// Human-readable reason, sent as the error message.
    pub message: String,
}

impl AdminError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

/// A topic to create.
#[derive(Debug, Clone)]
pub struct NewTopic {
    /// Name.
    pub name: String,
    /// Partition count; -1 means `num.partitions`.
    pub partitions: i32,
    /// Replication factor; -1 means `default.replication.factor`.
    pub replication_factor: i16,
    /// Manual replica assignment, if the client gave one: (partition,
    /// replicas with the leader first), sorted by partition.
    pub assignment: Option<Vec<(i32, Vec<i32>)>>,
    /// Topic config overrides.
    pub configs: BTreeMap<String, String>,
}

/// Why a shard could not do what the controller asked.
#[derive(Debug, Clone, Error)]
pub enum ShardError {
    /// A partition's log would not open.
    #[error("{topic}-{partition} on shard {shard}: {cause}")]
    Open { topic: String, partition: i32, shard: i32, cause: crate::storage::io_failure::IoFailure },
    /// A partition's clean shutdown failed.
    #[error("clean shutdown of a partition on shard {shard}: {cause}")]
    Shutdown { shard: i32, cause: crate::storage::io_failure::IoFailure },
    /// The shard is not running (it stopped, or never started).
    #[error("shard {0} is not running")]
    Gone(usize),
}

/// A partition copy a shard is to open (or give its new role to).
#[derive(Clone)]
pub struct OpenPartition {
    /// Its topic, as the metadata being published has it.
    pub topic: Arc<TopicMeta>,
    /// Its index.
    pub partition: i32,
    /// Its directory's name in the data dir (`ClusterMeta::replica_dir`).
    pub dir: String,
}

/// Work for a shard, sent by the controller. `done` is answered once the
/// shard's partition logs reflect the change.
pub enum ShardCommand {
    /// Open (creating if needed) these partition copies, held by this shard.
    Open { partitions: Vec<OpenPartition>, done: flume::Sender<Result<(), ShardError>> },
    /// Close and forget every partition of this topic.
    DropTopic { name: String, done: flume::Sender<()> },
    /// Close and forget one partition this broker no longer holds (a
    /// reassignment moved it away).
    ClosePartition { topic: Arc<TopicMeta>, partition: i32, done: flume::Sender<()> },
    /// The topic's configs were altered: its logs take the new settings.
    Reconfigure { topic: Arc<TopicMeta>, done: flume::Sender<()> },
    /// Dynamic broker configs changed (the shard's settings are already
    /// replaced): every log takes its new settings, and retention runs.
    ReconfigureAll { done: flume::Sender<()> },
    /// Clean shutdown: flush every partition, write its indexes, refuse more.
    Shutdown { done: flume::Sender<Result<(), ShardError>> },
    /// Every owned partition's high watermark, for
    /// `replication-offset-checkpoint`.
    HighWatermarks { done: flume::Sender<Vec<HwEntry>> },
}

/// Commands to the controller.
pub enum Command {
    /// CreateTopics.
    CreateTopics {
        topics: Vec<NewTopic>,
        validate_only: bool,
        reply: flume::Sender<Vec<Result<Arc<TopicMeta>, AdminError>>>,
    },
    /// DeleteTopics, by name.
    DeleteTopics { names: Vec<String>, reply: flume::Sender<Vec<Result<Uuid, AdminError>>> },
    /// CreatePartitions: grow `name` to `count` partitions.
    CreatePartitions { name: String, count: i32, validate_only: bool, reply: flume::Sender<Result<(), AdminError>> },
    /// InitProducerId: a producer id never handed out before.
    AllocateProducerId { reply: flume::Sender<Result<i64, AdminError>> },
    /// IncrementalAlterConfigs / AlterConfigs of a topic.
    AlterTopicConfigs {
        name: String,
        edit: ConfigEdit,
        validate_only: bool,
        reply: flume::Sender<Result<(), AdminError>>,
    },
    /// A controlled shutdown: the quorum fences this broker first.
    Leave { reply: flume::Sender<std::io::Result<()>> },
    /// DescribeQuorum: the quorum as its leader sees it.
    DescribeQuorum { reply: flume::Sender<QuorumView> },
    /// UnregisterBroker: decommission a stopped broker.
    UnregisterBroker { broker: i32, reply: flume::Sender<Result<(), AdminError>> },
    /// AddRaftVoter / RemoveRaftVoter.
    ChangeVoters { change: VoterChange, reply: flume::Sender<Result<(), AdminError>> },
    /// AlterPartition: partition `key` of topic `name`, led by `leader` at
    /// `leader_epoch`, goes from the ISR `base` to `isr`.
    AlterPartition {
        name: String,
        key: (Uuid, i32),
        leader: i32,
        leader_epoch: i32,
        base: Vec<i32>,
        isr: Vec<i32>,
        reply: flume::Sender<Result<(), AdminError>>,
    },
    /// A leader that cannot write its log (its disk is full or failing)
    /// gives partition `key` of `name`, which it leads at `leader_epoch`,
    /// to another live member of its ISR, and leaves the ISR (Kafka moves
    /// the partitions of a failed log directory so).
    Resign {
        name: String,
        key: (Uuid, i32),
        leader: i32,
        leader_epoch: i32,
        reply: flume::Sender<Result<(), AdminError>>,
    },
    /// ElectLeaders: for each partition, its preferred replica (or, with
    /// `unclean`, any live one where none leads).
    ElectLeaders { unclean: bool, partitions: Vec<(String, i32)>, reply: flume::Sender<Vec<Result<(), AdminError>>> },
    /// AlterPartitionReassignments: each (topic, partition) moves to the
    /// replicas given, or its move is cancelled (`None`).
    AlterReassignments {
        moves: Vec<(String, i32, Option<Vec<i32>>)>,
        reply: flume::Sender<Vec<Result<(), AdminError>>>,
    },
    /// IncrementalAlterConfigs / AlterConfigs of a broker resource: the
    /// cluster-wide default (`None`) or one node.
    AlterBrokerConfigs {
        node: Option<i32>,
        edit: ConfigEdit,
        validate_only: bool,
        reply: flume::Sender<Result<(), AdminError>>,
    },
}

/// What a command gets when the controller thread has stopped.
fn gone() -> AdminError {
    AdminError::new(ErrorCode::RequestTimedOut, "controller is gone")
}

/// A handle for shards to send commands to the controller.
#[derive(Clone)]
pub struct ControllerHandle {
    tx: flume::Sender<Command>,
}

impl ControllerHandle {
    /// Creates topics; one result per topic, in order.
    pub async fn create_topics(
        &self,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Vec<Result<Arc<TopicMeta>, AdminError>> {
        let n = topics.len();
        let (reply, rx) = flume::bounded(1);
        self.call(Command::CreateTopics { topics, validate_only, reply }, rx, || vec![Err(gone()); n]).await
    }

    /// Deletes topics; one result per name, in order.
    pub async fn delete_topics(&self, names: Vec<String>) -> Vec<Result<Uuid, AdminError>> {
        let n = names.len();
        let (reply, rx) = flume::bounded(1);
        self.call(Command::DeleteTopics { names, reply }, rx, || vec![Err(gone()); n]).await
    }

    /// Grows a topic's partition count.
    pub async fn create_partitions(&self, name: String, count: i32, validate_only: bool) -> Result<(), AdminError> {
        let (reply, rx) = flume::bounded(1);
        self.call(Command::CreatePartitions { name, count, validate_only, reply }, rx, || Err(gone())).await
    }

    /// Changes a topic's config overrides.
    pub async fn alter_topic_configs(
        &self,
        name: String,
        edit: ConfigEdit,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let (reply, rx) = flume::bounded(1);
        self.call(Command::AlterTopicConfigs { name, edit, validate_only, reply }, rx, || Err(gone())).await
    }

    /// Changes the dynamic configs of the cluster default (`None`) or a node.
    pub async fn alter_broker_configs(
        &self,
        node: Option<i32>,
        edit: ConfigEdit,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let (reply, rx) = flume::bounded(1);
        self.call(Command::AlterBrokerConfigs { node, edit, validate_only, reply }, rx, || Err(gone())).await
    }

    /// Allocates a fresh producer id, durably, so ids are never reused.
    pub async fn allocate_producer_id(&self) -> Result<i64, AdminError> {
        let (reply, rx) = flume::bounded(1);
        self.call(Command::AllocateProducerId { reply }, rx, || Err(gone())).await
    }

    /// The quorum as its leader sees it (this broker's view if the leader
    /// cannot be asked).
    pub async fn describe_quorum(&self, fallback: QuorumView) -> QuorumView {
        let (reply, rx) = flume::bounded(1);
        self.call(Command::DescribeQuorum { reply }, rx, || fallback.clone()).await
    }

    /// Removes a stopped broker's registration.
    pub async fn unregister_broker(&self, broker: i32) -> Result<(), AdminError> {
        let (reply, rx) = flume::bounded(1);
        self.call(Command::UnregisterBroker { broker, reply }, rx, || Err(gone())).await
    }

    /// Makes a node that follows the quorum a voter, or a voter a node that
    /// only follows.
    pub async fn change_voters(&self, change: VoterChange) -> Result<(), AdminError> {
        let (reply, rx) = flume::bounded(1);
        self.call(Command::ChangeVoters { change, reply }, rx, || Err(gone())).await
    }

    /// Asks the quorum to change partition `key` of `name`'s ISR from
    /// `base` (as its leader `leader` at `leader_epoch` last saw it) to
    /// `isr` (Kafka's AlterPartition).
    pub async fn alter_partition(
        &self,
        name: String,
        key: (Uuid, i32),
        leader: i32,
        leader_epoch: i32,
        base: Vec<i32>,
        isr: Vec<i32>,
    ) -> Result<(), AdminError> {
        let (reply, rx) = flume::bounded(1);
        self.call(Command::AlterPartition { name, key, leader, leader_epoch, base, isr, reply }, rx, || Err(gone()))
            .await
    }

    /// Gives partition `key` of `name`, led by `leader` at `leader_epoch`,
    /// whose log it cannot write, to another live member of its ISR.
    pub async fn resign(
        &self,
        name: String,
        key: (Uuid, i32),
        leader: i32,
        leader_epoch: i32,
    ) -> Result<(), AdminError> {
        let (reply, rx) = flume::bounded(1);
        self.call(Command::Resign { name, key, leader, leader_epoch, reply }, rx, || Err(gone())).await
    }

    /// Elects leaders for `partitions` (ElectLeaders), one result each.
    pub async fn elect_leaders(&self, unclean: bool, partitions: Vec<(String, i32)>) -> Vec<Result<(), AdminError>> {
        let n = partitions.len();
        let (reply, rx) = flume::bounded(1);
        self.call(Command::ElectLeaders { unclean, partitions, reply }, rx, || vec![Err(gone()); n]).await
    }

    /// Starts or cancels partition moves (AlterPartitionReassignments), one
    /// result each.
    pub async fn alter_reassignments(
        &self,
        moves: Vec<(String, i32, Option<Vec<i32>>)>,
    ) -> Vec<Result<(), AdminError>> {
        let n = moves.len();
        let (reply, rx) = flume::bounded(1);
        self.call(Command::AlterReassignments { moves, reply }, rx, || vec![Err(gone()); n]).await
    }

    /// Tells the quorum this broker is stopping (it is fenced), and waits
    /// for that, a few seconds at most. Called from the main thread.
    pub fn leave_blocking(&self) -> std::io::Result<()> {
        let (reply, rx) = flume::bounded(1);
        self.tx.send(Command::Leave { reply }).map_err(|_| std::io::Error::other("the controller is gone"))?;
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .map_err(|_| std::io::Error::other("the controller did not answer"))?
    }

    async fn call<T>(&self, cmd: Command, rx: flume::Receiver<T>, gone: impl Fn() -> T) -> T {
        if self.tx.send_async(cmd).await.is_err() {
            return gone();
        }
        rx.recv_async().await.unwrap_or_else(|_| gone())
    }
}

/// What opening the controller gives the broker.
pub struct Opened {
    pub controller: Controller,
    /// The metadata snapshot shards read.
    pub snapshot: Snapshot,
    /// Each local shard's settings.
    pub node_settings: Vec<SharedSettings>,
    /// Each local shard's node id.
    pub nodes: Vec<i32>,
    /// The metadata quorum as this broker sees it.
    pub quorum_view: SharedView,
}

/// Registers this broker (its shards, address and rack) unless the
/// metadata already has it so.
fn register(quorum: &Quorum, me: &BrokerReg) -> std::io::Result<()> {
    let meta = quorum.meta();
    let same = meta
        .brokers
        .get(&me.id)
        .is_some_and(|b| (b.shards, &b.host, b.port, &b.rack) == (me.shards, &me.host, me.port, &me.rack) && !b.fenced);
    if !same {
        let rec = MetaRecord::BrokerRegistered {
            broker: me.id,
            shards: me.shards as i32,
            host: me.host.clone(),
            port: me.port,
            rack: me.rack.clone(),
        };
        quorum.propose(MetaCommand::always(vec![rec]))?;
    }
    let nodes = quorum.meta().brokers.get(&me.id).map(|b| b.live_nodes().to_vec());
    info!(broker = me.id, ?nodes, leader = ?quorum.leader(), "registered with the metadata quorum");
    Ok(())
}

/// The controller's state, owned by its thread.
pub struct Controller {
    quorum: Quorum,
    publisher: Publisher,
    /// The rest of this broker's block of producer ids: handed out without
    /// a commit each (a restart forgets it; ids are never reused).
    producer_ids: std::ops::Range<i64>,
}

/// Producer ids a broker takes from the quorum at a time (Kafka's
/// `ProducerIdsBlock` size), so that InitProducerId commits once per block.
const PRODUCER_ID_BLOCK: i64 = 1000;

/// An AlterPartition as the controller checks it.
struct IsrChange<'a> {
    name: &'a str,
    key: (Uuid, i32),
    leader: i32,
    leader_epoch: i32,
    /// The ISR the leader decided from.
    base: &'a [i32],
    isr: &'a [i32],
}

/// How often the controller thread wakes with nothing to do, to see whether
/// a preferred-leader check is due.
const REBALANCE_TICK: std::time::Duration = std::time::Duration::from_secs(1);

/// A change checked against metadata that another commit overtook: check
/// it again.
fn conflict() -> AdminError {
    AdminError::new(ErrorCode::NotController, "the metadata changed while the request was checked; retry")
}

/// Rebuilds the snapshot from the log's records.
#[cfg(test)]
fn replay(meta: &mut ClusterMeta, records: &[MetaRecord]) {
    for r in records {
        apply(meta, r);
    }
}

pub(super) fn apply(meta: &mut ClusterMeta, r: &MetaRecord) {
    meta.log_end += 1;
    match r {
        MetaRecord::TopicCreated { name, id, leaders, configs } => meta.put_topic(TopicMeta::new(
            name.clone(),
            Uuid::from_bytes(*id),
            leaders.iter().map(|l| vec![*l]).collect(),
            configs.iter().cloned().collect(),
        )),
        MetaRecord::TopicPlaced { name, id, replicas, configs } => {
            meta.put_topic(TopicMeta::new(
                name.clone(),
                Uuid::from_bytes(*id),
                replicas.clone(),
                configs.iter().cloned().collect(),
            ));
        }
        MetaRecord::PartitionsPlaced { name, replicas } => {
            if let Some(t) = meta.topic(name) {
                let mut t = (**t).clone();
                t.add_partitions(replicas.clone());
                meta.put_topic(t);
            }
        }
        MetaRecord::PartitionReassigned { name, partition, replicas } => {
            if let Some(t) = meta.topic(name) {
                let mut t = (**t).clone();
                t.reassign(*partition as usize, replicas.clone());
                meta.put_topic(t);
            }
        }
        MetaRecord::TopicDeleted { name } => {
            meta.remove_topic(name);
        }
        MetaRecord::PartitionsAdded { name, leaders } => {
            if let Some(t) = meta.topic(name) {
                let mut t = (**t).clone();
                t.add_partitions(leaders.iter().map(|l| vec![*l]).collect());
                meta.put_topic(t);
            }
        }
        MetaRecord::TopicConfigsSet { name, configs } => {
            if let Some(t) = meta.topic(name) {
                let mut t = (**t).clone();
                t.set_configs(configs.iter().cloned().collect());
                meta.put_topic(t);
            }
        }
        MetaRecord::ProducerIdsAllocated { next } => meta.next_producer_id = meta.next_producer_id.max(*next),
        MetaRecord::BrokerConfigsSet { resource, configs } => {
            if configs.is_empty() {
                meta.broker_configs.remove(resource);
            } else {
                meta.broker_configs.insert(resource.clone(), configs.iter().cloned().collect());
            }
        }
        MetaRecord::BrokerRegistered { broker, shards, host, port, rack } => meta.register_broker(BrokerReg {
            id: *broker,
            nodes: Vec::new(),
            shards: usize::try_from(*shards).unwrap_or(0),
            host: host.clone(),
            port: *port,
            rack: rack.clone(),
            fenced: false,
        }),
        MetaRecord::BrokerFenced { broker } => {
            meta.set_fenced(*broker, true);
            super::election::on_fenced(meta, *broker);
        }
        MetaRecord::BrokerUnfenced { broker } => meta.set_fenced(*broker, false),
        MetaRecord::BrokerUnregistered { broker } => meta.unregister_broker(*broker),
        MetaRecord::ControllerRegistered { id, addr } if addr.is_empty() => {
            meta.controllers.remove(id);
        }
        MetaRecord::ControllerRegistered { id, addr } => {
            meta.controllers.insert(*id, addr.clone());
        }
        MetaRecord::LeaderEpochs { name, epochs } => {
            if let Some(t) = meta.topic(name) {
                let mut t = (**t).clone();
                t.set_epochs(epochs);
                meta.put_topic(t);
            }
        }
        MetaRecord::IsrChanged { name, partition, leader_epoch, isr } => {
            if let Some(t) = meta.topic(name) {
                let mut t = (**t).clone();
                let p = *partition as usize;
                if t.set_isr(p, *leader_epoch, isr) {
                    // A move whose target just came into sync completes.
                    t.finish_reassignment(p, |n| meta.is_live(n));
                    meta.put_topic(t);
                }
            }
        }
        MetaRecord::ReassignmentStarted { name, partition, target } => {
            if let Some(t) = meta.topic(name).filter(|t| (*partition as usize) < t.replicas.len()) {
                let mut t = (**t).clone();
                t.start_reassignment(*partition as usize, target.clone(), |n| meta.is_live(n));
                meta.put_topic(t);
            }
        }
        MetaRecord::ReassignmentCancelled { name, partition } => {
            if let Some(t) = meta.topic(name) {
                let mut t = (**t).clone();
                if t.cancel_reassignment(*partition as usize, |n| meta.is_live(n)) {
                    meta.put_topic(t);
                }
            }
        }
        MetaRecord::Reassigning { name, partition, target, original } => {
            if let Some(t) = meta.topic(name) {
                let mut t = (**t).clone();
                let (target, original) = (target.clone(), original.clone());
                t.reassigning.insert(*partition as usize, reassignment::Reassignment { target, original });
                meta.put_topic(t);
            }
        }
        MetaRecord::LeaderElected { name, partition, leader, isr } => {
            if let Some(t) = meta.topic(name) {
                let mut t = (**t).clone();
                let p = *partition as usize;
                let valid = t.replicas.get(p).is_some_and(|r| r.contains(leader) && isr.iter().all(|n| r.contains(n)));
                if valid && t.elect(p, *leader, isr.clone()) {
                    meta.put_topic(t);
                }
            }
        }
        MetaRecord::Isrs { name, isr } => {
            if let Some(t) = meta.topic(name) {
                let mut t = (**t).clone();
                t.set_isrs(isr);
                meta.put_topic(t);
            }
        }
        MetaRecord::PartitionMoved { name, partition, leader } => {
            if let Some(t) = meta.topic(name) {
                let mut t = (**t).clone();
                t.reassign(*partition as usize, vec![*leader]);
                meta.put_topic(t);
            }
        }
    }
}

/// A replication factor the nodes can hold: one replica per node at most.
/// (Nodes are shards: several on one broker are one machine.)
fn check_replication_factor(rf: i16, nodes: i32) -> Result<usize, AdminError> {
    if rf < 1 {
        return Err(AdminError::new(
            ErrorCode::InvalidReplicationFactor,
            "Replication factor must be larger than 0, or -1 to use the default value.",
        ));
    }
    if i32::from(rf) > nodes {
        return Err(AdminError::new(
            ErrorCode::InvalidReplicationFactor,
            format!("Replication factor: {rf} larger than available brokers: {nodes}."),
        ));
    }
    Ok(rf as usize)
}

/// A client's replica assignment, checked as Kafka checks it: partitions
/// numbered from 0 without gaps, each with the same number of distinct,
/// existing nodes.
fn check_assignment(a: Vec<(i32, Vec<i32>)>, meta: &ClusterMeta) -> Result<Vec<Vec<i32>>, AdminError> {
    let bad = |m: String| AdminError::new(ErrorCode::InvalidReplicaAssignment, m);
    if a.len() > MAX_PARTITIONS as usize {
        return Err(too_many_partitions(a.len() as i32));
    }
    let mut out = Vec::with_capacity(a.len());
    for (expected, (p, replicas)) in a.into_iter().enumerate() {
        if p != expected as i32 {
            return Err(bad("partitions should be a consecutive 0-based integer sequence".into()));
        }
        if replicas.is_empty() {
            return Err(bad(format!("partition {p} has no replicas")));
        }
        if let Some(n) = replicas.iter().find(|&&n| !meta.is_live(n)) {
            return Err(bad(format!("node {n} does not exist")));
        }
        if replicas.iter().enumerate().any(|(i, n)| replicas[..i].contains(n)) {
            return Err(bad(format!("Duplicate brokers not allowed in replica assignment: {replicas:?}")));
        }
        if out.first().is_some_and(|f: &Vec<i32>| f.len() != replicas.len()) {
            return Err(bad("All partitions should have the same number of replicas".into()));
        }
        out.push(replicas);
    }
    Ok(out)
}

/// Brings a data dir's file log (written before the quorum existed) into the
/// quorum, once: its records are proposed as one command unless the quorum
/// already holds records, then the file is renamed aside. A crash before the
/// rename finds the records in the quorum and only renames. Returns the
/// metadata after it.
fn import_file_log(data_dir: &std::path::Path, quorum: &Quorum) -> std::io::Result<ClusterMeta> {
    let path = data_dir.join(log::FILE_NAME);
    if !path.exists() {
        return Ok(quorum.meta());
    }
    let records = log::read(data_dir)?;
    // The embedded quorum is this broker's alone: records in it mean a
    // crash came between the import and the rename below.
    if quorum.meta().log_end == 0 && !records.is_empty() {
        info!(records = records.len(), "importing the metadata file log into the quorum");
        let reply = quorum.propose(MetaCommand { records, expect_log_end: Some(0) })?;
        if !reply.applied {
            return Err(std::io::Error::other("the metadata file log could not be imported: the quorum moved on"));
        }
    }
    std::fs::rename(&path, data_dir.join(format!("{}.imported", log::FILE_NAME)))?;
    crate::storage::partition_dir::sync_dir(data_dir)?;
    Ok(quorum.meta())
}

/// Refuses, before a cluster node starts, a data dir with a single broker's
/// metadata file log: other brokers' records may already be in the quorum,
/// and merging a single broker's metadata into a cluster is not supported.
pub fn refuse_file_log(data_dir: &std::path::Path) -> std::io::Result<()> {
    let path = data_dir.join(log::FILE_NAME);
    if path.exists() && !log::read(data_dir)?.is_empty() {
        return Err(std::io::Error::other(format!(
            "{} holds a single broker's metadata; a broker joining a cluster needs a fresh data directory",
            path.display()
        )));
    }
    Ok(())
}

/// New replica assignments for the partitions with a replica on a node of
/// broker `me` that is no longer live (it restarted with fewer shards): its
/// shards share its data dir, so any of its nodes can take a replica over
/// (`replica_dirs::reconcile` hands the directories on), and only its
/// nodes can. On a data dir from before registrations, nodes no broker has are
/// its too. A gone leader gives way to the node leading fewest, gone
/// followers to the nodes holding fewest, and the replication factor
/// shrinks to the node count if it must.
fn reassign_gone_nodes(meta: &ClusterMeta, me: i32) -> Vec<MetaRecord> {
    let Some(mine) = meta.brokers.get(&me) else {
        return Vec::new();
    };
    let nodes: Vec<placement::Candidate> = meta.placement_nodes().into_iter().filter(|c| c.broker == me).collect();
    if nodes.is_empty() {
        return Vec::new();
    }
    let unowned = |n: i32| meta.brokers.values().all(|b| !b.nodes.contains(&n));
    let gone = |n: i32| !meta.is_live(n) && (mine.nodes.contains(&n) || (meta.brokers.len() == 1 && unowned(n)));
    let mut load = meta.load();
    let mut moves = Vec::new();
    for t in meta.topics.values() {
        for (p, r) in t.replicas.iter().enumerate() {
            if !r.iter().any(|&n| gone(n)) {
                continue;
            }
            let mut replicas: Vec<i32> = r.iter().copied().filter(|&n| !gone(n)).collect();
            if gone(r[0]) {
                // The leader stays on this broker, where the data is: one
                // of its nodes already listed, else its node leading fewest.
                let mine_listed = replicas.iter().position(|n| nodes.iter().any(|c| c.node == *n));
                let leader = match mine_listed {
                    Some(i) => replicas.remove(i),
                    None => nodes.iter().map(|c| c.node).min_by_key(|&n| (load.leading(n), n)).expect("non-empty"),
                };
                *load.leaders.entry(leader).or_default() += 1;
                replicas.insert(0, leader);
            }
            while replicas.len() < r.len() {
                let free = nodes.iter().map(|c| c.node).filter(|n| !replicas.contains(n));
                let Some(next) = free.min_by_key(|&n| (load.holding(n), n)) else { break };
                *load.replicas.entry(next).or_default() += 1;
                replicas.push(next);
            }
            moves.push(MetaRecord::PartitionReassigned { name: t.name.clone(), partition: p as i32, replicas });
        }
    }
    moves
}

impl Controller {
    /// Opens the metadata log in `data_dir`, replays it, and moves partitions
    /// whose node no longer exists (the broker restarted with fewer shards).
    /// Returns the controller, the metadata snapshot, and each node's
    /// settings (static ones under the dynamic configs of the log).
    pub fn open(
        data_dir: PathBuf,
        cluster_id: String,
        me: BrokerReg,
        settings: BrokerSettings,
        quorum: QuorumConfig,
        listener: Option<std::net::TcpListener>,
    ) -> std::io::Result<Opened> {
        let base = ClusterMeta::of_cluster(cluster_id);
        if !quorum.is_single() {
            refuse_file_log(&data_dir)?;
        }
        let quorum = Quorum::open(&data_dir, base, quorum, listener)?;
        import_file_log(&data_dir, &quorum)?;
        register(&quorum, &me)?;
        quorum.start_sessions(me.id, settings.heartbeat_interval(), settings.session_timeout());
        let mut meta = quorum.meta();
        let registered = meta.clone();
        // Checked against the metadata as it is when proposed: recomputed
        // if another commit came first.
        for _ in 0..CONFLICT_RETRIES {
            let moves = reassign_gone_nodes(&meta, me.id);
            if moves.is_empty() {
                break;
            }
            info!(count = moves.len(), "moving partitions of nodes that no longer exist");
            let applied = quorum.propose(MetaCommand { records: moves, expect_log_end: Some(meta.log_end) })?.applied;
            meta = quorum.meta();
            if applied {
                break;
            }
        }
        // Each copy's data goes with its node before any shard opens it.
        super::replica_dirs::reconcile(&registered, &meta, me.id, &data_dir);
        // Unregistered while it started (an operator's race): nothing to run.
        let nodes =
            meta.brokers.get(&me.id).map(|b| b.live_nodes().to_vec()).ok_or_else(|| {
                std::io::Error::other("this broker was unregistered while it started; start it again")
            })?;
        let publisher = Publisher::new(meta, settings, me.id, data_dir);
        let (snapshot, node_settings) = (publisher.snapshot.clone(), publisher.node_settings.clone());
        let quorum_view = quorum.view();
        let controller = Self { quorum, publisher, producer_ids: 0..0 };
        Ok(Opened { controller, snapshot, node_settings, nodes, quorum_view })
    }

    /// Starts the controller thread serving commands sent to the returned
    /// handle, and publishing what the quorum commits.
    pub fn spawn(mut self, shards: Vec<flume::Sender<ShardCommand>>) -> std::io::Result<ControllerHandle> {
        self.publisher.shards = shards;
        let (tx, rx) = flume::bounded(COMMAND_QUEUE);
        let changes = self.quorum.changes();
        std::thread::Builder::new().name("sluice-controller".into()).spawn(move || {
            let mut rebalanced = std::time::Instant::now();
            loop {
                // Some(Some(cmd)): a command; Some(None): the quorum applied
                // something (or time passed); None: every handle is gone.
                let next: Option<Option<Command>> = flume::Selector::new()
                    .recv(&rx, |c| c.ok().map(Some))
                    .recv(&changes, |_| Some(None))
                    .wait_timeout(REBALANCE_TICK)
                    .unwrap_or(Some(None));
                match next {
                    None => break,
                    Some(Some(cmd)) => {
                        self.publish();
                        self.handle(cmd);
                    }
                    Some(None) => {
                        self.publish();
                    }
                }
                if let Some((every, percentage)) = self.publisher.settings.leader_rebalance()
                    && rebalanced.elapsed() >= every
                {
                    rebalanced = std::time::Instant::now();
                    self.rebalance(percentage);
                }
            }
        })?;
        Ok(ControllerHandle { tx })
    }

    /// On the quorum's leader only: gives partitions back to their
    /// preferred replicas where a broker leads too few of its own
    /// (`auto.leader.rebalance.enable`).
    fn rebalance(&mut self, percentage: i64) {
        if !self.quorum.leads() {
            return;
        }
        for (topic, p) in election::imbalanced(&self.current(), percentage) {
            if let Err(e) = self.retrying(|c| c.elect_leader(&topic, p, false)) {
                info!(topic, partition = p, "preferred leader not restored: {}", e.message);
            }
        }
    }

    /// Publishes what the quorum has applied to this broker's shards.
    fn publish(&self) -> OpenFailures {
        self.publisher.publish(self.quorum.meta())
    }

    /// The metadata as this broker's shards have it.
    fn current(&self) -> Arc<ClusterMeta> {
        self.publisher.snapshot.load_full()
    }

    /// Runs `op` until it is not overtaken by another commit (at most
    /// `CONFLICT_RETRIES` times), publishing in between.
    fn retrying<T>(&mut self, mut op: impl FnMut(&mut Self) -> Result<T, AdminError>) -> Result<T, AdminError> {
        let mut tries = 0;
        loop {
            match op(self) {
                Err(e) if e.code == ErrorCode::NotController && tries < CONFLICT_RETRIES => {
                    tries += 1;
                    self.publish();
                }
                r => return r,
            }
        }
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::CreateTopics { topics, validate_only, reply } => {
                let out =
                    topics.into_iter().map(|t| self.retrying(|c| c.create_topic(t.clone(), validate_only))).collect();
                let _ = reply.send(out);
            }
            Command::DeleteTopics { names, reply } => {
                let out = names.into_iter().map(|n| self.retrying(|c| c.delete_topic(&n))).collect();
                let _ = reply.send(out);
            }
            Command::CreatePartitions { name, count, validate_only, reply } => {
                let _ = reply.send(self.retrying(|c| c.create_partitions(&name, count, validate_only)));
            }
            Command::AlterTopicConfigs { name, edit, validate_only, reply } => {
                let _ = reply.send(self.retrying(|c| c.alter_topic_configs(&name, &edit, validate_only)));
            }
            Command::AlterBrokerConfigs { node, edit, validate_only, reply } => {
                let _ = reply.send(self.retrying(|c| c.alter_broker_configs(node, &edit, validate_only)));
            }
            Command::AllocateProducerId { reply } => {
                let _ = reply.send(self.retrying(|c| c.allocate_producer_id()));
            }
            Command::DescribeQuorum { reply } => {
                let _ = reply.send(self.quorum.leader_view());
            }
            Command::UnregisterBroker { broker, reply } => {
                let _ = reply.send(self.retrying(|c| c.unregister_broker(broker)));
            }
            Command::ChangeVoters { change, reply } => {
                let _ = reply.send(self.change_voters(change));
            }
            Command::AlterPartition { name, key, leader, leader_epoch, base, isr, reply } => {
                let change = IsrChange { name: &name, key, leader, leader_epoch, base: &base, isr: &isr };
                let _ = reply.send(self.retrying(|c| c.alter_partition(&change)));
            }
            Command::Resign { name, key, leader, leader_epoch, reply } => {
                let _ = reply.send(self.retrying(|c| c.resign(&name, key, leader, leader_epoch)));
            }
            Command::ElectLeaders { unclean, partitions, reply } => {
                let out = partitions.iter().map(|(t, p)| self.retrying(|c| c.elect_leader(t, *p, unclean))).collect();
                let _ = reply.send(out);
            }
            Command::AlterReassignments { moves, reply } => {
                let out = moves
                    .iter()
                    .map(|(t, p, r)| self.retrying(|c| c.alter_reassignment(t, *p, r.as_deref())))
                    .collect();
                let _ = reply.send(out);
            }
            Command::Leave { reply } => {
                let _ = reply.send(self.quorum.leave(self.publisher.broker));
            }
        }
    }

    /// Commits an ISR change asked for by a partition's leader, if it still
    /// leads at its epoch (else `FENCED_LEADER_EPOCH`, as Kafka's controller
    /// answers a stale AlterPartition) and the ISR is still the one it
    /// started from (else the change was decided on an older ISR: an
    /// election may have dropped a member it would bring back). A member
    /// it adds must be live (KIP-841: a fenced broker never rejoins).
    fn alter_partition(&mut self, c: &IsrChange<'_>) -> Result<(), AdminError> {
        let current = self.current();
        let (name, p) = (c.name, c.key.1 as usize);
        let Some(t) = current.topic(name).filter(|t| t.id == c.key.0 && p < t.leaders.len()) else {
            return Err(AdminError::new(ErrorCode::UnknownTopicOrPartition, format!("no partition {name}-{p}")));
        };
        if t.leaders[p] != c.leader || t.epochs[p] != c.leader_epoch {
            let why = format!("{name}-{p} is led by {} at epoch {}", t.leaders[p], t.epochs[p]);
            return Err(AdminError::new(ErrorCode::FencedLeaderEpoch, why));
        }
        if t.isr[p] != c.base {
            let why = format!("{name}-{p}'s ISR is {:?}, not {:?}", t.isr[p], c.base);
            return Err(AdminError::new(ErrorCode::InvalidRequest, why));
        }
        if let Some(n) = c.isr.iter().find(|n| !t.isr[p].contains(n) && !current.is_live(**n)) {
            return Err(AdminError::new(ErrorCode::InvalidRequest, format!("node {n} is not live")));
        }
        let mut check = (**t).clone();
        if !check.set_isr(p, c.leader_epoch, c.isr) {
            return Err(AdminError::new(
                ErrorCode::InvalidRequest,
                format!("ISR {:?} is not a set of replicas", c.isr),
            ));
        }
        if check.isr[p] == t.isr[p] {
            return Ok(());
        }
        let rec = MetaRecord::IsrChanged {
            name: name.to_string(),
            partition: c.key.1,
            leader_epoch: c.leader_epoch,
            isr: c.isr.to_vec(),
        };
        self.commit(rec).map(|_| ())
    }

    /// Moves partition `key` of `name` from `leader`, which cannot write
    /// its log, to the first other live replica in its ISR (replica order)
    /// at the next epoch, without `leader` in the ISR. Refused if it no
    /// longer leads at `leader_epoch`, or no other member can take over.
    fn resign(&mut self, name: &str, key: (Uuid, i32), leader: i32, leader_epoch: i32) -> Result<(), AdminError> {
        let meta = self.current();
        let p = key.1 as usize;
        let Some(t) = meta.topic(name).filter(|t| t.id == key.0 && p < t.leaders.len()) else {
            return Err(AdminError::new(ErrorCode::UnknownTopicOrPartition, format!("no partition {name}-{p}")));
        };
        if t.leaders[p] != leader || t.epochs[p] != leader_epoch {
            let why = format!("{name}-{p} is led by {} at epoch {}", t.leaders[p], t.epochs[p]);
            return Err(AdminError::new(ErrorCode::FencedLeaderEpoch, why));
        }
        let isr: Vec<i32> = t.isr[p].iter().copied().filter(|&n| n != leader).collect();
        let Some(&next) = t.replicas[p].iter().find(|&&n| isr.contains(&n) && meta.is_live(n)) else {
            let why = format!("no other live replica of {name}-{p} is in sync");
            return Err(AdminError::new(ErrorCode::EligibleLeadersNotAvailable, why));
        };
        warn!(topic = name, partition = p, from = leader, to = next, "a leader that cannot write its log gives it up");
        let rec = MetaRecord::LeaderElected { name: name.to_string(), partition: key.1, leader: next, isr };
        self.commit(rec).map(|_| ())
    }

    /// Elects a leader for partition `p` of `name`: its preferred replica
    /// (the first assigned) if live and in sync, or with `unclean`, where
    /// no live replica leads, the first live one in sync, else any live
    /// one (its ISR is then itself alone).
    fn elect_leader(&mut self, name: &str, p: i32, unclean: bool) -> Result<(), AdminError> {
        let meta = self.current();
        let i = p as usize;
        let Some(t) = meta.topic(name).filter(|t| i < t.replicas.len()) else {
            return Err(AdminError::new(ErrorCode::UnknownTopicOrPartition, format!("no partition {name}-{p}")));
        };
        let (leader, isr, replicas) = (t.leaders[i], &t.isr[i], &t.replicas[i]);
        let (next, next_isr) = if unclean {
            if meta.is_live(leader) {
                return Err(AdminError::new(ErrorCode::ElectionNotNeeded, format!("{name}-{p} has a live leader")));
            }
            match isr.iter().chain(replicas).copied().find(|&n| meta.is_live(n)) {
                Some(n) if isr.contains(&n) => (n, isr.iter().copied().filter(|&m| meta.is_live(m)).collect()),
                Some(n) => (n, vec![n]),
                None => {
                    let why = format!("no live replica of {name}-{p}");
                    return Err(AdminError::new(ErrorCode::EligibleLeadersNotAvailable, why));
                }
            }
        } else {
            let preferred = replicas[0];
            if leader == preferred {
                let why = format!("{name}-{p} is led by its preferred replica");
                return Err(AdminError::new(ErrorCode::ElectionNotNeeded, why));
            }
            if !meta.is_live(preferred) || !isr.contains(&preferred) {
                let why = format!("the preferred replica {preferred} of {name}-{p} is not live and in sync");
                return Err(AdminError::new(ErrorCode::PreferredLeaderNotAvailable, why));
            }
            (preferred, isr.clone())
        };
        info!(topic = name, partition = p, leader = next, unclean, "electing a leader");
        let rec = MetaRecord::LeaderElected { name: name.to_string(), partition: p, leader: next, isr: next_isr };
        self.commit(rec).map(|_| ())
    }

    /// Starts moving partition `p` of `name` to `target` (checked as Kafka
    /// checks it: distinct, registered nodes), or cancels its move.
    fn alter_reassignment(&mut self, name: &str, p: i32, target: Option<&[i32]>) -> Result<(), AdminError> {
        let meta = self.current();
        let Some(t) = meta.topic(name).filter(|t| (p as usize) < t.replicas.len()) else {
            return Err(AdminError::new(ErrorCode::UnknownTopicOrPartition, format!("no partition {name}-{p}")));
        };
        let rec = match target {
            None if !t.reassigning.contains_key(&(p as usize)) => {
                let why = format!("no reassignment of {name}-{p} is in progress");
                return Err(AdminError::new(ErrorCode::NoReassignmentInProgress, why));
            }
            None => {
                let mut trial = (**t).clone();
                if !trial.cancel_reassignment(p as usize, |n| meta.is_live(n)) {
                    let why = format!("no original replica of {name}-{p} is live and in sync to lead it back");
                    return Err(AdminError::new(ErrorCode::InvalidReplicaAssignment, why));
                }
                MetaRecord::ReassignmentCancelled { name: name.to_string(), partition: p }
            }
            Some(_) if t.reassigning.contains_key(&(p as usize)) => {
                let why = format!("{name}-{p} is being moved already: cancel that move first");
                return Err(AdminError::new(ErrorCode::InvalidReplicaAssignment, why));
            }
            Some(target) => {
                let mut distinct = target.to_vec();
                distinct.sort_unstable();
                distinct.dedup();
                let invalid = |why: String| Err(AdminError::new(ErrorCode::InvalidReplicaAssignment, why));
                if target.is_empty() || distinct.len() != target.len() {
                    return invalid(format!("replicas {target:?} of {name}-{p} are empty or repeat a node"));
                }
                if let Some(n) = target.iter().find(|&&n| meta.node(n).is_none()) {
                    return invalid(format!("node {n} is not a registered broker's"));
                }
                if let Some((newcomer, first)) = reassignment::displaced_copy(&meta, &t.replicas[p as usize], target) {
                    return invalid(format!(
                        "node {newcomer} would take the place of node {first}, its broker's first copy of {name}-{p}: keep node {first} first among that broker's nodes (a copy cannot move between shards of one broker)"
                    ));
                }
                let broker = self.publisher.broker;
                let held = meta.copies_on(&t.replicas[p as usize..=p as usize], broker);
                check_placed(&meta, (broker, held), name, p as usize, &[target.to_vec()])?;
                MetaRecord::ReassignmentStarted { name: name.to_string(), partition: p, target: target.to_vec() }
            }
        };
        info!(topic = name, partition = p, ?target, "partition reassignment");
        self.commit(rec).map(|_| ())
    }

    /// Decommissions broker `broker`, which must have stopped (be fenced):
    /// a running one would go on serving unlisted. Its partitions keep
    /// their assignment, without a live leader, until they are moved
    /// (their data is on that broker until replication, issue 24).
    fn unregister_broker(&mut self, broker: i32) -> Result<(), AdminError> {
        let current = self.current();
        let Some(b) = current.brokers.get(&broker) else {
            return Err(AdminError::new(
                ErrorCode::BrokerIdNotRegistered,
                format!("broker {broker} is not registered"),
            ));
        };
        if !b.fenced {
            return Err(AdminError::new(
                ErrorCode::InvalidRequest,
                format!("broker {broker} is running: stop it (SIGTERM) before unregistering it"),
            ));
        }
        self.commit(MetaRecord::BrokerUnregistered { broker })?;
        if let Ok(id) = u64::try_from(broker)
            && let Err(e) = self.quorum.remove_learner(id)
        {
            warn!(broker, "unregistered, but the quorum still sends it the log: {e}");
        }
        info!(broker, "unregistered broker");
        Ok(())
    }

    /// Checks a voter change against the membership this node has, then
    /// has the quorum's leader make it (joint consensus: the change is
    /// committed by the old and the new voters both).
    fn change_voters(&mut self, change: VoterChange) -> Result<(), AdminError> {
        let (voters, learners) = self.quorum.members();
        let refuse = |code, msg: String| Err(AdminError::new(code, msg));
        match change {
            VoterChange::Add(id) if voters.contains(&id) => {
                return refuse(ErrorCode::DuplicateVoter, format!("node {id} is a voter already"));
            }
            VoterChange::Add(id) if !i32::try_from(id).is_ok_and(|i| self.current().controllers.contains_key(&i)) => {
                return refuse(
                    ErrorCode::InvalidRequest,
                    format!("node {id} has not registered as a controller (process.roles with controller)"),
                );
            }
            VoterChange::Add(id) if !learners.contains(&id) => {
                return refuse(ErrorCode::InvalidRequest, format!("node {id} does not follow the quorum: start it"));
            }
            VoterChange::Remove(id) if !voters.contains(&id) => {
                return refuse(ErrorCode::VoterNotFound, format!("node {id} is not a voter"));
            }
            VoterChange::Remove(_) if voters.len() == 1 => {
                return refuse(ErrorCode::InvalidRequest, "the last voter cannot be removed".to_string());
            }
            _ => {}
        }
        self.quorum.change_voters(change).map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidInput => AdminError::new(ErrorCode::InvalidRequest, e.to_string()),
            _ => AdminError::new(ErrorCode::RequestTimedOut, format!("the quorum did not change its voters: {e}")),
        })?;
        info!(?change, "the metadata quorum's voters changed");
        Ok(())
    }

    /// The next id of this broker's block, taking a new block from the
    /// quorum when it is used up: ids are unique across the cluster.
    fn allocate_producer_id(&mut self) -> Result<i64, AdminError> {
        if self.producer_ids.is_empty() {
            let first = self.current().next_producer_id;
            let end = first + PRODUCER_ID_BLOCK;
            self.commit(MetaRecord::ProducerIdsAllocated { next: end })?;
            self.producer_ids = first..end;
        }
        let id = self.producer_ids.next().expect("a block with ids left");
        assert!(id < self.current().next_producer_id, "a producer id from a committed block");
        Ok(id)
    }

    /// Commits `rec` if the metadata is still as this broker has it, then
    /// publishes it; returns the topics whose partitions did not open here.
    fn commit(&mut self, rec: MetaRecord) -> Result<OpenFailures, AdminError> {
        let cmd = MetaCommand { records: vec![rec], expect_log_end: Some(self.current().log_end) };
        let reply = self.quorum.propose(cmd).map_err(|e| {
            warn!("metadata quorum write failed: {e}");
            AdminError::new(ErrorCode::KafkaStorageError, format!("metadata log write failed: {e}"))
        })?;
        if !reply.applied {
            return Err(conflict());
        }
        Ok(self.publish())
    }

    fn create_topic(&mut self, t: NewTopic, validate_only: bool) -> Result<Arc<TopicMeta>, AdminError> {
        topic_name::validate(&t.name).map_err(|e| AdminError::new(ErrorCode::InvalidTopic, e.to_string()))?;
        let current = self.current();
        if current.topic(&t.name).is_some() {
            return Err(AdminError::new(ErrorCode::TopicAlreadyExists, format!("Topic '{}' already exists.", t.name)));
        }
        if let Some(other) = current.topics.keys().find(|other| topic_name::collide(other, &t.name)) {
            // Kafka refuses these: metric names replace '.' with '_'.
            return Err(AdminError::new(
                ErrorCode::InvalidTopic,
                format!("Topic '{}' collides with existing topic: {other}", t.name),
            ));
        }
        for (k, v) in &t.configs {
            config::validate_topic_config(k, v)
                .map_err(|e| AdminError::new(ErrorCode::InvalidConfig, e.to_string()))?;
        }
        let replicas = match t.assignment {
            Some(a) => check_assignment(a, &current)?,
            None => {
                let n = if t.partitions == -1 { self.publisher.settings.num_partitions() } else { t.partitions };
                if n > MAX_PARTITIONS {
                    return Err(too_many_partitions(n));
                }
                if n <= 0 {
                    return Err(AdminError::new(
                        ErrorCode::InvalidPartitions,
                        format!("number of partitions must be positive, got {n}"),
                    ));
                }
                let rf = match t.replication_factor {
                    -1 => self.publisher.settings.default_replication_factor(),
                    rf => rf,
                };
                let nodes = current.placement_nodes();
                let rf = check_replication_factor(rf, nodes.len() as i32)?;
                if rf > placement::brokers(&nodes) {
                    warn!(
                        topic = %t.name, replicas = rf, brokers = placement::brokers(&nodes),
                        "fewer brokers than replicas: some replicas share a machine (not machine-safe)"
                    );
                }
                placement::place_replicas(&nodes, &mut current.load(), n as usize, rf)
            }
        };
        check_placed(&current, (self.publisher.broker, 0), &t.name, 0, &replicas)?;
        let topic = Arc::new(TopicMeta::new(t.name.clone(), Uuid::new_v4(), replicas, t.configs));
        if validate_only {
            return Ok(topic);
        }
        let mut failures = self.commit(MetaRecord::TopicPlaced {
            name: topic.name.clone(),
            id: *topic.id.as_bytes(),
            replicas: topic.replicas.clone(),
            configs: topic.configs.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        })?;
        if let Some(e) = failures.remove(&topic.name) {
            // Undo: a topic whose logs cannot be opened must not stay.
            warn!(topic = %topic.name, "cannot open the new topic's partitions, removing it: {e}");
            self.retrying(|c| c.commit(MetaRecord::TopicDeleted { name: topic.name.clone() }))?;
            return Err(AdminError::new(ErrorCode::KafkaStorageError, format!("cannot open partition logs: {e}")));
        }
        info!(topic = %topic.name, partitions = topic.leaders.len(), "created topic");
        Ok(topic)
    }

    fn delete_topic(&mut self, name: &str) -> Result<Uuid, AdminError> {
        if name == crate::group::OFFSETS_TOPIC {
            // It holds every group and committed offset; the coordinators'
            // state would outlive it.
            return Err(AdminError::new(
                ErrorCode::InvalidTopic,
                format!("the internal topic {name} cannot be deleted: it holds every group's committed offsets"),
            ));
        }
        let Some(topic) = self.current().topic(name).cloned() else {
            return Err(AdminError::new(ErrorCode::UnknownTopicOrPartition, format!("topic {name:?} does not exist")));
        };
        self.commit(MetaRecord::TopicDeleted { name: name.to_string() })?;
        info!(topic = name, "deleted topic");
        Ok(topic.id)
    }

    fn create_partitions(&mut self, name: &str, count: i32, validate_only: bool) -> Result<(), AdminError> {
        let current = self.current();
        let Some(topic) = current.topic(name).cloned() else {
            return Err(AdminError::new(ErrorCode::UnknownTopicOrPartition, format!("topic {name:?} does not exist")));
        };
        let have = topic.leaders.len() as i32;
        if count > MAX_PARTITIONS {
            return Err(too_many_partitions(count));
        }
        if count <= have {
            return Err(AdminError::new(
                ErrorCode::InvalidPartitions,
                format!(
                    "topic currently has {have} partitions, which is higher than or equal to the requested {count}"
                ),
            ));
        }
        let nodes = current.placement_nodes();
        if nodes.is_empty() {
            return Err(AdminError::new(ErrorCode::InvalidReplicationFactor, "no live broker to place partitions on"));
        }
        let rf = topic.replication_factor().min(nodes.len());
        let replicas = placement::place_replicas(&nodes, &mut current.load(), (count - have) as usize, rf);
        check_placed(&current, (self.publisher.broker, 0), name, have as usize, &replicas)?;
        if validate_only {
            return Ok(());
        }
        let mut failures = self.commit(MetaRecord::PartitionsPlaced { name: name.to_string(), replicas })?;
        if let Some(e) = failures.remove(name) {
            // The partitions are committed; a restart retries opening them.
            error!(topic = name, "added partitions cannot be opened: {e}");
            return Err(AdminError::new(ErrorCode::KafkaStorageError, format!("cannot open new partition logs: {e}")));
        }
        info!(topic = name, from = have, to = count, "added partitions");
        Ok(())
    }

    fn alter_topic_configs(&mut self, name: &str, edit: &ConfigEdit, validate_only: bool) -> Result<(), AdminError> {
        let current = self.current();
        let Some(topic) = current.topic(name).cloned() else {
            return Err(AdminError::new(ErrorCode::UnknownTopicOrPartition, format!("topic {name:?} does not exist")));
        };
        let defaults = resolved(&self.publisher.settings, &current, -1);
        let configs = edit::apply(&topic.configs, edit, &TopicScope(&defaults)).map_err(invalid_config)?;
        if validate_only {
            return Ok(());
        }
        let configs: Vec<(String, String)> = configs.into_iter().collect();
        self.commit(MetaRecord::TopicConfigsSet { name: name.to_string(), configs })?;
        info!(topic = name, "altered topic configs");
        Ok(())
    }

    /// Changes the dynamic configs of the cluster default (`node` None) or
    /// one node, then gives every node its new settings.
    fn alter_broker_configs(
        &mut self,
        node: Option<i32>,
        edit: &ConfigEdit,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let current = self.current();
        let resource = node.map(|n| n.to_string()).unwrap_or_default();
        let layer = if node.is_some() { ConfigSource::DynamicBroker } else { ConfigSource::DynamicDefaultBroker };
        let below = resolved(&self.publisher.settings, &current, -1);
        let empty = BTreeMap::new();
        let now = current.broker_configs.get(&resource).unwrap_or(&empty);
        let configs = edit::apply(now, edit, &BrokerScope { below: &below, layer }).map_err(invalid_config)?;
        if validate_only {
            return Ok(());
        }
        let configs: Vec<(String, String)> = configs.into_iter().collect();
        self.commit(MetaRecord::BrokerConfigsSet { resource: resource.clone(), configs })?;
        info!(resource = %resource, "altered dynamic broker configs");
        Ok(())
    }
}

fn invalid_config(e: ConfigError) -> AdminError {
    AdminError::new(ErrorCode::InvalidConfig, e.to_string())
}

/// A topic's keys; what they inherit is the cluster's broker default.
struct TopicScope<'a>(&'a BrokerSettings);

impl Scope for TopicScope<'_> {
    fn kind(&self, key: &str) -> Result<Kind, ConfigError> {
        config::keys::topic_key(key).map(|k| k.kind).ok_or_else(|| ConfigError::UnknownKey(key.to_string()))
    }
    fn check(&self, key: &str, value: &str) -> Result<(), ConfigError> {
        config::validate_topic_config(key, value)
    }
    fn inherited(&self, key: &str) -> String {
        self.0.topic_text(&BTreeMap::new(), key).to_string()
    }
}

/// A broker resource's keys: only dynamic ones; they inherit from the
/// layers below `layer`.
struct BrokerScope<'a> {
    below: &'a BrokerSettings,
    layer: ConfigSource,
}

impl Scope for BrokerScope<'_> {
    fn kind(&self, key: &str) -> Result<Kind, ConfigError> {
        let k = config::keys::broker_key(key).ok_or_else(|| ConfigError::UnknownKey(key.to_string()))?;
        if k.update != config::Update::Dynamic {
            return Err(ConfigError::NotDynamic(key.to_string()));
        }
        Ok(k.kind)
    }
    fn check(&self, key: &str, value: &str) -> Result<(), ConfigError> {
        config::validate_dynamic_broker_config(key, value)
    }
    fn inherited(&self, key: &str) -> String {
        self.below.inherited(key, self.layer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(id: i32, shards: usize) -> BrokerReg {
        BrokerReg { id, nodes: Vec::new(), shards, host: format!("h{id}"), port: 9092, rack: None, fenced: false }
    }

    /// One broker (0) of `nodes` shards: nodes 0..nodes.
    fn meta_with(nodes: i32, records: &[MetaRecord]) -> ClusterMeta {
        let mut meta = ClusterMeta::default();
        meta.register_broker(broker(0, nodes as usize));
        replay(&mut meta, records);
        meta
    }

    /// Node ids are handed out once: each broker keeps its own across
    /// re-registrations, a broker with more shards gets its old ids back
    /// and new ones after every id given out, and none is ever shared.
    #[test]
    fn registration_gives_unique_stable_node_ids() {
        let mut meta = ClusterMeta::default();
        meta.register_broker(broker(1, 2));
        meta.register_broker(broker(2, 2));
        assert_eq!(meta.brokers[&1].live_nodes(), [0, 1]);
        assert_eq!(meta.brokers[&2].live_nodes(), [2, 3]);
        meta.register_broker(broker(1, 1));
        assert_eq!(meta.brokers[&1].live_nodes(), [0], "one shard now: node 1 is not live");
        assert!(meta.node(1).is_none() && meta.node(0).is_some());
        meta.register_broker(broker(1, 3));
        assert_eq!(meta.brokers[&1].live_nodes(), [0, 1, 4], "its old ids back, then a new one");
        let at = meta.node(3).unwrap();
        assert_eq!((at.broker.id, at.shard, at.port()), (2, 1, 9093));
        let ids: Vec<i32> = meta.live_nodes().iter().map(|(n, _)| *n).collect();
        assert_eq!(ids, [0, 1, 2, 3, 4]);
    }

    /// In a cluster, a broker restarted with fewer shards moves only the
    /// replicas of its own nodes that went away, and only to its own nodes
    /// (its data dir holds their data); other brokers' replicas stay, even
    /// a fenced broker's.
    #[test]
    fn a_broker_with_fewer_shards_moves_only_its_own_replicas() {
        let mut meta = ClusterMeta::default();
        meta.register_broker(broker(1, 2)); // nodes 0, 1
        meta.register_broker(broker(2, 2)); // nodes 2, 3
        let placed = MetaRecord::TopicPlaced {
            name: "t".into(),
            id: [4; 16],
            replicas: vec![vec![1, 2], vec![2, 1], vec![2, 3], vec![3, 0]],
            configs: vec![],
        };
        replay(&mut meta, &[placed]);
        meta.set_fenced(2, true);
        meta.register_broker(broker(1, 1)); // node 1 no longer live
        assert!(reassign_gone_nodes(&meta, 2).is_empty(), "broker 2 lost nothing");
        let moves = reassign_gone_nodes(&meta, 1);
        replay(&mut meta, &moves);
        let t = meta.topic("t").unwrap();
        assert_eq!(t.replicas, [vec![0, 2], vec![2, 0], vec![2, 3], vec![3, 0]]);
    }

    /// Replicas placed across three brokers land on three brokers; the
    /// same request on one broker of three shards uses its three shards.
    #[test]
    fn placement_prefers_distinct_brokers() {
        let mut meta = ClusterMeta::default();
        for id in 1..=3 {
            meta.register_broker(broker(id, 2));
        }
        let nodes = meta.placement_nodes();
        for r in placement::place_replicas(&nodes, &mut meta.load(), 12, 3) {
            let mut brokers: Vec<i32> = r.iter().map(|n| meta.node(*n).unwrap().broker.id).collect();
            brokers.sort_unstable();
            assert_eq!(brokers, [1, 2, 3], "{r:?}");
        }
        let single = meta_with(3, &[]);
        let placed = placement::place_replicas(&single.placement_nodes(), &mut single.load(), 1, 3);
        assert_eq!(placed, [[0, 1, 2]]);
    }

    #[test]
    fn records_from_before_replicas_replay_as_one_replica_each() {
        let meta = meta_with(
            2,
            &[
                MetaRecord::TopicCreated { name: "t".into(), id: [1; 16], leaders: vec![0, 1], configs: vec![] },
                MetaRecord::PartitionsAdded { name: "t".into(), leaders: vec![1] },
                MetaRecord::PartitionMoved { name: "t".into(), partition: 2, leader: 0 },
            ],
        );
        let t = meta.topic("t").unwrap();
        assert_eq!(t.replicas, [vec![0], vec![1], vec![0]]);
        assert_eq!(t.leaders, [0, 1, 0]);
        assert_eq!(t.replication_factor(), 1);
        assert_eq!(t.epochs, [0, 0, 1], "the moved partition has a new leader epoch");
    }

    #[test]
    fn a_change_of_leader_bumps_the_epoch_and_a_change_of_followers_does_not() {
        let placed =
            MetaRecord::TopicPlaced { name: "t".into(), id: [1; 16], replicas: vec![vec![0, 1]], configs: vec![] };
        let moved = |replicas: Vec<i32>| MetaRecord::PartitionReassigned { name: "t".into(), partition: 0, replicas };
        // 0 stays leader while assigned (a reorder moves no leadership);
        // unassigned, it gives way to the first replica, and so does 2.
        let meta = meta_with(3, &[placed, moved(vec![0, 2]), moved(vec![2, 0]), moved(vec![2, 1]), moved(vec![1, 0])]);
        assert_eq!(
            (meta.topic("t").unwrap().leaders.clone(), meta.topic("t").unwrap().epochs.clone()),
            (vec![1], vec![2])
        );
    }

    #[test]
    fn replicas_on_gone_nodes_move_and_keep_the_factor() {
        let placed = MetaRecord::TopicPlaced {
            name: "t".into(),
            id: [2; 16],
            replicas: vec![vec![2, 0], vec![1, 3], vec![0, 1], vec![3, 2]],
            configs: vec![],
        };
        let mut meta = meta_with(2, &[placed]);
        let moves = reassign_gone_nodes(&meta, 0);
        assert_eq!(moves.len(), 3, "{moves:?}");
        replay(&mut meta, &moves);
        let t = meta.topic("t").unwrap();
        assert_eq!(t.replicas[1], [1, 0], "a valid leader stays; the gone follower is replaced");
        assert_eq!(t.replicas[2], [0, 1], "untouched");
        for r in &t.replicas {
            let mut s = r.clone();
            s.sort();
            assert_eq!(s, [0, 1], "two distinct existing nodes: {r:?}");
        }
        assert!(reassign_gone_nodes(&meta, 0).is_empty());
        // Fewer nodes than replicas: the factor shrinks to what exists.
        let mut one = meta_with(1, &[]);
        one.put_topic(TopicMeta::new("u".into(), Uuid::nil(), vec![vec![1, 0]], BTreeMap::new()));
        let moves = reassign_gone_nodes(&one, 0);
        replay(&mut one, &moves);
        assert_eq!(one.topic("u").unwrap().replicas, [vec![0]]);
    }
}
