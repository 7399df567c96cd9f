//! The cluster metadata snapshot that request handlers read without locks.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use uuid::Uuid;

use crate::config::typed::TopicOverrides;

/// One topic: its partitions' placement and its configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMeta {
    /// Topic name.
    pub name: String,
    /// Topic id (KIP-516), stable for the topic's life.
    pub id: Uuid,
    /// `leaders[p]` is the node (= shard) that leads partition `p`: the first
    /// of `replicas[p]`.
    pub leaders: Vec<i32>,
    /// `replicas[p]`: the distinct nodes that hold partition `p`, its leader
    /// first (Kafka's replica assignment). Followers on other brokers copy
    /// the leader's log; one on the leader's own broker is listed only
    /// (see `docs/notes/replication.md`).
    pub replicas: Vec<Vec<i32>>,
    /// `isr[p]`: the replicas of partition `p` in sync with its leader
    /// (the leader among them), as the leader last had the quorum commit
    /// it (Kafka's AlterPartition). All of them when placed.
    pub isr: Vec<Vec<i32>>,
    /// `epochs[p]`: partition `p`'s leader epoch, 0 when placed and one
    /// more at every change of leader (as Kafka's PartitionChangeRecord
    /// bumps it). The leader stamps its appends with it, and clients fence
    /// stale leaders and validate positions by it.
    pub epochs: Vec<i32>,
    /// Partitions being moved (AlterPartitionReassignments): partition ->
    /// its reassignment. Their `replicas` are the target and the original
    /// together until the target is in sync (see `reassignment.rs`).
    pub reassigning: BTreeMap<usize, crate::metadata::reassignment::Reassignment>,
    /// Topic-level config overrides (Kafka key names).
    pub configs: BTreeMap<String, String>,
    /// The same, parsed (see [`TopicMeta::set_configs`]).
    pub overrides: TopicOverrides,
}

impl TopicMeta {
    /// A topic with these replica assignments and configs (validated,
    /// parsed once here).
    pub fn new(name: String, id: Uuid, replicas: Vec<Vec<i32>>, configs: BTreeMap<String, String>) -> Self {
        let overrides = TopicOverrides::parse(&configs);
        let mut t = Self {
            name,
            id,
            leaders: Vec::new(),
            replicas: Vec::new(),
            isr: Vec::new(),
            epochs: Vec::new(),
            reassigning: BTreeMap::new(),
            configs,
            overrides,
        };
        t.add_partitions(replicas);
        t
    }

    /// Appends partitions with these replica assignments.
    pub fn add_partitions(&mut self, replicas: Vec<Vec<i32>>) {
        for r in replicas {
            check_replicas(&r);
            self.leaders.push(r[0]);
            self.isr.push(r.clone());
            self.replicas.push(r);
            self.epochs.push(0);
        }
    }

    /// Sets the partitions' leader epochs (a snapshot's, restored): those
    /// of partitions the topic has.
    pub fn set_epochs(&mut self, epochs: &[i32]) {
        for (mine, e) in self.epochs.iter_mut().zip(epochs) {
            assert!(*e >= 0, "a leader epoch is never negative");
            *mine = *e;
        }
    }

    /// Gives partition `p` a new replica assignment (nodes that no longer
    /// exist replaced by their broker's others). The leader stays if it is
    /// still assigned; a leader that is not gives way to the first replica,
    /// at a new leader epoch, and that replica takes its place in the ISR
    /// if it had one (it is a node of the same broker, with the same data
    /// directory). A replica added otherwise joins the ISR only by
    /// catching up.
    pub fn reassign(&mut self, p: usize, replicas: Vec<i32>) {
        check_replicas(&replicas);
        let (Some(l), Some(r), Some(e), Some(isr)) =
            (self.leaders.get_mut(p), self.replicas.get_mut(p), self.epochs.get_mut(p), self.isr.get_mut(p))
        else {
            return;
        };
        let old = *l;
        let next = if replicas.contains(&old) { old } else { replicas[0] };
        let inherits = next != old && isr.contains(&old);
        isr.retain(|n| replicas.contains(n));
        if (inherits || isr.is_empty()) && !isr.contains(&next) {
            isr.insert(0, next);
        }
        if next != old {
            *e += 1;
        }
        *l = next;
        *r = replicas;
    }

    /// Sets partition `p`'s ISR if `leader_epoch` is still its epoch and
    /// the ISR is a set of its replicas holding its leader (an
    /// AlterPartition from a leader that lost its place changes nothing).
    /// Returns whether it was set.
    pub fn set_isr(&mut self, p: usize, leader_epoch: i32, isr: &[i32]) -> bool {
        let (Some(&epoch), Some(&leader), Some(replicas)) =
            (self.epochs.get(p), self.leaders.get(p), self.replicas.get(p))
        else {
            return false;
        };
        let valid = isr.contains(&leader) && isr.iter().all(|n| replicas.contains(n));
        if epoch != leader_epoch || !valid {
            return false;
        }
        // In replica order, each once.
        self.isr[p] = replicas.iter().copied().filter(|n| isr.contains(n)).collect();
        true
    }

    /// Makes `leader` partition `p`'s leader at the next leader epoch, with
    /// `isr` (an election; the replica assignment keeps its order, so its
    /// first replica stays the preferred leader).
    /// Callers choose among the replicas; one that did not changes nothing
    /// (this runs as metadata is applied, where a panic would stop every
    /// node replaying the log) and says so in debug builds.
    pub fn elect(&mut self, p: usize, leader: i32, isr: Vec<i32>) -> bool {
        let valid = self.replicas[p].contains(&leader) && isr.contains(&leader);
        debug_assert!(valid, "a leader among the replicas, in sync: {leader} {isr:?} {:?}", self.replicas[p]);
        if !valid {
            return false;
        }
        self.leaders[p] = leader;
        self.epochs[p] += 1;
        self.isr[p] = self.replicas[p].iter().copied().filter(|n| isr.contains(n)).collect();
        true
    }

    /// Sets every partition's ISR (a snapshot's, restored): those of
    /// partitions the topic has, as given.
    pub fn set_isrs(&mut self, isrs: &[Vec<i32>]) {
        for (mine, isr) in self.isr.iter_mut().zip(isrs) {
            assert!(!isr.is_empty(), "an ISR holds at least its leader");
            mine.clone_from(isr);
        }
    }

    /// Replicas per partition (the first partition's; they are all alike
    /// unless a client assigned them by hand).
    pub fn replication_factor(&self) -> usize {
        self.replicas.first().map_or(1, Vec::len)
    }

    /// Replaces the topic's configs, and their parsed form with them.
    pub fn set_configs(&mut self, configs: BTreeMap<String, String>) {
        self.overrides = TopicOverrides::parse(&configs);
        self.configs = configs;
    }
}

/// A replica assignment is non-empty and names each node once.
fn check_replicas(r: &[i32]) {
    assert!(!r.is_empty(), "a partition has at least one replica");
    let mut sorted = r.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), r.len(), "a partition's replicas are distinct nodes: {r:?}");
}

/// A registered broker: a process whose shards are nodes. Node ids are
/// handed out by the metadata log when a broker registers, never reused, so
/// they are unique across the cluster and stable across restarts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BrokerReg {
    /// The broker's id (`node.id`; 0 for the embedded single broker).
    pub id: i32,
    /// Node ids given to its shards: shard k is `nodes[k]`. The list never
    /// shrinks, so a broker restarted with more shards again gets back the
    /// ids it had.
    pub nodes: Vec<i32>,
    /// Shards it runs now: `nodes[..shards]` are live nodes.
    pub shards: usize,
    /// The host clients reach it at.
    pub host: String,
    /// Shard 0's port; shard k listens on `port + k`.
    pub port: u16,
    /// `broker.rack`, if set.
    pub rack: Option<String>,
    /// Fenced: it stopped (a controlled shutdown) or missed
    /// `broker.session.timeout.ms` of heartbeats. Its nodes are not listed
    /// to clients or given partitions; partitions it leads have no live
    /// leader until it is back.
    #[serde(default)]
    pub fenced: bool,
}

impl BrokerReg {
    /// The node ids of its running shards.
    pub fn live_nodes(&self) -> &[i32] {
        &self.nodes[..self.shards.min(self.nodes.len())]
    }
}

/// Where a node is: its broker and the broker's shard index.
#[derive(Debug, Clone, Copy)]
pub struct NodeAt<'a> {
    pub broker: &'a BrokerReg,
    pub shard: usize,
}

impl NodeAt<'_> {
    /// The node's client port.
    pub fn port(&self) -> i32 {
        i32::from(self.broker.port) + self.shard as i32
    }
}

/// An immutable view of all metadata, published as a whole on every change.
#[derive(Debug, Clone, Default)]
pub struct ClusterMeta {
    /// Cluster id, persisted in `meta.properties`.
    pub cluster_id: String,
    /// Registered brokers by id.
    pub brokers: BTreeMap<i32, BrokerReg>,
    /// The next node id a registering broker's new shard gets.
    pub next_node_id: i32,
    /// Node ids of unregistered brokers, given back if they register again
    /// (a node id is never given to another broker).
    pub retired: BTreeMap<i32, Vec<i32>>,
    /// Topics by name.
    pub topics: BTreeMap<String, Arc<TopicMeta>>,
    /// Topic names by id.
    pub ids: HashMap<Uuid, String>,
    /// The next producer id InitProducerId may hand out.
    pub next_producer_id: i64,
    /// Records in the metadata log (its end offset): DescribeQuorum's high
    /// watermark.
    pub log_end: i64,
    /// Dynamic broker configs by resource: `""` the cluster-wide default,
    /// `"N"` node N (IncrementalAlterConfigs / AlterConfigs on a broker).
    pub broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Nodes that can vote, by id, with their controller address
    /// (`ControllerRegistered`): AddRaftVoter takes only these.
    pub controllers: BTreeMap<i32, String>,
    /// Each running shard's node id -> (its broker's id, its shard index),
    /// so that request handlers find a node without scanning every broker
    /// (Metadata asks once per partition). Rebuilt by the methods that
    /// change `brokers`.
    node_index: HashMap<i32, (i32, usize)>,
}

impl ClusterMeta {
    /// Empty metadata of the cluster `cluster_id`.
    pub fn of_cluster(cluster_id: impl Into<String>) -> Self {
        Self { cluster_id: cluster_id.into(), ..Default::default() }
    }

    /// Looks up a topic by name.
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicMeta>> {
        self.topics.get(name)
    }

    /// Looks up a topic by id.
    pub fn topic_by_id(&self, id: &Uuid) -> Option<&Arc<TopicMeta>> {
        self.ids.get(id).and_then(|n| self.topics.get(n))
    }

    /// Every live node (of an unfenced broker) with its broker, in node id
    /// order.
    pub fn live_nodes(&self) -> Vec<(i32, NodeAt<'_>)> {
        let mut out = self.registered_nodes();
        out.retain(|(_, at)| !at.broker.fenced);
        out
    }

    /// Every running shard of every registered broker, fenced or not, in
    /// node id order.
    pub fn registered_nodes(&self) -> Vec<(i32, NodeAt<'_>)> {
        let mut out: Vec<(i32, NodeAt<'_>)> = self
            .brokers
            .values()
            .flat_map(|b| b.live_nodes().iter().enumerate().map(move |(shard, &n)| (n, NodeAt { broker: b, shard })))
            .collect();
        out.sort_by_key(|(n, _)| *n);
        out
    }

    /// Whether `node` is a running shard of an unfenced broker.
    pub fn is_live(&self, node: i32) -> bool {
        self.node(node).is_some_and(|at| !at.broker.fenced)
    }

    /// Removes broker `id`'s registration, keeping its node ids for it.
    pub fn unregister_broker(&mut self, id: i32) {
        if let Some(b) = self.brokers.remove(&id) {
            self.retired.insert(id, b.nodes);
        }
        self.reindex_nodes();
    }

    /// Replaces every broker registration (a snapshot's).
    pub fn set_brokers(&mut self, brokers: impl IntoIterator<Item = BrokerReg>) {
        self.brokers = brokers.into_iter().map(|b| (b.id, b)).collect();
        self.reindex_nodes();
    }

    /// Rebuilds `node_index` from `brokers`.
    fn reindex_nodes(&mut self) {
        self.node_index.clear();
        for b in self.brokers.values() {
            for (shard, &n) in b.live_nodes().iter().enumerate() {
                let before = self.node_index.insert(n, (b.id, shard));
                assert!(before.is_none(), "node {n} belongs to one broker");
            }
        }
    }

    /// Fences or unfences broker `id`, if registered.
    pub fn set_fenced(&mut self, id: i32, fenced: bool) {
        if let Some(b) = self.brokers.get_mut(&id) {
            b.fenced = fenced;
        }
    }

    /// Where node `node` is, if it is a running shard of a registered
    /// broker (fenced or not: its partitions stay its own).
    pub fn node(&self, node: i32) -> Option<NodeAt<'_>> {
        let &(broker, shard) = self.node_index.get(&node)?;
        let broker = self.brokers.get(&broker).expect("the node index follows the brokers");
        debug_assert_eq!(broker.live_nodes().get(shard), Some(&node));
        Some(NodeAt { broker, shard })
    }

    /// The replicas of partition `p` of `t` that are running shards of
    /// broker `broker`, in replica order: each holds a copy of its own.
    pub fn replicas_on(&self, t: &TopicMeta, p: usize, broker: i32) -> Vec<i32> {
        let on_broker = |n: &i32| self.node(*n).is_some_and(|at| at.broker.id == broker);
        t.replicas.get(p).map_or_else(Vec::new, |r| r.iter().copied().filter(on_broker).collect())
    }

    /// The directory (in its broker's data dir) of node `node`'s copy of
    /// partition `p` of `t`: Kafka's `topic-p` for the first of the
    /// partition's replicas on that broker, the one directory a broker of
    /// one copy has always used; `topic-p+N` for node N, a further
    /// replica on the same broker (a broker of two shards asked for
    /// replication factor 2); `+` is not allowed in topic names, so no other
    /// partition's directory can take that name. Reassignments keep a
    /// broker's first copy first (`reassignment::displaced_copy`), so a
    /// copy's name changes only when a broker restarts with fewer shards
    /// and its first copy's node is gone (`replica_dirs::reconcile`).
    pub fn replica_dir(&self, t: &TopicMeta, p: usize, node: i32) -> String {
        let first = self.node(node).and_then(|at| self.replicas_on(t, p, at.broker.id).first().copied());
        let further = first.is_some_and(|f| f != node);
        replica_dir_name(&t.name, p, further.then_some(node))
    }

    /// The first directory name of partitions `first..` placed on
    /// `replicas` (one list per partition) that is longer than a file name
    /// may be (`MAX_DIR_NAME`), if one is: a further copy on one broker of
    /// a partition of a long-named topic (`topic-p+N`).
    pub fn overlong_dir(&self, name: &str, first: usize, replicas: &[Vec<i32>]) -> Option<String> {
        for (i, r) in replicas.iter().enumerate() {
            let broker = |n: i32| self.node(n).map(|at| at.broker.id);
            for (k, &n) in r.iter().enumerate() {
                let further = broker(n).is_some() && r[..k].iter().any(|&m| broker(m) == broker(n));
                let dir = replica_dir_name(name, first + i, further.then_some(n));
                if dir.len() > MAX_DIR_NAME {
                    return Some(dir);
                }
            }
        }
        None
    }

    /// How many copies of partitions placed on `replicas` broker `broker`
    /// would hold (each holds its files open).
    pub fn copies_on(&self, replicas: &[Vec<i32>], broker: i32) -> usize {
        let on_broker = |n: &&i32| self.node(**n).is_some_and(|at| at.broker.id == broker);
        replicas.iter().map(|r| r.iter().filter(on_broker).count()).sum()
    }

    /// Registers broker `id` with `shards` shards: it keeps the node ids it
    /// had and new shards get new ones.
    pub fn register_broker(&mut self, mut reg: BrokerReg) {
        reg.nodes = match self.brokers.get(&reg.id) {
            Some(b) => b.nodes.clone(),
            None => self.retired.remove(&reg.id).unwrap_or_default(),
        };
        while reg.nodes.len() < reg.shards {
            reg.nodes.push(self.next_node_id);
            self.next_node_id += 1;
        }
        self.brokers.insert(reg.id, reg);
        self.reindex_nodes();
    }

    /// The placement candidates: every live node with its broker and rack.
    pub fn placement_nodes(&self) -> Vec<crate::metadata::placement::Candidate> {
        self.live_nodes()
            .into_iter()
            .map(|(node, at)| crate::metadata::placement::Candidate {
                node,
                broker: at.broker.id,
                rack: at.broker.rack.clone(),
            })
            .collect()
    }

    /// Partitions led and replicas held (leaders included) per node, for
    /// balanced placement.
    pub fn load(&self) -> crate::metadata::placement::Load {
        let mut load = crate::metadata::placement::Load::default();
        for t in self.topics.values() {
            for (r, leader) in t.replicas.iter().zip(&t.leaders) {
                *load.leaders.entry(*leader).or_default() += 1;
                for n in r {
                    *load.replicas.entry(*n).or_default() += 1;
                }
            }
        }
        load
    }

    /// Inserts or replaces a topic, keeping the id index in step.
    pub fn put_topic(&mut self, topic: TopicMeta) {
        self.ids.insert(topic.id, topic.name.clone());
        self.topics.insert(topic.name.clone(), Arc::new(topic));
    }

    /// Removes a topic.
    pub fn remove_topic(&mut self, name: &str) -> Option<Arc<TopicMeta>> {
        let t = self.topics.remove(name)?;
        self.ids.remove(&t.id);
        Some(t)
    }
}

/// The longest file name ext4 and xfs take, in bytes: a copy's directory
/// name must fit (Kafka's 249-character topic names leave room for `-p`).
pub const MAX_DIR_NAME: usize = 255;

/// A partition's directory name: `topic-p`, or `topic-p+N` for a
/// further copy on node N of a broker that holds one already (see
/// [`ClusterMeta::replica_dir`]).
pub fn replica_dir_name(topic: &str, p: usize, further: Option<i32>) -> String {
    match further {
        None => format!("{topic}-{p}"),
        Some(n) => format!("{topic}-{p}+{n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(id: i32, shards: usize) -> BrokerReg {
        BrokerReg { id, nodes: Vec::new(), shards, host: "h".into(), port: 9092, rack: None, fenced: false }
    }

    /// `node` finds every running shard through the index, through
    /// registrations, restarts with fewer shards, unregistering and a
    /// snapshot's brokers.
    #[test]
    fn nodes_are_found_through_every_change_of_the_brokers() {
        let mut meta = ClusterMeta::default();
        meta.register_broker(reg(1, 2));
        meta.register_broker(reg(2, 1));
        let at = |meta: &ClusterMeta, n| meta.node(n).map(|at| (at.broker.id, at.shard));
        assert_eq!([at(&meta, 0), at(&meta, 1), at(&meta, 2)], [Some((1, 0)), Some((1, 1)), Some((2, 0))]);
        meta.register_broker(reg(1, 1));
        assert_eq!(at(&meta, 1), None, "a shard no longer running is no node");
        meta.unregister_broker(2);
        assert_eq!(at(&meta, 2), None);
        let mut restored = ClusterMeta::default();
        restored.set_brokers(meta.brokers.values().cloned());
        assert_eq!(at(&restored, 0), Some((1, 0)));
        assert_eq!(restored.live_nodes().len(), 1);
    }

    /// A partition's ISR starts as all its replicas, changes only at its
    /// leader's epoch, and a new leader (a reassignment) keeps the members
    /// still assigned.
    #[test]
    fn the_isr_changes_only_at_the_leaders_epoch() {
        let mut meta = ClusterMeta::default();
        meta.register_broker(reg(1, 2));
        meta.register_broker(reg(2, 1));
        // Nodes 0 and 1 are broker 1's shards, node 2 broker 2's.
        let mut t = TopicMeta::new("t".into(), Uuid::nil(), vec![vec![0, 1, 2], vec![2, 0]], BTreeMap::new());
        assert_eq!(t.isr, [vec![0, 1, 2], vec![2, 0]]);
        assert!(t.set_isr(0, 0, &[0, 2]));
        assert!(!t.set_isr(0, 1, &[0]), "a stale epoch changes nothing");
        assert!(!t.set_isr(0, 0, &[2]), "an ISR without its leader is refused");
        assert!(!t.set_isr(0, 0, &[0, 7]), "only replicas");
        assert!(t.set_isr(0, 0, &[2, 0, 1]));
        assert_eq!(t.isr[0], [0, 1, 2], "kept in replica order");
        assert!(t.set_isr(0, 0, &[0]));
        t.reassign(0, vec![2, 0, 1]);
        assert_eq!((t.leaders[0], t.epochs[0], t.isr[0].clone()), (0, 0, vec![0]), "an assigned leader stays");
        t.reassign(0, vec![2, 1]);
        assert_eq!((t.leaders[0], t.epochs[0], t.isr[0].clone()), (2, 1, vec![2]), "its replacement takes its place");
    }

    /// Each copy on a broker has a directory of its own: the first replica
    /// there Kafka's `topic-p`, a further one `topic-p+N`.
    #[test]
    fn a_further_copy_on_one_broker_gets_a_directory_named_for_its_node() {
        let mut meta = ClusterMeta::default();
        meta.register_broker(reg(1, 2));
        meta.register_broker(reg(2, 1));
        let t = TopicMeta::new("t".into(), Uuid::nil(), vec![vec![1, 0, 2], vec![2]], BTreeMap::new());
        let dirs: Vec<String> = [1, 0, 2].iter().map(|&n| meta.replica_dir(&t, 0, n)).collect();
        assert_eq!(dirs, ["t-0", "t-0+0", "t-0"]);
        assert_eq!(meta.replicas_on(&t, 0, 1), [1, 0]);
        assert_eq!(meta.replica_dir(&t, 1, 2), "t-1");
    }

    /// A further copy of a long-named topic's partition can need a longer
    /// directory name than a file system takes: found before placement.
    /// Copies count per broker.
    #[test]
    fn overlong_directory_names_are_found_and_copies_counted_per_broker() {
        let mut meta = ClusterMeta::default();
        meta.register_broker(reg(1, 2));
        meta.register_broker(reg(2, 1));
        let long = "t".repeat(249);
        let placed = vec![vec![1, 0, 2], vec![2, 1]];
        assert_eq!(meta.overlong_dir(&long, 99, &placed), None, "t...-100+0: 254 bytes");
        assert_eq!(meta.overlong_dir(&long, 1000, &placed), Some(format!("{long}-1000+0")));
        assert_eq!(meta.overlong_dir(&long, 99_998, &[vec![0], vec![2]]), None, "first copies: `-p` always fits");
        assert_eq!(meta.overlong_dir("short", 1000, &placed), None);
        assert_eq!((meta.copies_on(&placed, 1), meta.copies_on(&placed, 2), meta.copies_on(&placed, 3)), (3, 2, 0));
    }
}
