//! What a shard's request handlers can reach: the metadata snapshot, the
//! controller, settings, and the partition logs this shard owns. Everything
//! here belongs to one shard's thread; nothing is shared with another core
//! except the read-only snapshot and the controller's command queue.

use crate::storage::hw_checkpoint::HwEntry;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use uuid::Uuid;

use crate::broker::notify::Notify;
use crate::config::SharedSettings;
use crate::group::Coordinator;
use crate::metadata::TopicMeta;
use crate::metadata::controller::{ControllerHandle, Snapshot};
use crate::protocol::ErrorCode;
use crate::replication::{Replication, fetcher, throttle};
use crate::storage::cache_budget::CacheBudget;
use crate::storage::{Limits, PartitionLog, StorageError, partition_dir};

/// How the broker is reached, for Metadata and DescribeCluster.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// Host advertised to clients.
    pub advertised_host: String,
    /// Address the listeners bind.
    pub bind_host: std::net::IpAddr,
}

/// How often a command waiting for a copy being started afresh looks again.
const AFRESH_POLL: std::time::Duration = std::time::Duration::from_millis(10);

/// One topic's owned partition logs, with the topic id they belong to.
type TopicLogs = (Uuid, Vec<Option<Rc<PartitionLog>>>);

/// What a shard starts with (all of it `Send`, to cross into its thread).
pub struct ShardSetup {
    /// This shard's node id.
    pub node_id: i32,
    /// Cluster metadata.
    pub snapshot: Snapshot,
    /// The metadata quorum as this broker sees it (DescribeQuorum).
    pub quorum: crate::metadata::raft::view::SharedView,
    /// The controller.
    pub controller: ControllerHandle,
    /// This node's broker settings (static under dynamic), replaced by the
    /// controller when dynamic configs change: load them where they are used.
    pub settings: SharedSettings,
    /// Advertised addresses.
    pub endpoints: Arc<Endpoints>,
    /// Root of the data directory.
    pub data_dir: PathBuf,
    /// The previous run shut down cleanly.
    pub clean_start: bool,
    /// Bytes of recent batches this shard may cache.
    pub cache_bytes: usize,
    /// The high watermarks the previous run checkpointed, by (topic,
    /// partition): where a replicated partition's starts.
    pub checkpointed: Arc<HashMap<(String, i32), i64>>,
}

/// A shard's state, shared by its connections (same thread only).
pub struct ShardCtx {
    /// What the shard was started with.
    pub setup: ShardSetup,
    /// Signalled whenever a partition's high watermark moves.
    pub notify: Rc<Notify>,
    /// Signalled when a partition's retention may have work: a segment
    /// rolled, or `retention.bytes` no longer keeps its oldest segment.
    pub retention_due: Rc<Notify>,
    /// Bound on this shard's cached batches.
    pub cache_budget: Rc<CacheBudget>,
    /// Coordinator of the groups whose `__consumer_offsets` partition this
    /// shard owns.
    pub groups: Coordinator,
    /// The shard's listening socket, closed first on a clean shutdown.
    pub listener_fd: std::cell::Cell<Option<std::os::fd::RawFd>>,
    /// Bytes of large request bodies the shard's connections may hold at
    /// once (`queued.max.request.bytes`), over all of them.
    pub request_budget: Rc<glommio::sync::Semaphore>,
    /// Followers' progress where this shard leads, fetchers where it follows.
    pub replication: Replication,
    /// Owned partition logs: topic name -> (topic id, partition index -> log).
    /// The id tells a re-created topic from the deleted one of the same name.
    partitions: RefCell<HashMap<String, TopicLogs>>,
    /// Copies being started afresh (`start_copy_afresh`): closed, their
    /// directory being replaced. Opening one waits until that is done.
    starting_afresh: RefCell<HashSet<(Uuid, i32)>>,
}

impl ShardCtx {
    /// A shard context with no partitions open yet.
    pub fn new(setup: ShardSetup) -> Self {
        let cache_budget = Rc::new(CacheBudget::new(setup.cache_bytes));
        let request_budget =
            Rc::new(glommio::sync::Semaphore::new(setup.settings.load().queued_max_request_bytes() as u64));
        Self {
            request_budget,
            setup,
            notify: Rc::new(Notify::default()),
            retention_due: Rc::new(Notify::default()),
            cache_budget,
            groups: Coordinator::default(),
            listener_fd: std::cell::Cell::new(None),
            replication: Replication::default(),
            partitions: RefCell::new(HashMap::new()),
            starting_afresh: RefCell::new(HashSet::new()),
        }
    }

    /// The log of an owned partition of `topic` (name and id must match).
    pub fn partition(&self, topic: &TopicMeta, partition: i32) -> Option<Rc<PartitionLog>> {
        let parts = self.partitions.borrow();
        let (id, slots) = parts.get(&topic.name)?;
        if *id != topic.id {
            return None;
        }
        slots.get(usize::try_from(partition).ok()?)?.clone()
    }

    /// The log of partition `index` of `topic` when this shard leads it,
    /// else the Kafka error a client gets for it: a partition the topic
    /// does not have is `UNKNOWN_TOPIC_OR_PARTITION`, one another node leads
    /// (or not open here) `NOT_LEADER_OR_FOLLOWER`. Produce, fetch,
    /// ListOffsets and DeleteRecords all find their log here.
    pub fn owned_log(&self, topic: &TopicMeta, index: i32) -> Result<Rc<PartitionLog>, ErrorCode> {
        match usize::try_from(index).ok().and_then(|i| topic.leaders.get(i)) {
            None => Err(ErrorCode::UnknownTopicOrPartition),
            Some(&leader) if leader != self.setup.node_id => Err(ErrorCode::NotLeaderOrFollower),
            Some(_) => self.partition(topic, index).ok_or(ErrorCode::NotLeaderOrFollower),
        }
    }

    /// The settings a partition log of `topic` works under: its config
    /// overrides, else the broker's defaults.
    fn limits(&self, topic: &TopicMeta) -> Limits {
        let s = self.setup.settings.load();
        let t = s.topic(&topic.overrides);
        Limits {
            segment_bytes: t.segment_bytes.max(4096) as u64,
            index_interval: t.index_interval_bytes.max(1) as u64,
            segment_ms: t.segment_ms.max(1),
            preallocate: t.preallocate,
            flush_messages: t.flush_messages.max(1),
            flush_ms: t.flush_ms.max(0),
            recycle: s.typed().segment_recycle,
            retention_bytes: if t.cleanup.delete { t.retention_bytes } else { -1 },
        }
    }

    /// Gives this shard's logs of `topic` its altered configs.
    pub fn reconfigure(&self, topic: &TopicMeta) {
        let limits = self.limits(topic);
        let parts = self.partitions.borrow();
        if let Some((id, slots)) = parts.get(&topic.name)
            && *id == topic.id
        {
            for log in slots.iter().flatten() {
                log.set_limits(limits);
            }
        }
    }

    /// Opens (recovering, or creating) partition `partition` of `topic`,
    /// held here as its leader or a follower in directory `dir` of the data
    /// dir, unless it is open already, and gives it its role as the
    /// metadata has it now.
    pub async fn open_partition(self: &Rc<Self>, topic: &TopicMeta, partition: i32, dir: &str) -> std::io::Result<()> {
        self.while_afresh(topic.id, partition).await;
        let (log, opened) = match self.partition(topic, partition) {
            Some(log) => (log, false),
            None => (self.open_log(topic, partition, dir).await?, true),
        };
        let p = partition as usize;
        let replicated = topic.replicas[p].len() > 1;
        if replicated && !log.is_replicated() {
            // Just opened: from the checkpoint, not the durable end (records
            // past it may be on no other replica, and consumers must not
            // read them until they are). Open already (a partition of one
            // replica gaining more): from where consumers read now.
            let key = (topic.name.clone(), partition);
            let checkpointed = self.setup.checkpointed.get(&key).copied().unwrap_or(0);
            log.hold_high_watermark(if opened { checkpointed } else { log.high_watermark() });
        }
        let leader = topic.leaders[p];
        if leader == self.setup.node_id {
            self.lead(topic, partition, &log).await?;
            // Also a log that was replicated and is no more (moved down to
            // one replica): its ISR of one lets the high watermark follow.
            if log.is_replicated() {
                self.replication.lead(topic, p, &log);
            }
        } else {
            self.replication.stop_leading((topic.id, partition));
            log.become_follower();
            if topic.name == crate::group::OFFSETS_TOPIC {
                self.groups.unload(partition, topic.leaders.len());
            }
            fetcher::follow(self, leader);
        }
        Ok(())
    }

    /// Opens partition `partition` of `topic`'s log in directory `dir` and
    /// keeps it.
    async fn open_log(&self, topic: &TopicMeta, partition: i32, dir: &str) -> std::io::Result<Rc<PartitionLog>> {
        if self.partitions.borrow().get(&topic.name).is_some_and(|(id, _)| *id != topic.id) {
            // Dropped before a name is reused; a command out of order must
            // not put two topics' logs under one name.
            return Err(std::io::Error::other(format!("{} still holds a deleted topic's logs", topic.name)));
        }
        let dir = self.setup.data_dir.join(dir);
        let log = PartitionLog::open(
            dir,
            topic.id,
            self.limits(topic),
            self.notify.clone(),
            self.retention_due.clone(),
            self.cache_budget.clone(),
            self.setup.clean_start,
        )
        .await?;
        let mut parts = self.partitions.borrow_mut();
        let (id, slots) = parts.entry(topic.name.clone()).or_insert_with(|| (topic.id, Vec::new()));
        assert_eq!(*id, topic.id, "checked before the open, on this thread");
        let i = partition as usize;
        if slots.len() <= i {
            slots.resize(i + 1, None);
        }
        slots[i] = Some(log.clone());
        Ok(log)
    }

    /// Stamps `log`'s appends with the epoch the metadata gives this
    /// leader. A log that already holds a later epoch (metadata restored
    /// from a snapshot written before epochs were recorded) keeps its own:
    /// serving it beats refusing it, and its epochs only rise.
    async fn lead(&self, topic: &TopicMeta, partition: i32, log: &PartitionLog) -> std::io::Result<()> {
        let epoch = topic.epochs[partition as usize];
        match log.become_leader(epoch).await {
            Ok(()) => Ok(()),
            Err(StorageError::StaleEpoch { epoch, latest }) => {
                tracing::warn!(topic = %topic.name, partition, epoch, latest, "the log holds a later leader epoch than the metadata; it keeps its own");
                Ok(())
            }
            Err(e) => Err(std::io::Error::other(format!("leader epoch {epoch}: {e}"))),
        }
    }

    /// Every open partition log of this shard.
    pub fn all_logs(&self) -> Vec<Rc<PartitionLog>> {
        self.partitions.borrow().values().flat_map(|(_, slots)| slots.iter().flatten().cloned()).collect()
    }

    /// Every owned partition's high watermark.
    pub fn high_watermarks(&self) -> Vec<HwEntry> {
        let parts = self.partitions.borrow();
        let mut out = Vec::new();
        for (topic, (_, slots)) in parts.iter() {
            for (partition, log) in slots.iter().enumerate() {
                if let Some(log) = log {
                    let (topic, partition) = (topic.clone(), partition as i32);
                    out.push(HwEntry { topic, partition, high_watermark: log.high_watermark() });
                }
            }
        }
        out
    }

    /// This shard's replication throttle rates (leader, follower), in
    /// bytes/s (`replication::throttle`): a rate set for this node (as
    /// `kafka-reassign-partitions.sh --throttle` sets it, node by node) is
    /// its own; one set for the whole cluster (or in the file) is a
    /// broker's, split evenly between its shards.
    pub fn throttle_rates(&self) -> (i64, i64) {
        let (leader, follower) = self.setup.settings.load().replication_throttled_rates();
        let meta = self.setup.snapshot.load();
        let shards = meta.node(self.setup.node_id).map_or(1, |at| at.broker.live_nodes().len());
        let own = meta.broker_configs.get(&self.setup.node_id.to_string());
        let rate = |key: &str, rate| match own.is_some_and(|c| c.contains_key(key)) {
            true => rate,
            false => crate::replication::throttle::share(rate, shards),
        };
        (rate(throttle::LEADER_RATE, leader), rate(throttle::FOLLOWER_RATE, follower))
    }

    /// Puts back a log taken out with `take_log`.
    fn put_log(&self, topic: &TopicMeta, partition: i32, log: Rc<PartitionLog>) {
        let mut parts = self.partitions.borrow_mut();
        let (_, slots) = parts.entry(topic.name.clone()).or_insert_with(|| (topic.id, Vec::new()));
        let i = partition as usize;
        if slots.len() <= i {
            slots.resize(i + 1, None);
        }
        slots[i] = Some(log);
    }

    /// Waits while partition `partition` of topic `id` is being started
    /// afresh.
    async fn while_afresh(&self, id: Uuid, partition: i32) {
        while self.starting_afresh.borrow().contains(&(id, partition)) {
            glommio::timer::sleep(AFRESH_POLL).await;
        }
    }

    /// Takes the log of partition `partition` of `topic` out of this shard.
    fn take_log(&self, topic: &TopicMeta, partition: i32) -> Option<Rc<PartitionLog>> {
        let mut parts = self.partitions.borrow_mut();
        let slot = parts
            .get_mut(&topic.name)
            .filter(|(id, _)| *id == topic.id)
            .and_then(|(_, slots)| slots.get_mut(usize::try_from(partition).ok()?));
        slot.and_then(Option::take)
    }

    /// Closes partition `partition` of `topic`, which this broker no longer
    /// holds, and forgets it (waiting for writes in flight).
    pub async fn close_partition(&self, topic: &TopicMeta, partition: i32) {
        self.while_afresh(topic.id, partition).await;
        let log = self.take_log(topic, partition);
        self.replication.stop_leading((topic.id, partition));
        if topic.name == crate::group::OFFSETS_TOPIC {
            self.groups.unload(partition, topic.leaders.len());
        }
        if let Some(log) = log {
            log.become_follower();
            log.close().await;
        }
    }

    /// Replaces this shard's copy of partition `partition` of `topic`, a
    /// follower whose whole log lies below its leader's log start `start`
    /// (retention or DeleteRecords moved it on), or that holds nothing,
    /// with an empty log that begins at `start` (Kafka's
    /// truncateFullyAndStartAt), a follower again. Nothing in it was
    /// needed: a copy that far behind is in no ISR. Opens, closes and drops
    /// of the partition wait until it is done.
    pub async fn start_copy_afresh(
        self: &Rc<Self>,
        topic: &TopicMeta,
        partition: i32,
        start: i64,
    ) -> std::io::Result<()> {
        let key = (topic.id, partition);
        if !self.starting_afresh.borrow_mut().insert(key) {
            return Ok(());
        }
        // Reopened inside the guard, so that an `Open`, `ClosePartition` or
        // `DropTopic` waiting for it finds the new log (to give it its role
        // or close it) rather than racing with the reset.
        let reopened = async {
            let Some(log) = self.take_log(topic, partition) else { return Ok(()) };
            let dir = log.dir().to_path_buf();
            let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let (end, empty) = (log.log_end(), log.log_end() == log.log_start_offset());
            if end < start || empty {
                log.close().await;
                tracing::info!(dir = %dir.display(), start, "the leader's log starts past this copy's end: starting afresh there");
                let (d, id) = (dir.clone(), topic.id);
                if let Err(e) = glommio::executor().spawn_blocking(move || partition_dir::reset_at(&d, id, start)).await {
                    // Reopened as it is: still behind, it is reset again.
                    tracing::warn!(dir = %dir.display(), "cannot reset the copy: {e}");
                }
                // Its role as it was: a follower (an `Open` waiting for
                // the guard gives it a newer one).
                let log = self.open_log(topic, partition, &name).await?;
                log.hold_high_watermark(start);
                log.become_follower();
            } else {
                self.put_log(topic, partition, log);
            }
            Ok::<_, std::io::Error>(())
        }
        .await;
        self.starting_afresh.borrow_mut().remove(&key);
        reopened
    }

    /// Closes every partition of a deleted topic, waiting for writes in flight.
    pub async fn drop_topic(&self, topic: &str) {
        let id = self.partitions.borrow().get(topic).map(|(id, _)| *id);
        while id.is_some_and(|id| self.starting_afresh.borrow().iter().any(|(t, _)| *t == id)) {
            glommio::timer::sleep(AFRESH_POLL).await;
        }
        let removed = self.partitions.borrow_mut().remove(topic);
        if let Some((id, slots)) = &removed {
            (0..slots.len()).for_each(|p| self.replication.stop_leading((*id, p as i32)));
        }
        if let Some((_, slots)) = removed {
            for log in slots.into_iter().flatten() {
                log.close().await;
            }
        }
    }
}
