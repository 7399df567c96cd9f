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
    /// first (Kafka's replica assignment). Followers do not copy the
    /// leader's log yet (issue 24): they are listed, never in sync.
    pub replicas: Vec<Vec<i32>>,
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
        let mut t = Self { name, id, leaders: Vec::new(), replicas: Vec::new(), configs, overrides };
        t.add_partitions(replicas);
        t
    }

    /// Appends partitions with these replica assignments.
    pub fn add_partitions(&mut self, replicas: Vec<Vec<i32>>) {
        for r in replicas {
            check_replicas(&r);
            self.leaders.push(r[0]);
            self.replicas.push(r);
        }
    }

    /// Gives partition `p` a new replica assignment (its leader first).
    pub fn reassign(&mut self, p: usize, replicas: Vec<i32>) {
        check_replicas(&replicas);
        if let (Some(l), Some(r)) = (self.leaders.get_mut(p), self.replicas.get_mut(p)) {
            *l = replicas[0];
            *r = replicas;
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

/// An immutable view of all metadata, published as a whole on every change.
#[derive(Debug, Clone, Default)]
pub struct ClusterMeta {
    /// Cluster id, persisted in `meta.properties`.
    pub cluster_id: String,
    /// Number of nodes (one per shard); node ids are `0..nodes`.
    pub nodes: i32,
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
}

impl ClusterMeta {
    /// Looks up a topic by name.
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicMeta>> {
        self.topics.get(name)
    }

    /// Looks up a topic by id.
    pub fn topic_by_id(&self, id: &Uuid) -> Option<&Arc<TopicMeta>> {
        self.ids.get(id).and_then(|n| self.topics.get(n))
    }

    /// Partitions led per node, for balanced placement.
    pub fn partitions_per_node(&self) -> Vec<usize> {
        self.count_per_node(|t| t.leaders.clone())
    }

    /// Replicas held per node (leaders included), for balanced placement.
    pub fn replicas_per_node(&self) -> Vec<usize> {
        self.count_per_node(|t| t.replicas.iter().flatten().copied().collect())
    }

    fn count_per_node(&self, nodes_of: impl Fn(&TopicMeta) -> Vec<i32>) -> Vec<usize> {
        let mut counts = vec![0usize; self.nodes.max(0) as usize];
        for t in self.topics.values() {
            for n in nodes_of(t) {
                if let Some(c) = usize::try_from(n).ok().and_then(|n| counts.get_mut(n)) {
                    *c += 1;
                }
            }
        }
        counts
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
