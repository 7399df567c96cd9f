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
    /// `leaders[p]` is the node (= shard) that owns partition `p`.
    pub leaders: Vec<i32>,
    /// Topic-level config overrides (Kafka key names).
    pub configs: BTreeMap<String, String>,
    /// The same, parsed (see [`TopicMeta::set_configs`]).
    pub overrides: TopicOverrides,
}

impl TopicMeta {
    /// A topic with these configs (validated), parsed once here.
    pub fn new(name: String, id: Uuid, leaders: Vec<i32>, configs: BTreeMap<String, String>) -> Self {
        let overrides = TopicOverrides::parse(&configs);
        Self { name, id, leaders, configs, overrides }
    }

    /// Replaces the topic's configs, and their parsed form with them.
    pub fn set_configs(&mut self, configs: BTreeMap<String, String>) {
        self.overrides = TopicOverrides::parse(&configs);
        self.configs = configs;
    }
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

    /// Partition count per node, for balanced placement.
    pub fn partitions_per_node(&self) -> Vec<usize> {
        let mut counts = vec![0usize; self.nodes.max(0) as usize];
        for t in self.topics.values() {
            for &l in &t.leaders {
                if let Some(c) = counts.get_mut(l as usize) {
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
