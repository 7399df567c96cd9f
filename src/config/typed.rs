//! Settings parsed once into typed structs: the broker's when its layers
//! are set (at start, and at each dynamic change), a topic's overrides when
//! its metadata is applied. What the broker reads at run time is then a
//! field, never a lookup by key name: a key misspelled here fails the unit
//! tests (every struct is built from the defaults there), not a shard.
//!
//! Each field names its Kafka key once, in the macros below; the key table
//! (`keys.rs`) still holds the defaults, bounds and documentation.

use std::collections::BTreeMap;

use super::keys::{broker_key, topic_key};

/// A setting's text parsed into its field's type.
pub trait FromSetting: Sized {
    fn from_setting(text: &str) -> Option<Self>;
}

impl FromSetting for i64 {
    fn from_setting(text: &str) -> Option<Self> {
        text.trim().parse().ok()
    }
}

impl FromSetting for String {
    fn from_setting(text: &str) -> Option<Self> {
        Some(text.trim().to_string())
    }
}

impl FromSetting for bool {
    fn from_setting(text: &str) -> Option<Self> {
        match text.trim() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }
    }
}

/// `cleanup.policy`: which of Kafka's two policies apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cleanup {
    pub delete: bool,
    pub compact: bool,
}

impl FromSetting for Cleanup {
    fn from_setting(text: &str) -> Option<Self> {
        let mut c = Cleanup { delete: false, compact: false };
        for item in super::list_items(text) {
            match item {
                "delete" => c.delete = true,
                "compact" => c.compact = true,
                _ => return None,
            }
        }
        (c.delete || c.compact).then_some(c)
    }
}

/// `message.timestamp.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

impl FromSetting for TimestampType {
    fn from_setting(text: &str) -> Option<Self> {
        match text.trim() {
            "CreateTime" => Some(Self::CreateTime),
            "LogAppendTime" => Some(Self::LogAppendTime),
            _ => None,
        }
    }
}

/// `compression.type`, as its key spells it (`producer`, `uncompressed`
/// or a codec).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressionType(&'static str);

impl CompressionType {
    /// The value as Kafka spells it.
    pub fn name(&self) -> &'static str {
        self.0
    }
}

impl FromSetting for CompressionType {
    fn from_setting(text: &str) -> Option<Self> {
        ["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"]
            .into_iter()
            .find(|n| *n == text.trim())
            .map(CompressionType)
    }
}

/// The value of `key` from `text`, else its default (stored values are
/// validated before they are stored, so this is the rare damaged one).
fn parse_or_default<T: FromSetting>(key: &str, text: &str, default: &str) -> T {
    T::from_setting(text)
        .or_else(|| T::from_setting(default))
        .unwrap_or_else(|| panic!("the default of {key} parses as its type"))
}

macro_rules! broker_settings {
    ($($(#[$doc:meta])* $field:ident: $ty:ty = $key:literal,)*) => {
        /// The broker settings read at run time, parsed from their layers.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Broker {
            $($(#[$doc])* pub $field: $ty,)*
            /// What a topic without overrides works under.
            pub topic_defaults: TopicSettings,
        }

        impl Broker {
            /// Parses every field from `get`, the effective text of a key.
            pub fn resolve<'a>(get: impl Fn(&'static str) -> &'a str) -> Self {
                Self {
                    $($field: {
                        let default = broker_key($key).expect(concat!($key, " is a broker key")).default;
                        parse_or_default($key, get($key), default)
                    },)*
                    topic_defaults: TopicSettings::resolve(&get),
                }
            }
        }
    };
}

macro_rules! topic_settings {
    ($($(#[$doc:meta])* $field:ident: $ty:ty = $key:literal,)*) => {
        /// The settings a topic's partitions and its produce path work
        /// under: the broker's defaults with the topic's overrides.
        #[derive(Debug, Clone, PartialEq)]
        pub struct TopicSettings {
            $($(#[$doc])* pub $field: $ty,)*
        }

        /// A topic's own overrides, parsed: `None` where the broker's
        /// default applies.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct TopicOverrides {
            $($field: Option<$ty>,)*
        }

        impl TopicSettings {
            /// The defaults: each topic key's broker key, from `get`.
            fn resolve<'a>(get: &impl Fn(&'static str) -> &'a str) -> Self {
                Self {
                    $($field: {
                        let broker = topic_key($key).expect(concat!($key, " is a topic key")).broker;
                        let default = broker_key(broker).expect("a topic key falls back to a broker key").default;
                        parse_or_default($key, get(broker), default)
                    },)*
                }
            }

            /// These settings under a topic's overrides.
            pub fn with(&self, o: &TopicOverrides) -> Self {
                Self { $($field: o.$field.unwrap_or(self.$field),)* }
            }
        }

        impl TopicOverrides {
            /// Parses a topic's config map (validated when it was set);
            /// keys it does not know, or values that do not parse, leave
            /// the default.
            pub fn parse(configs: &BTreeMap<String, String>) -> Self {
                let mut o = Self::default();
                for (k, v) in configs {
                    match k.as_str() {
                        $($key => o.$field = <$ty>::from_setting(v),)*
                        _ => {}
                    }
                }
                o
            }
        }
    };
}

broker_settings! {
    num_partitions: i64 = "num.partitions",
    auto_create_topics: bool = "auto.create.topics.enable",
    default_replication_factor: i64 = "default.replication.factor",
    socket_request_max_bytes: i64 = "socket.request.max.bytes",
    message_decompressed_max_bytes: i64 = "message.decompressed.max.bytes",
    queued_max_request_bytes: i64 = "queued.max.request.bytes",
    connections_max_idle_ms: i64 = "connections.max.idle.ms",
    group_member_metadata_max_bytes: i64 = "group.member.metadata.max.bytes",
    fetch_max_bytes: i64 = "fetch.max.bytes",
    max_request_partition_size_limit: i64 = "max.request.partition.size.limit",
    segment_recycle: bool = "log.segment.recycle",
    hw_checkpoint_interval_ms: i64 = "replica.high.watermark.checkpoint.interval.ms",
    replica_lag_time_max_ms: i64 = "replica.lag.time.max.ms",
    auto_leader_rebalance: bool = "auto.leader.rebalance.enable",
    leader_imbalance_check_interval_s: i64 = "leader.imbalance.check.interval.seconds",
    leader_imbalance_percentage: i64 = "leader.imbalance.per.broker.percentage",
    replica_fetch_wait_max_ms: i64 = "replica.fetch.wait.max.ms",
    replica_fetch_max_bytes: i64 = "replica.fetch.max.bytes",
    replica_fetch_response_max_bytes: i64 = "replica.fetch.response.max.bytes",
    leader_replication_throttled_rate: i64 = "leader.replication.throttled.rate",
    follower_replication_throttled_rate: i64 = "follower.replication.throttled.rate",
    heartbeat_interval_ms: i64 = "broker.heartbeat.interval.ms",
    session_timeout_ms: i64 = "broker.session.timeout.ms",
    retention_check_interval_ms: i64 = "log.retention.check.interval.ms",
    producer_id_expiration_ms: i64 = "producer.id.expiration.ms",
    group_initial_rebalance_delay_ms: i64 = "group.initial.rebalance.delay.ms",
    group_min_session_timeout_ms: i64 = "group.min.session.timeout.ms",
    group_max_session_timeout_ms: i64 = "group.max.session.timeout.ms",
    group_max_size: i64 = "group.max.size",
    offsets_topic_num_partitions: i64 = "offsets.topic.num.partitions",
    offsets_topic_segment_bytes: i64 = "offsets.topic.segment.bytes",
    offsets_topic_replication_factor: i64 = "offsets.topic.replication.factor",
    /// `broker.rack`, empty when unset.
    rack: String = "broker.rack",
    offsets_retention_minutes: i64 = "offsets.retention.minutes",
    offsets_retention_check_interval_ms: i64 = "offsets.retention.check.interval.ms",
    offset_metadata_max_bytes: i64 = "offset.metadata.max.bytes",
}

topic_settings! {
    cleanup: Cleanup = "cleanup.policy",
    compression: CompressionType = "compression.type",
    retention_ms: i64 = "retention.ms",
    retention_bytes: i64 = "retention.bytes",
    segment_bytes: i64 = "segment.bytes",
    segment_ms: i64 = "segment.ms",
    index_interval_bytes: i64 = "index.interval.bytes",
    preallocate: bool = "preallocate",
    delete_retention_ms: i64 = "delete.retention.ms",
    flush_messages: i64 = "flush.messages",
    flush_ms: i64 = "flush.ms",
    max_message_bytes: i64 = "max.message.bytes",
    timestamp_type: TimestampType = "message.timestamp.type",
    min_insync_replicas: i64 = "min.insync.replicas",
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::keys::{BROKER_KEYS, TOPIC_KEYS};

    fn defaults() -> Broker {
        Broker::resolve(|k| broker_key(k).expect("known").default)
    }

    #[test]
    fn every_field_resolves_from_the_defaults() {
        let b = defaults();
        assert_eq!(b.num_partitions, 1);
        assert!(b.auto_create_topics);
        assert_eq!(b.group_min_session_timeout_ms, 6000);
        let t = &b.topic_defaults;
        assert_eq!((t.segment_bytes, t.retention_ms, t.retention_bytes), (1 << 30, 604_800_000, -1));
        assert_eq!(t.cleanup, Cleanup { delete: true, compact: false });
        assert_eq!(t.compression.name(), "producer");
        assert_eq!(t.timestamp_type, TimestampType::CreateTime);
        // Every topic key has a field: a new key must be added here too.
        let fields = TopicOverrides::parse(&TOPIC_KEYS.iter().map(|k| (k.name.to_string(), "1".to_string())).collect());
        assert_eq!(fields.retention_ms, Some(1));
        assert!(BROKER_KEYS.len() > 30);
    }

    #[test]
    fn overrides_replace_the_defaults_they_name() {
        let b = defaults();
        let configs: BTreeMap<String, String> = [
            ("cleanup.policy", "compact,delete"),
            ("retention.ms", "5000"),
            ("message.timestamp.type", "LogAppendTime"),
            ("segment.bytes", "not a number"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let t = b.topic_defaults.with(&TopicOverrides::parse(&configs));
        assert_eq!(t.cleanup, Cleanup { delete: true, compact: true });
        assert_eq!(t.retention_ms, 5000);
        assert_eq!(t.timestamp_type, TimestampType::LogAppendTime);
        assert_eq!(t.segment_bytes, 1 << 30, "a value that does not parse leaves the default");
        assert_eq!(t.flush_messages, 1);
        // Validation drops empty list items; so does the parse.
        let trailing = TopicOverrides::parse(&[("cleanup.policy".to_string(), "compact, ".to_string())].into());
        assert_eq!(b.topic_defaults.with(&trailing).cleanup, Cleanup { delete: false, compact: true });
    }
}
