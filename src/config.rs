//! Broker and topic settings under Kafka's own key names and defaults, so
//! that operators' `server.properties` knowledge carries over.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Where a config value came from, with Kafka's `ConfigSource` wire values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum ConfigSource {
    /// Set on the topic.
    Topic = 1,
    /// Set in the broker's file or on its command line.
    StaticBroker = 4,
    /// Built-in default.
    Default = 5,
}

/// The kind of value a key holds, for validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Bool,
    /// One of these words (Kafka's validators list them).
    OneOf(&'static [&'static str]),
}

const CLEANUP_POLICIES: Kind = Kind::OneOf(&["delete", "compact", "compact,delete", "delete,compact"]);
const COMPRESSION_TYPES: Kind = Kind::OneOf(&["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"]);
const TIMESTAMP_TYPES: Kind = Kind::OneOf(&["CreateTime", "LogAppendTime"]);

/// Broker keys sluice knows, with Kafka's defaults.
const BROKER_KEYS: &[(&str, &str, Kind)] = &[
    ("num.partitions", "1", Kind::Int),
    ("auto.create.topics.enable", "true", Kind::Bool),
    ("default.replication.factor", "1", Kind::Int),
    ("message.max.bytes", "1048588", Kind::Int),
    ("socket.request.max.bytes", "104857600", Kind::Int),
    // sluice's own: the most bytes one batch's records may decompress to
    // (produce walks every record; a small batch expanding to gigabytes is
    // refused with MESSAGE_TOO_LARGE instead of taking the shard's time).
    ("message.decompressed.max.bytes", "67108864", Kind::Int),
    // Kafka's default is -1 (no bound, broker-wide); sluice bounds each
    // shard's request bodies of 64 KiB and more in flight by default.
    ("queued.max.request.bytes", "268435456", Kind::Int),
    ("connections.max.idle.ms", "600000", Kind::Int),
    // sluice's own: the most bytes of protocol metadata one JoinGroup
    // member brings (all its protocols together), and of assignment one
    // SyncGroup hands one member.
    ("group.member.metadata.max.bytes", "4194304", Kind::Int),
    ("fetch.max.bytes", "57671680", Kind::Int),
    ("max.request.partition.size.limit", "2000", Kind::Int),
    ("log.segment.bytes", "1073741824", Kind::Int),
    ("log.roll.ms", "604800000", Kind::Int),
    ("log.index.interval.bytes", "4096", Kind::Int),
    ("log.preallocate", "false", Kind::Bool),
    // sluice's own: keep one segment file that retention deletes, zeroed,
    // to write the partition's next segment into (storage/recycle.rs).
    ("log.segment.recycle", "true", Kind::Bool),
    ("log.cleaner.delete.retention.ms", "86400000", Kind::Int),
    // sluice's default is durable before acknowledging: every write synced.
    ("log.flush.interval.messages", "1", Kind::Int),
    ("log.flush.interval.ms", "9223372036854775807", Kind::Int),
    ("log.retention.ms", "604800000", Kind::Int),
    ("log.retention.bytes", "-1", Kind::Int),
    ("log.retention.check.interval.ms", "300000", Kind::Int),
    ("log.cleanup.policy", "delete", CLEANUP_POLICIES),
    ("log.message.timestamp.type", "CreateTime", TIMESTAMP_TYPES),
    ("compression.type", "producer", COMPRESSION_TYPES),
    ("min.insync.replicas", "1", Kind::Int),
    ("producer.id.expiration.ms", "86400000", Kind::Int),
    // Consumer groups (classic protocol).
    ("group.initial.rebalance.delay.ms", "3000", Kind::Int),
    ("group.min.session.timeout.ms", "6000", Kind::Int),
    ("group.max.session.timeout.ms", "1800000", Kind::Int),
    ("group.max.size", "2147483647", Kind::Int),
    ("offsets.topic.num.partitions", "50", Kind::Int),
    ("offsets.topic.segment.bytes", "104857600", Kind::Int),
    ("offsets.retention.minutes", "10080", Kind::Int),
    ("offsets.retention.check.interval.ms", "600000", Kind::Int),
    ("offset.metadata.max.bytes", "4096", Kind::Int),
];

/// Topic keys: (topic key, broker key it defaults from, kind).
const TOPIC_KEYS: &[(&str, &str, Kind)] = &[
    ("cleanup.policy", "log.cleanup.policy", CLEANUP_POLICIES),
    ("compression.type", "compression.type", COMPRESSION_TYPES),
    ("retention.ms", "log.retention.ms", Kind::Int),
    ("retention.bytes", "log.retention.bytes", Kind::Int),
    ("segment.bytes", "log.segment.bytes", Kind::Int),
    ("segment.ms", "log.roll.ms", Kind::Int),
    ("index.interval.bytes", "log.index.interval.bytes", Kind::Int),
    ("preallocate", "log.preallocate", Kind::Bool),
    ("delete.retention.ms", "log.cleaner.delete.retention.ms", Kind::Int),
    ("flush.messages", "log.flush.interval.messages", Kind::Int),
    ("flush.ms", "log.flush.interval.ms", Kind::Int),
    ("max.message.bytes", "message.max.bytes", Kind::Int),
    ("message.timestamp.type", "log.message.timestamp.type", TIMESTAMP_TYPES),
    ("min.insync.replicas", "min.insync.replicas", Kind::Int),
];

/// A bad setting.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("unknown config key {0:?}")]
    UnknownKey(String),
    #[error("invalid value {value:?} for {key}: expected {expected}")]
    InvalidValue { key: String, value: String, expected: &'static str },
    #[error("invalid value {value:?} for {key}: expected one of {allowed}")]
    NotOneOf { key: String, value: String, allowed: String },
    #[error("malformed setting {0:?}: expected key=value")]
    Malformed(String),
    #[error("cannot read config file {path}: {reason}")]
    File { path: PathBuf, reason: String },
}

fn check_value(key: &str, value: &str, kind: Kind) -> Result<(), ConfigError> {
    let bad = |expected| ConfigError::InvalidValue { key: key.into(), value: value.into(), expected };
    match kind {
        Kind::Int => value.trim().parse::<i64>().map(|_| ()).map_err(|_| bad("an integer")),
        Kind::Bool => match value.trim() {
            "true" | "false" => Ok(()),
            _ => Err(bad("true or false")),
        },
        Kind::OneOf(words) if words.contains(&value.trim()) => Ok(()),
        Kind::OneOf(words) => {
            Err(ConfigError::NotOneOf { key: key.into(), value: value.into(), allowed: words.join(", ") })
        }
    }
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
}

/// Broker-level settings (the `server.properties` part).
#[derive(Debug, Clone, Default)]
pub struct BrokerSettings {
    overrides: BTreeMap<String, String>,
}

impl BrokerSettings {
    /// Applies one `key=value` setting; unknown keys are refused so that a
    /// typo does not silently leave a default in place.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let key = key.trim();
        let (_, _, kind) =
            BROKER_KEYS.iter().find(|(k, _, _)| *k == key).ok_or_else(|| ConfigError::UnknownKey(key.to_string()))?;
        check_value(key, value, *kind)?;
        self.overrides.insert(key.to_string(), value.trim().to_string());
        Ok(())
    }

    /// Applies a `key=value` string.
    pub fn set_pair(&mut self, pair: &str) -> Result<(), ConfigError> {
        let (k, v) = pair.split_once('=').ok_or_else(|| ConfigError::Malformed(pair.to_string()))?;
        self.set(k, v)
    }

    /// Loads a server.properties-style file (`#` comments, `key=value`).
    pub fn load_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::File { path: path.to_path_buf(), reason: e.to_string() })?;
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            self.set_pair(line)?;
        }
        Ok(())
    }

    /// Every broker setting with its effective value and source.
    pub fn entries(&self) -> Vec<ConfigEntry> {
        BROKER_KEYS
            .iter()
            .map(|(k, default, _)| match self.overrides.get(*k) {
                Some(v) => ConfigEntry { key: k, value: v.clone(), source: ConfigSource::StaticBroker },
                None => ConfigEntry { key: k, value: (*default).to_string(), source: ConfigSource::Default },
            })
            .collect()
    }

    fn get(&self, key: &str) -> &str {
        self.overrides.get(key).map(String::as_str).unwrap_or_else(|| {
            BROKER_KEYS.iter().find(|(k, _, _)| *k == key).map(|(_, d, _)| *d).expect("known broker key")
        })
    }

    fn int(&self, key: &str) -> i64 {
        self.get(key).parse().expect("validated when set")
    }

    /// `num.partitions`.
    pub fn num_partitions(&self) -> i32 {
        self.int("num.partitions") as i32
    }
    /// `auto.create.topics.enable`.
    pub fn auto_create_topics(&self) -> bool {
        self.broker_bool("auto.create.topics.enable")
    }
    /// `default.replication.factor`.
    pub fn default_replication_factor(&self) -> i16 {
        self.int("default.replication.factor") as i16
    }
    /// `fetch.max.bytes`: the most record bytes one fetch response carries
    /// (beyond one batch, which KIP-74 always allows).
    pub fn fetch_max_bytes(&self) -> usize {
        self.int("fetch.max.bytes").max(0) as usize
    }
    /// `log.retention.check.interval.ms`: how often retention runs.
    pub fn retention_check_interval_ms(&self) -> u64 {
        self.int("log.retention.check.interval.ms").max(0) as u64
    }
    /// An integer broker setting by its Kafka key (one of `BROKER_KEYS`).
    pub fn broker_int(&self, key: &str) -> i64 {
        self.int(key)
    }
    /// A boolean broker setting by its key (one of `BROKER_KEYS`).
    pub fn broker_bool(&self, key: &str) -> bool {
        self.get(key) == "true"
    }
    /// `message.decompressed.max.bytes`.
    pub fn max_decompressed_bytes(&self) -> usize {
        self.int("message.decompressed.max.bytes").max(0) as usize
    }
    /// `queued.max.request.bytes` (per shard; -1 or 0: as large as one
    /// frame can be, `socket.request.max.bytes`).
    pub fn queued_max_request_bytes(&self) -> usize {
        match self.int("queued.max.request.bytes") {
            n if n > 0 => n as usize,
            _ => self.socket_request_max_bytes(),
        }
    }
    /// `connections.max.idle.ms`: a connection with no request nor response
    /// for this long is closed (-1: never).
    pub fn connections_max_idle(&self) -> Option<std::time::Duration> {
        u64::try_from(self.int("connections.max.idle.ms")).ok().map(std::time::Duration::from_millis)
    }
    /// `group.member.metadata.max.bytes`.
    pub fn group_member_metadata_max_bytes(&self) -> usize {
        self.int("group.member.metadata.max.bytes").max(0) as usize
    }
    /// `socket.request.max.bytes`.
    pub fn socket_request_max_bytes(&self) -> usize {
        self.int("socket.request.max.bytes").max(0) as usize
    }

    /// Every topic setting for a topic with `overrides`, with sources.
    pub fn topic_entries(&self, overrides: &BTreeMap<String, String>) -> Vec<ConfigEntry> {
        TOPIC_KEYS
            .iter()
            .map(|(k, broker_key, _)| match overrides.get(*k) {
                Some(v) => ConfigEntry { key: k, value: v.clone(), source: ConfigSource::Topic },
                None => {
                    let source = if self.overrides.contains_key(*broker_key) {
                        ConfigSource::StaticBroker
                    } else {
                        ConfigSource::Default
                    };
                    ConfigEntry { key: k, value: self.get(broker_key).to_string(), source }
                }
            })
            .collect()
    }

    /// The effective value of a topic setting, as text.
    pub fn topic_text<'a>(&'a self, overrides: &'a BTreeMap<String, String>, key: &str) -> &'a str {
        if let Some(v) = overrides.get(key) {
            return v;
        }
        let (_, broker_key, _) = TOPIC_KEYS.iter().find(|(k, _, _)| *k == key).expect("known topic key");
        self.get(broker_key)
    }

    /// The effective value of a topic setting.
    pub fn topic_value(&self, overrides: &BTreeMap<String, String>, key: &str) -> i64 {
        if let Some(v) = overrides.get(key).and_then(|v| v.parse().ok()) {
            return v;
        }
        let (_, broker_key, _) = TOPIC_KEYS.iter().find(|(k, _, _)| *k == key).expect("known topic key");
        self.int(broker_key)
    }
}

/// Validates a topic-level `key=value` as CreateTopics receives it.
pub fn validate_topic_config(key: &str, value: &str) -> Result<(), ConfigError> {
    let (_, _, kind) =
        TOPIC_KEYS.iter().find(|(k, _, _)| *k == key).ok_or_else(|| ConfigError::UnknownKey(key.to_string()))?;
    check_value(key, value, *kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_and_sources() {
        let mut s = BrokerSettings::default();
        assert_eq!(s.num_partitions(), 1);
        s.set_pair("num.partitions=3").unwrap();
        assert_eq!(s.num_partitions(), 3);
        assert!(matches!(s.set_pair("num.partitions=x"), Err(ConfigError::InvalidValue { .. })));
        assert!(matches!(s.set_pair("no.such.key=1"), Err(ConfigError::UnknownKey(_))));
        s.set_pair("log.segment.bytes=1000").unwrap();
        let mut t = BTreeMap::new();
        t.insert("retention.ms".to_string(), "5".to_string());
        let e = s.topic_entries(&t);
        let get = |k: &str| e.iter().find(|c| c.key == k).unwrap().clone();
        assert_eq!(get("retention.ms").source, ConfigSource::Topic);
        assert_eq!(get("segment.bytes").value, "1000");
        assert_eq!(get("segment.bytes").source, ConfigSource::StaticBroker);
        assert_eq!(get("cleanup.policy").source, ConfigSource::Default);
        assert_eq!(s.topic_value(&t, "segment.bytes"), 1000);
        assert!(validate_topic_config("retention.ms", "abc").is_err());
        assert!(validate_topic_config("bogus", "1").is_err());
    }
}
