//! Publishing committed metadata to this broker's shards. Whoever committed
//! a change (this broker's controller or another's), the publisher brings
//! the shards' partition logs in line with it and then swaps the snapshot
//! every shard reads: it compares the metadata last published with the
//! state machine's, drops the logs of deleted topics, opens the partitions
//! this broker now holds (as leader or follower) and tells their shards of
//! a change of leader, epoch, replicas or ISR, and gives altered configs to
//! the logs that use them. It runs on the controller's thread, never on a shard's reactor.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tracing::warn;

use super::controller::{OpenPartition, ShardCommand, ShardError, Snapshot};
use super::model::{ClusterMeta, TopicMeta, replica_dir_name};
use crate::config::{BrokerSettings, SharedSettings};

/// What publishing could not do: topics whose new partitions would not
/// open here (the metadata is published all the same).
pub type OpenFailures = BTreeMap<String, ShardError>;

/// This broker's side of the metadata: its shards and what they were last
/// given.
pub struct Publisher {
    /// The metadata every shard reads.
    pub snapshot: Snapshot,
    /// The static settings (file and command line).
    pub settings: BrokerSettings,
    /// Each local node's resolved settings.
    pub node_settings: Vec<SharedSettings>,
    /// Each local shard's command channel, by shard index.
    pub shards: Vec<flume::Sender<ShardCommand>>,
    /// The data directory, where a deleted topic's partition directories go.
    pub data_dir: PathBuf,
    /// This broker's id.
    pub broker: i32,
}

impl Publisher {
    /// A publisher of `meta` for broker `broker` (registered in it), whose
    /// shards are not running yet.
    pub fn new(meta: ClusterMeta, settings: BrokerSettings, broker: i32, data_dir: PathBuf) -> Self {
        let node_settings = meta
            .brokers
            .get(&broker)
            .map_or(&[][..], |b| b.live_nodes())
            .iter()
            .map(|&n| Arc::new(ArcSwap::from_pointee(resolved(&settings, &meta, n))))
            .collect();
        let snapshot = Arc::new(ArcSwap::from_pointee(meta));
        Self { snapshot, settings, node_settings, shards: Vec::new(), data_dir, broker }
    }

    /// This broker's shard that is node `node` in `meta`, if any.
    fn local_shard(&self, meta: &ClusterMeta, node: i32) -> Option<usize> {
        meta.node(node).filter(|at| at.broker.id == self.broker).map(|at| at.shard).filter(|&s| s < self.shards.len())
    }

    /// Each local shard's node id in `meta`.
    fn local_nodes<'m>(&self, meta: &'m ClusterMeta) -> &'m [i32] {
        meta.brokers.get(&self.broker).map_or(&[], |b| b.live_nodes())
    }

    /// Brings the shards to `next` and publishes it; a no-op when `next` is
    /// what they have. Returns the topics whose partitions did not open.
    pub fn publish(&self, next: ClusterMeta) -> OpenFailures {
        let prev = self.snapshot.load_full();
        if next.log_end == prev.log_end {
            return OpenFailures::new();
        }
        assert!(next.log_end > prev.log_end, "published metadata never goes back");
        // Drops first: a name deleted and created again between two
        // publications must lose its old logs before the new ones open.
        for t in prev.topics.values() {
            if next.topic(&t.name).is_none_or(|n| n.id != t.id) {
                self.drop_on_shards(&prev, t);
            }
        }
        for t in next.topics.values() {
            if let Some(before) = prev.topic(&t.name).filter(|p| p.id == t.id) {
                self.close_moved_away(&prev, before, t);
            }
        }
        let mut failures = OpenFailures::new();
        for t in next.topics.values() {
            let before = prev.topic(&t.name).filter(|p| p.id == t.id);
            let changed: Vec<(usize, i32)> = (0..t.replicas.len())
                .flat_map(|p| next.replicas_on(t, p, self.broker).into_iter().map(move |node| (p, node)))
                .filter(|&(p, node)| {
                    let same = before.is_some_and(|b| {
                        b.replicas.get(p).is_some_and(|r| r.contains(&node)) && same_partition(b, t, p)
                    });
                    self.local_shard(&next, node).is_some() && !same
                })
                .collect();
            if let Err(e) = self.open_on_shards(&next, t, changed) {
                warn!(topic = %t.name, "cannot open partitions: {e}");
                failures.insert(t.name.clone(), e);
            }
        }
        let reconfigured: Vec<Arc<TopicMeta>> = next
            .topics
            .values()
            .filter(|t| prev.topic(&t.name).is_some_and(|p| p.id == t.id && p.configs != t.configs))
            .cloned()
            .collect();
        let brokers_altered = next.broker_configs != prev.broker_configs;
        if brokers_altered {
            for (shared, &n) in self.node_settings.iter().zip(self.local_nodes(&next)) {
                shared.store(Arc::new(resolved(&self.settings, &next, n)));
            }
        }
        self.snapshot.store(Arc::new(next));
        for topic in reconfigured {
            self.on_every_shard(|done| ShardCommand::Reconfigure { topic: topic.clone(), done });
        }
        if brokers_altered {
            self.on_every_shard(|done| ShardCommand::ReconfigureAll { done });
        }
        failures
    }

    /// Tells each shard holding a copy to open (or give its new role to)
    /// the partitions of `topic` in `partitions` (index, node of the copy),
    /// and waits.
    fn open_on_shards(
        &self,
        meta: &ClusterMeta,
        topic: &Arc<TopicMeta>,
        partitions: Vec<(usize, i32)>,
    ) -> Result<(), ShardError> {
        let mut per_shard: Vec<Vec<OpenPartition>> = vec![Vec::new(); self.shards.len()];
        for (p, node) in partitions {
            let shard = self.local_shard(meta, node).expect("only local copies are opened");
            let dir = meta.replica_dir(topic, p, node);
            per_shard[shard].push(OpenPartition { topic: topic.clone(), partition: p as i32, dir });
        }
        let mut waits = Vec::new();
        for (shard, partitions) in per_shard.into_iter().enumerate() {
            if partitions.is_empty() {
                continue;
            }
            let (done, rx) = flume::bounded(1);
            self.shards[shard].send(ShardCommand::Open { partitions, done }).map_err(|_| ShardError::Gone(shard))?;
            waits.push((shard, rx));
        }
        let mut result = Ok(());
        for (shard, w) in waits {
            let r = w.recv().unwrap_or(Err(ShardError::Gone(shard)));
            if result.is_ok() {
                result = r;
            }
        }
        result
    }

    /// Closes the copies of `t`'s partitions this broker held in `prev` and
    /// holds no more in `next` (a reassignment moved them away), and
    /// removes their directories.
    fn close_moved_away(&self, prev: &ClusterMeta, before: &Arc<TopicMeta>, t: &Arc<TopicMeta>) {
        for p in 0..t.replicas.len().min(before.replicas.len()) {
            for node in prev.replicas_on(before, p, self.broker) {
                if t.replicas[p].contains(&node) {
                    continue;
                }
                let Some(shard) = self.local_shard(prev, node) else { continue };
                let (done, rx) = flume::bounded(1);
                let cmd = ShardCommand::ClosePartition { topic: before.clone(), partition: p as i32, done };
                if self.shards[shard].send(cmd).is_ok() {
                    let _ = rx.recv();
                }
                let dir = self.data_dir.join(prev.replica_dir(before, p, node));
                tracing::info!(dir = %dir.display(), "replica moved away: removing its directory");
                remove_dir(&dir);
            }
        }
    }

    /// Sends every running shard the command `make` builds around a reply
    /// channel, and waits until each has answered (or stopped).
    fn on_every_shard(&self, make: impl Fn(flume::Sender<()>) -> ShardCommand) {
        let mut waits = Vec::new();
        for shard in &self.shards {
            let (done, rx) = flume::bounded(1);
            if shard.send(make(done)).is_ok() {
                waits.push(rx);
            }
        }
        for w in waits {
            let _ = w.recv();
        }
    }

    /// Has every shard close its logs of the deleted topic `t`, then
    /// removes the directories of its copies here.
    fn drop_on_shards(&self, prev: &ClusterMeta, t: &TopicMeta) {
        self.on_every_shard(|done| ShardCommand::DropTopic { name: t.name.clone(), done });
        for p in 0..t.replicas.len() {
            // `topic-p` too when no copy is listed here: a broker restarted
            // with fewer shards may have left one.
            let mut dirs = vec![replica_dir_name(&t.name, p, None)];
            dirs.extend(prev.replicas_on(t, p, self.broker).into_iter().map(|n| prev.replica_dir(t, p, n)));
            dirs.dedup();
            dirs.iter().for_each(|d| remove_dir(&self.data_dir.join(d)));
        }
    }
}

/// Removes a partition directory that is no longer held; one already gone
/// is no failure.
fn remove_dir(dir: &std::path::Path) {
    if let Err(e) = std::fs::remove_dir_all(dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        warn!(dir = %dir.display(), "could not remove a partition directory: {e}");
    }
}

/// Whether partition `p` has the same leader, epoch, replicas and ISR in
/// `a` and `b`: what the role of each of its copies depends on.
fn same_partition(a: &TopicMeta, b: &TopicMeta, p: usize) -> bool {
    a.leaders.get(p) == b.leaders.get(p)
        && a.epochs.get(p) == b.epochs.get(p)
        && a.replicas.get(p) == b.replicas.get(p)
        && a.isr.get(p) == b.isr.get(p)
}

/// Node `node`'s settings: the static ones under the cluster-default and
/// the node's dynamic configs of `meta` (node -1: the cluster default only).
pub fn resolved(settings: &BrokerSettings, meta: &ClusterMeta, node: i32) -> BrokerSettings {
    let empty = BTreeMap::new();
    let cluster = meta.broker_configs.get("").unwrap_or(&empty);
    let own = if node >= 0 { meta.broker_configs.get(&node.to_string()).unwrap_or(&empty) } else { &empty };
    settings.with_dynamic(cluster, own)
}
