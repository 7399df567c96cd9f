//! Broker and topic settings under Kafka's own key names and defaults, so
//! that operators' `server.properties` knowledge carries over.
//!
//! A broker setting's value comes from the first layer that sets it, in
//! Kafka's order: dynamic for this node (`kafka-configs --entity-name N`),
//! dynamic cluster default (`--entity-default`), static (the properties file
//! or `--override`), built-in default. The dynamic layers live in the
//! metadata log (`metadata::record::MetaRecord::BrokerConfigsSet`); each
//! shard holds its node's resolved settings in a [`SharedSettings`] that the
//! controller replaces when they change.

pub mod edit;
pub mod keys;
pub mod kraft;
pub mod typed;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use thiserror::Error;

use keys::{BROKER_KEYS, TOPIC_KEYS, broker_key, topic_key};
pub use keys::{ConfigType, Kind, Update};

/// One node's resolved settings, replaced whole when a dynamic config
/// changes; readers load it without locks.
pub type SharedSettings = Arc<ArcSwap<BrokerSettings>>;

/// Where a value came from, with Kafka's `ConfigSource` wire values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum ConfigSource {
    /// Set on the topic.
    Topic = 1,
    /// Set dynamically for this node.
    DynamicBroker = 2,
    /// Set dynamically as the cluster-wide default.
    DynamicDefaultBroker = 3,
    /// Set in the broker's file or on its command line.
    StaticBroker = 4,
    /// Built-in default.
    Default = 5,
}

/// A bad setting.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("unknown config key {0:?}")]
    UnknownKey(String),
    #[error("invalid value {value:?} for {key}: expected {expected}")]
    InvalidValue { key: String, value: String, expected: &'static str },
    #[error("invalid value {value:?} for {key}: expected one of {allowed}")]
    NotOneOf { key: String, value: String, allowed: String },
    #[error("invalid value {value:?} for {key}: expected {bound}")]
    OutOfRange { key: String, value: String, bound: String },
    #[error("malformed setting {0:?}: expected key=value")]
    Malformed(String),
    #[error("cannot read config file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("Cannot update these configs dynamically: [{0}]")]
    NotDynamic(String),
    #[error("Config value append is not allowed for config key: {0}")]
    NotAList(String),
}

/// Checks `value` against what `key` takes.
pub fn check_value(key: &str, value: &str, kind: Kind) -> Result<(), ConfigError> {
    let bad = |expected| ConfigError::InvalidValue { key: key.into(), value: value.into(), expected };
    let not_one_of =
        |words: &[&str]| ConfigError::NotOneOf { key: key.into(), value: value.into(), allowed: words.join(", ") };
    match kind {
        Kind::Int { min, max } => match value.trim().parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(()),
            Ok(_) if max == i64::MAX => Err(bad_range(key, value, min, None)),
            Ok(_) => Err(bad_range(key, value, min, Some(max))),
            Err(_) => Err(bad("an integer")),
        },
        Kind::Bool => match value.trim() {
            "true" | "false" => Ok(()),
            _ => Err(bad("true or false")),
        },
        Kind::OneOf(words) if words.contains(&value.trim()) => Ok(()),
        Kind::OneOf(words) => Err(not_one_of(words)),
        Kind::ListOf(words) => {
            let items = list_items(value);
            if items.is_empty() || items.iter().any(|i| !words.contains(i)) { Err(not_one_of(words)) } else { Ok(()) }
        }
        Kind::Text => Ok(()),
        Kind::Replicas if crate::replication::throttle::valid_list(value) => Ok(()),
        Kind::Replicas => Err(bad("empty, *, or partition:node pairs separated by commas")),
    }
}

fn bad_range(key: &str, value: &str, min: i64, max: Option<i64>) -> ConfigError {
    let bound = match max {
        Some(max) => format!("an integer from {min} to {max}"),
        None => format!("an integer of at least {min}"),
    };
    ConfigError::OutOfRange { key: key.into(), value: value.into(), bound }
}

/// The items of a comma-separated list value.
pub fn list_items(value: &str) -> Vec<&str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty()).collect()
}

/// One value of a key at one layer (DescribeConfigs' synonyms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synonym {
    /// The key at that layer (a topic key's broker default has its broker name).
    pub key: &'static str,
    /// Its value there.
    pub value: String,
    /// The layer.
    pub source: ConfigSource,
}

/// One resolved setting as DescribeConfigs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// Kafka key name.
    pub key: &'static str,
    /// Effective value.
    pub value: String,
    /// Where it came from.
    pub source: ConfigSource,
    /// Every layer that has a value for it, the effective one first.
    pub synonyms: Vec<Synonym>,
    /// Kafka's type for it.
    pub ty: ConfigType,
    /// What it does.
    pub doc: &'static str,
    /// Whether only a restart changes it.
    pub read_only: bool,
}

impl ConfigEntry {
    /// The entry whose value and source are the first of `synonyms` (the
    /// layer that sets it), every layer listed.
    pub fn from_layers(
        key: &'static str,
        synonyms: Vec<Synonym>,
        ty: ConfigType,
        doc: &'static str,
        read_only: bool,
    ) -> Self {
        let first = synonyms.first().expect("every key has at least its default");
        Self { key, value: first.value.clone(), source: first.source, synonyms, ty, doc, read_only }
    }
}

/// Broker-level settings: static overrides plus this node's dynamic layers,
/// and what they resolve to, parsed ([`typed::Broker`]), kept in step with
/// every change of a layer.
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    overrides: BTreeMap<String, String>,
    cluster: BTreeMap<String, String>,
    node: BTreeMap<String, String>,
    typed: Arc<typed::Broker>,
}

impl Default for BrokerSettings {
    fn default() -> Self {
        let layers = BTreeMap::new();
        Self::from_layers(layers.clone(), layers.clone(), layers)
    }
}

impl BrokerSettings {
    fn from_layers(
        overrides: BTreeMap<String, String>,
        cluster: BTreeMap<String, String>,
        node: BTreeMap<String, String>,
    ) -> Self {
        let mut s = Self { overrides, cluster, node, typed: Arc::new(typed::Broker::resolve(|_| "")) };
        s.typed = Arc::new(typed::Broker::resolve(|k| s.get(k)));
        s
    }

    /// The settings the broker reads at run time, parsed.
    pub fn typed(&self) -> &typed::Broker {
        &self.typed
    }

    /// What a topic with these overrides works under.
    pub fn topic(&self, overrides: &typed::TopicOverrides) -> typed::TopicSettings {
        self.typed.topic_defaults.with(overrides)
    }

    /// Applies one static `key=value` setting; unknown keys are refused so
    /// that a typo does not silently leave a default in place.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let key = key.trim();
        let k = BROKER_KEYS.iter().find(|k| k.name == key).ok_or_else(|| ConfigError::UnknownKey(key.to_string()))?;
        check_value(key, value, k.kind)?;
        self.overrides.insert(key.to_string(), value.trim().to_string());
        self.typed = Arc::new(typed::Broker::resolve(|k| self.get(k)));
        Ok(())
    }

    /// Applies a `key=value` string.
    #[cfg(test)]
    pub fn set_pair(&mut self, pair: &str) -> Result<(), ConfigError> {
        let (k, v) = pair.split_once('=').ok_or_else(|| ConfigError::Malformed(pair.to_string()))?;
        self.set(k, v)
    }

    /// Loads a server.properties-style file (`#` and `!` comments,
    /// `key=value`), Kafka's own included: see [`kraft`] for the keys that
    /// describe the process or do not apply.
    pub fn load_file(&mut self, path: &Path, props: &mut kraft::KafkaProperties) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::File { path: path.to_path_buf(), reason: e.to_string() })?;
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let (k, v) = line.split_once('=').ok_or_else(|| ConfigError::Malformed(line.to_string()))?;
            props.apply(self, k, v)?;
        }
        Ok(())
    }

    /// These static settings under the dynamic `cluster` default and `node`
    /// layers (both already validated by the controller).
    pub fn with_dynamic(&self, cluster: &BTreeMap<String, String>, node: &BTreeMap<String, String>) -> Self {
        Self::from_layers(self.overrides.clone(), cluster.clone(), node.clone())
    }

    /// Every layer's value of broker key `key`, the effective one first.
    fn layers(&self, key: &'static str) -> Vec<Synonym> {
        let mut out = Vec::with_capacity(2);
        for (map, source) in [
            (&self.node, ConfigSource::DynamicBroker),
            (&self.cluster, ConfigSource::DynamicDefaultBroker),
            (&self.overrides, ConfigSource::StaticBroker),
        ] {
            if let Some(v) = map.get(key) {
                out.push(Synonym { key, value: v.clone(), source });
            }
        }
        if let Some(k) = broker_key(key) {
            out.push(Synonym { key, value: k.default.to_string(), source: ConfigSource::Default });
        }
        out
    }

    /// Every broker setting with its effective value, source and synonyms.
    pub fn entries(&self) -> Vec<ConfigEntry> {
        BROKER_KEYS
            .iter()
            .map(|k| ConfigEntry::from_layers(k.name, self.layers(k.name), k.ty, k.doc, k.update == Update::ReadOnly))
            .collect()
    }

    /// The settings set as the dynamic cluster default (what DescribeConfigs
    /// of the broker resource `""` lists).
    pub fn cluster_default_entries(&self) -> Vec<ConfigEntry> {
        let only_cluster = Self::from_layers(BTreeMap::new(), self.cluster.clone(), BTreeMap::new());
        only_cluster.entries().into_iter().filter(|e| e.source == ConfigSource::DynamicDefaultBroker).collect()
    }

    /// The effective value of broker key `key`, as text (the node's
    /// dynamic value, the cluster's, the static one, or the default).
    pub fn get(&self, key: &str) -> &str {
        [&self.node, &self.cluster, &self.overrides]
            .into_iter()
            .find_map(|m| m.get(key))
            .map(String::as_str)
            .unwrap_or_else(|| broker_key(key).map(|k| k.default).expect("known broker key"))
    }

    /// The value of `key` below the `above` layer (what APPEND starts from
    /// when `above` does not set it).
    pub fn inherited(&self, key: &str, above: ConfigSource) -> String {
        let layers: &[(&BTreeMap<String, String>, ConfigSource)] =
            &[(&self.cluster, ConfigSource::DynamicDefaultBroker), (&self.overrides, ConfigSource::StaticBroker)];
        layers
            .iter()
            .filter(|(_, s)| (*s as i8) > (above as i8))
            .find_map(|(m, _)| m.get(key).cloned())
            .unwrap_or_else(|| broker_key(key).map(|k| k.default.to_string()).unwrap_or_default())
    }

    /// `num.partitions`.
    pub fn num_partitions(&self) -> i32 {
        self.typed.num_partitions.clamp(1, i64::from(i32::MAX)) as i32
    }
    /// `auto.create.topics.enable`.
    pub fn auto_create_topics(&self) -> bool {
        self.typed.auto_create_topics
    }
    /// `default.replication.factor`.
    pub fn default_replication_factor(&self) -> i16 {
        self.typed.default_replication_factor.clamp(1, i64::from(i16::MAX)) as i16
    }
    /// `fetch.max.bytes`: the most record bytes one fetch response carries
    /// (beyond one batch, which KIP-74 always allows).
    pub fn fetch_max_bytes(&self) -> usize {
        self.typed.fetch_max_bytes.max(0) as usize
    }
    /// `log.retention.check.interval.ms`: how often retention runs.
    pub fn retention_check_interval_ms(&self) -> u64 {
        self.typed.retention_check_interval_ms.max(0) as u64
    }
    /// `broker.heartbeat.interval.ms`.
    pub fn heartbeat_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.typed.heartbeat_interval_ms.max(1) as u64)
    }
    /// `broker.session.timeout.ms`.
    pub fn session_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.typed.session_timeout_ms.max(1) as u64)
    }
    /// `replica.lag.time.max.ms`: a follower that has not caught up for
    /// this long leaves the ISR.
    pub fn replica_lag_time_max(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.typed.replica_lag_time_max_ms.max(1) as u64)
    }
    /// `auto.leader.rebalance.enable`: how often the quorum's leader checks
    /// the preferred-leader balance (`leader.imbalance.check.interval.seconds`)
    /// and the imbalance it tolerates (`leader.imbalance.per.broker.percentage`),
    /// or `None` when it does not.
    pub fn leader_rebalance(&self) -> Option<(std::time::Duration, i64)> {
        let t = &self.typed;
        let every = std::time::Duration::from_secs(t.leader_imbalance_check_interval_s.max(1) as u64);
        t.auto_leader_rebalance.then_some((every, t.leader_imbalance_percentage.max(0)))
    }
    /// `replica.fetch.wait.max.ms`.
    pub fn replica_fetch_wait(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.typed.replica_fetch_wait_max_ms.max(1) as u64)
    }
    /// `replica.fetch.max.bytes` and `replica.fetch.response.max.bytes`:
    /// (per partition, per fetch).
    pub fn replica_fetch_bytes(&self) -> (i32, i32) {
        let clamp = |v: i64| v.clamp(1, i64::from(i32::MAX)) as i32;
        (clamp(self.typed.replica_fetch_max_bytes), clamp(self.typed.replica_fetch_response_max_bytes))
    }
    /// `leader.replication.throttled.rate` and
    /// `follower.replication.throttled.rate`, bytes/s for the broker
    /// (`i64::MAX`: unthrottled).
    pub fn replication_throttled_rates(&self) -> (i64, i64) {
        (self.typed.leader_replication_throttled_rate.max(1), self.typed.follower_replication_throttled_rate.max(1))
    }
    /// `replica.high.watermark.checkpoint.interval.ms`.
    pub fn hw_checkpoint_interval_ms(&self) -> u64 {
        self.typed.hw_checkpoint_interval_ms.max(1) as u64
    }
    /// `message.decompressed.max.bytes`.
    pub fn max_decompressed_bytes(&self) -> usize {
        self.typed.message_decompressed_max_bytes.max(0) as usize
    }
    /// `queued.max.request.bytes` (per shard; -1 or 0: as large as one
    /// frame can be, `socket.request.max.bytes`).
    pub fn queued_max_request_bytes(&self) -> usize {
        match self.typed.queued_max_request_bytes {
            n if n > 0 => n as usize,
            _ => self.socket_request_max_bytes(),
        }
    }
    /// `connections.max.idle.ms`: a connection with no request nor response
    /// for this long is closed (-1: never).
    pub fn connections_max_idle(&self) -> Option<std::time::Duration> {
        u64::try_from(self.typed.connections_max_idle_ms).ok().map(std::time::Duration::from_millis)
    }
    /// `group.member.metadata.max.bytes`.
    pub fn group_member_metadata_max_bytes(&self) -> usize {
        self.typed.group_member_metadata_max_bytes.max(0) as usize
    }
    /// `broker.rack`, if set.
    pub fn rack(&self) -> Option<&str> {
        Some(self.typed.rack.as_str()).filter(|r| !r.is_empty())
    }
    /// `socket.request.max.bytes`.
    pub fn socket_request_max_bytes(&self) -> usize {
        self.typed.socket_request_max_bytes.max(0) as usize
    }

    /// Every topic setting for a topic with `overrides`, with sources and
    /// synonyms (the topic's own value, then its broker key's layers).
    pub fn topic_entries(&self, overrides: &BTreeMap<String, String>) -> Vec<ConfigEntry> {
        TOPIC_KEYS
            .iter()
            .map(|k| {
                let mut synonyms = Vec::new();
                if let Some(v) = overrides.get(k.name) {
                    synonyms.push(Synonym { key: k.name, value: v.clone(), source: ConfigSource::Topic });
                }
                let broker = broker_key(k.broker).expect("a topic key defaults from a broker key");
                synonyms.extend(self.layers(broker.name));
                ConfigEntry::from_layers(k.name, synonyms, k.ty, k.doc, false)
            })
            .collect()
    }

    /// The effective value of a topic setting, as text.
    pub fn topic_text<'a>(&'a self, overrides: &'a BTreeMap<String, String>, key: &str) -> &'a str {
        if let Some(v) = overrides.get(key) {
            return v;
        }
        self.get(topic_key(key).expect("known topic key").broker)
    }
}

/// Validates a topic-level `key=value` as CreateTopics receives it.
pub fn validate_topic_config(key: &str, value: &str) -> Result<(), ConfigError> {
    let k = topic_key(key).ok_or_else(|| ConfigError::UnknownKey(key.to_string()))?;
    check_value(key, value, k.kind)
}

/// Validates a dynamic broker `key=value`: a key Kafka lets a running broker
/// change, and that sluice applies without a restart.
pub fn validate_dynamic_broker_config(key: &str, value: &str) -> Result<(), ConfigError> {
    let k = broker_key(key).ok_or_else(|| ConfigError::UnknownKey(key.to_string()))?;
    if k.update != Update::Dynamic {
        return Err(ConfigError::NotDynamic(key.to_string()));
    }
    check_value(key, value, k.kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn overrides_and_sources() {
        let mut s = BrokerSettings::default();
        assert_eq!(s.num_partitions(), 1);
        s.set_pair("num.partitions=3").unwrap();
        assert_eq!(s.num_partitions(), 3);
        assert!(matches!(s.set_pair("num.partitions=x"), Err(ConfigError::InvalidValue { .. })));
        assert!(matches!(s.set_pair("no.such.key=1"), Err(ConfigError::UnknownKey(_))));
        s.set_pair("log.segment.bytes=1000").unwrap();
        let t = map(&[("retention.ms", "5")]);
        let e = s.topic_entries(&t);
        let get = |k: &str| e.iter().find(|c| c.key == k).unwrap().clone();
        assert_eq!(get("retention.ms").source, ConfigSource::Topic);
        assert_eq!(get("segment.bytes").value, "1000");
        assert_eq!(get("segment.bytes").source, ConfigSource::StaticBroker);
        assert_eq!(get("cleanup.policy").source, ConfigSource::Default);
        assert_eq!(get("cleanup.policy").ty, ConfigType::List);
        let typed = s.topic(&typed::TopicOverrides::parse(&t));
        assert_eq!((typed.segment_bytes, typed.retention_ms), (1000, 5));
        assert!(validate_topic_config("retention.ms", "abc").is_err());
        assert!(validate_topic_config("bogus", "1").is_err());
    }

    #[test]
    fn dynamic_layers_take_kafkas_precedence() {
        let mut s = BrokerSettings::default();
        s.set_pair("log.retention.ms=1000").unwrap();
        let d = s.with_dynamic(&map(&[("log.retention.ms", "2000")]), &BTreeMap::new());
        assert_eq!(d.topic(&Default::default()).retention_ms, 2000);
        let n = s.with_dynamic(&map(&[("log.retention.ms", "2000")]), &map(&[("log.retention.ms", "3000")]));
        assert_eq!(n.topic(&Default::default()).retention_ms, 3000);
        let e = n.entries().into_iter().find(|e| e.key == "log.retention.ms").unwrap();
        let sources: Vec<_> = e.synonyms.iter().map(|s| (s.value.as_str(), s.source)).collect();
        assert_eq!(
            sources,
            [
                ("3000", ConfigSource::DynamicBroker),
                ("2000", ConfigSource::DynamicDefaultBroker),
                ("1000", ConfigSource::StaticBroker),
                ("604800000", ConfigSource::Default)
            ]
        );
        assert_eq!(n.inherited("log.retention.ms", ConfigSource::DynamicBroker), "2000");
        assert_eq!(n.inherited("log.retention.ms", ConfigSource::DynamicDefaultBroker), "1000");
        // A topic's retention follows the node's dynamic value.
        let t = n.topic_entries(&BTreeMap::new()).into_iter().find(|e| e.key == "retention.ms").unwrap();
        assert_eq!((t.value.as_str(), t.source), ("3000", ConfigSource::DynamicBroker));
        assert_eq!(n.cluster_default_entries().len(), 1);
    }

    #[test]
    fn read_only_keys_cannot_change_dynamically() {
        assert_eq!(
            validate_dynamic_broker_config("num.partitions", "3"),
            Err(ConfigError::NotDynamic("num.partitions".into()))
        );
        assert!(validate_dynamic_broker_config("listeners", "x").is_err());
        assert!(validate_dynamic_broker_config("log.retention.ms", "10").is_ok());
        assert!(validate_dynamic_broker_config("log.cleanup.policy", "compact,delete").is_ok());
        assert!(validate_dynamic_broker_config("log.cleanup.policy", "compact,bogus").is_err());
        // Kafka's bounds: a producer's state cannot expire at once, a batch
        // size cannot be negative, an INT key stops at i32.
        assert!(matches!(
            validate_dynamic_broker_config("producer.id.expiration.ms", "0"),
            Err(ConfigError::OutOfRange { .. })
        ));
        assert!(validate_dynamic_broker_config("message.max.bytes", "-1").is_err());
        assert!(validate_dynamic_broker_config("message.max.bytes", "2147483648").is_err());
        assert!(validate_dynamic_broker_config("log.retention.ms", "-1").is_ok());
        assert!(validate_topic_config("retention.bytes", "-1").is_ok());
    }
}
