//! The settings sluice knows, under Kafka's key names, with what
//! DescribeConfigs reports about each: Kafka's default, its config type, the
//! values it takes, whether Kafka 4.0 lets it change on a running broker
//! (and sluice applies the change), and a line of documentation.

/// Kafka's `ConfigType` wire values (DescribeConfigs v3+).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    List = 7,
}

/// The values a key takes, for validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An integer in `min..=max` (Kafka's validators; INT keys stop at i32).
    Int {
        min: i64,
        max: i64,
    },
    Bool,
    /// One of these words (Kafka's validators list them).
    OneOf(&'static [&'static str]),
    /// A comma-separated list, each item one of these words, at least one.
    ListOf(&'static [&'static str]),
    /// Free text (read-only keys that describe the broker).
    Text,
    /// Replicas a throttle applies to: empty, `*`, or `partition:node`
    /// pairs separated by commas.
    Replicas,
}

/// An INT key of at least `min`.
const fn int(min: i64) -> Kind {
    Kind::Int { min, max: i32::MAX as i64 }
}

/// A LONG key of at least `min`.
const fn long(min: i64) -> Kind {
    Kind::Int { min, max: i64::MAX }
}

const CLEANUP_POLICIES: Kind = Kind::ListOf(&["delete", "compact"]);
const COMPRESSION_TYPES: Kind = Kind::OneOf(&["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"]);
const TIMESTAMP_TYPES: Kind = Kind::OneOf(&["CreateTime", "LogAppendTime"]);

/// Whether a running broker takes a new value (IncrementalAlterConfigs /
/// AlterConfigs on the broker resource) or only at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    Dynamic,
    ReadOnly,
}

/// One broker key.
#[derive(Debug, Clone, Copy)]
pub struct BrokerKey {
    pub name: &'static str,
    pub default: &'static str,
    pub kind: Kind,
    pub ty: ConfigType,
    pub update: Update,
    pub doc: &'static str,
}

/// One topic key and the broker key it defaults from.
#[derive(Debug, Clone, Copy)]
pub struct TopicKey {
    pub name: &'static str,
    pub broker: &'static str,
    pub kind: Kind,
    pub ty: ConfigType,
    pub doc: &'static str,
}

use ConfigType as T;
use Update::{Dynamic as D, ReadOnly as R};

const fn b(
    name: &'static str,
    default: &'static str,
    kind: Kind,
    ty: ConfigType,
    update: Update,
    doc: &'static str,
) -> BrokerKey {
    BrokerKey { name, default, kind, ty, update, doc }
}

/// Keys that describe this broker's own process (listeners, directories,
/// ids): reported read-only, with the values it runs with.
pub const IDENTITY_KEYS: &[BrokerKey] = &[
    b("node.id", "", Kind::Text, T::Int, R, "The node id of this shard (each shard is a node)."),
    b(
        "broker.id",
        "",
        Kind::Text,
        T::Int,
        R,
        "The sluice broker (process) this node is a shard of: its node.id in a cluster, 0 for a single broker.",
    ),
    b(
        "listeners",
        "",
        Kind::Text,
        T::String,
        R,
        "The address this node listens on (--host, --port plus the shard index).",
    ),
    b(
        "advertised.listeners",
        "",
        Kind::Text,
        T::String,
        R,
        "The address clients are told to reach this node at (--advertised-host).",
    ),
    b("log.dirs", "", Kind::Text, T::String, R, "The directory holding every partition's log (--data-dir)."),
];

/// Broker keys with Kafka's defaults (sluice's own keys say so).
pub const BROKER_KEYS: &[BrokerKey] = &[
    b("num.partitions", "1", int(1), T::Int, R, "Partitions of a topic created without a count."),
    b(
        "auto.create.topics.enable",
        "true",
        Kind::Bool,
        T::Boolean,
        R,
        "Create a topic a client asks metadata for or produces to.",
    ),
    b("default.replication.factor", "1", int(1), T::Int, R, "Replication factor of a topic created without one."),
    b(
        "message.max.bytes",
        "1048588",
        int(0),
        T::Int,
        D,
        "Largest record batch a produce may append (topic: max.message.bytes).",
    ),
    b("socket.request.max.bytes", "104857600", int(1), T::Int, R, "Largest request frame the broker reads."),
    b(
        "message.decompressed.max.bytes",
        "67108864",
        int(0),
        T::Int,
        R,
        "sluice's own: the most bytes one batch's records may decompress to; a batch that expands further is refused with MESSAGE_TOO_LARGE.",
    ),
    b(
        "queued.max.request.bytes",
        "268435456",
        long(-1),
        T::Long,
        R,
        "Bytes of request bodies of 64 KiB and more that one shard holds at once (Kafka's default, -1, bounds nothing; sluice bounds each shard).",
    ),
    b(
        "connections.max.idle.ms",
        "600000",
        long(-1),
        T::Long,
        R,
        "Close a connection with no request nor response for this long.",
    ),
    b(
        "group.member.metadata.max.bytes",
        "4194304",
        int(0),
        T::Int,
        R,
        "sluice's own: the most protocol metadata one JoinGroup member brings, and assignment one SyncGroup hands one member.",
    ),
    b(
        "fetch.max.bytes",
        "57671680",
        int(1024),
        T::Int,
        R,
        "The most record bytes one fetch response carries (beyond one batch).",
    ),
    b(
        "max.request.partition.size.limit",
        "2000",
        int(1),
        T::Int,
        R,
        "The most partitions one DescribeTopicPartitions response holds.",
    ),
    b(
        "log.segment.bytes",
        "1073741824",
        int(14),
        T::Int,
        D,
        "Segment size at which a partition rolls a new segment (topic: segment.bytes).",
    ),
    b(
        "log.roll.ms",
        "604800000",
        long(1),
        T::Long,
        D,
        "Age at which a partition rolls a new segment (topic: segment.ms).",
    ),
    b(
        "log.index.interval.bytes",
        "4096",
        int(0),
        T::Int,
        D,
        "Bytes of log between two offset index entries (topic: index.interval.bytes).",
    ),
    b(
        "log.preallocate",
        "false",
        Kind::Bool,
        T::Boolean,
        D,
        "Allocate a new segment's file whole when it is created (topic: preallocate).",
    ),
    b(
        "log.segment.recycle",
        "true",
        Kind::Bool,
        T::Boolean,
        R,
        "sluice's own: keep one segment file retention deletes, zeroed, for the partition's next segment.",
    ),
    b(
        "log.cleaner.delete.retention.ms",
        "86400000",
        long(0),
        T::Long,
        D,
        "How long compaction keeps tombstones (topic: delete.retention.ms).",
    ),
    b(
        "log.flush.interval.messages",
        "1",
        long(1),
        T::Long,
        D,
        "Records appended between two syncs; sluice's default, 1, syncs every write before acknowledging it (topic: flush.messages).",
    ),
    b(
        "log.flush.interval.ms",
        "9223372036854775807",
        long(0),
        T::Long,
        D,
        "The longest a written record waits for a sync (topic: flush.ms).",
    ),
    b(
        "log.retention.ms",
        "604800000",
        long(-1),
        T::Long,
        D,
        "Age after which a segment is deleted, -1 for no limit (topic: retention.ms).",
    ),
    b(
        "log.retention.bytes",
        "-1",
        long(i64::MIN),
        T::Long,
        D,
        "Size above which a partition's oldest segments are deleted (topic: retention.bytes).",
    ),
    b(
        "broker.heartbeat.interval.ms",
        "2000",
        long(1),
        T::Int,
        R,
        "How often a broker tells the metadata quorum's leader it is alive.",
    ),
    b(
        "broker.session.timeout.ms",
        "9000",
        long(1),
        T::Int,
        R,
        "How long the quorum's leader waits for a broker's heartbeat before it fences the broker.",
    ),
    b(
        "auto.leader.rebalance.enable",
        "true",
        Kind::Bool,
        T::Boolean,
        R,
        "Give partitions back to their preferred replica when a broker leads too few of its own (checked by the quorum's leader).",
    ),
    b(
        "leader.imbalance.check.interval.seconds",
        "300",
        long(1),
        T::Long,
        R,
        "How often the quorum's leader checks the preferred-leader balance.",
    ),
    b(
        "leader.imbalance.per.broker.percentage",
        "10",
        int(0),
        T::Int,
        R,
        "Share of a broker's preferred partitions led elsewhere above which they go back.",
    ),
    b(
        "replica.lag.time.max.ms",
        "30000",
        long(1),
        T::Long,
        R,
        "How long a follower may go without catching up to its leader before the leader drops it from the ISR.",
    ),
    b(
        "replica.fetch.wait.max.ms",
        "500",
        int(1),
        T::Int,
        R,
        "How long a follower's fetch waits at the leader for new records.",
    ),
    b(
        "replica.fetch.max.bytes",
        "1048576",
        int(1),
        T::Int,
        R,
        "Bytes a follower asks for per partition in one fetch (at least one batch is sent).",
    ),
    b(
        "replica.fetch.response.max.bytes",
        "10485760",
        int(1),
        T::Int,
        R,
        "Bytes a follower asks for in one fetch, over all partitions.",
    ),
    b(
        "leader.replication.throttled.rate",
        "9223372036854775807",
        long(1),
        T::Long,
        D,
        "Bytes per second a leader sends to the throttled replicas (those a topic's leader.replication.throttled.replicas lists, out of the ISR), split evenly between the broker's shards.",
    ),
    b(
        "follower.replication.throttled.rate",
        "9223372036854775807",
        long(1),
        T::Long,
        D,
        "Bytes per second a follower takes for its throttled replicas (those a topic's follower.replication.throttled.replicas lists, out of the ISR), split evenly between the broker's shards.",
    ),
    b(
        "leader.replication.throttled.replicas",
        "",
        Kind::Replicas,
        T::List,
        D,
        "Default of the topic key for topics that set none (Kafka has no broker key): set on a broker, it lists the replicas (partition:node, or *) that broker throttles; none by default.",
    ),
    b(
        "follower.replication.throttled.replicas",
        "",
        Kind::Replicas,
        T::List,
        D,
        "Default of the topic key for topics that set none (Kafka has no broker key): set on a broker, it lists the replicas (partition:node, or *) that broker throttles; none by default.",
    ),
    b(
        "replica.high.watermark.checkpoint.interval.ms",
        "5000",
        long(1),
        T::Long,
        R,
        "How often every partition's high watermark is written to replication-offset-checkpoint.",
    ),
    b(
        "log.retention.check.interval.ms",
        "300000",
        long(1),
        T::Long,
        R,
        "How often retention and compaction look at every partition.",
    ),
    b(
        "log.cleanup.policy",
        "delete",
        CLEANUP_POLICIES,
        T::List,
        D,
        "delete (retention), compact (keep each key's latest record) or both (topic: cleanup.policy).",
    ),
    b(
        "log.message.timestamp.type",
        "CreateTime",
        TIMESTAMP_TYPES,
        T::String,
        D,
        "CreateTime keeps the producer's timestamps, LogAppendTime stamps the broker's (topic: message.timestamp.type).",
    ),
    b(
        "compression.type",
        "producer",
        COMPRESSION_TYPES,
        T::String,
        D,
        "Codec batches are stored with; producer keeps the producer's (topic: compression.type).",
    ),
    b(
        "unclean.leader.election.enable",
        "false",
        Kind::Bool,
        T::Boolean,
        D,
        "Let a replica outside the ISR lead when none in sync is alive; applied as a topic config or the cluster-wide dynamic default (topic: unclean.leader.election.enable).",
    ),
    b(
        "min.insync.replicas",
        "1",
        int(1),
        T::Int,
        D,
        "Replicas that must hold an acks=all write (topic: min.insync.replicas).",
    ),
    b(
        "producer.id.expiration.ms",
        "86400000",
        int(1),
        T::Int,
        D,
        "How long an idempotent producer's state outlives its last write.",
    ),
    b(
        "group.initial.rebalance.delay.ms",
        "3000",
        int(0),
        T::Int,
        R,
        "How long the first rebalance of an empty group waits for more members.",
    ),
    b("group.min.session.timeout.ms", "6000", int(0), T::Int, R, "The shortest session timeout a member may ask for."),
    b(
        "group.max.session.timeout.ms",
        "1800000",
        int(0),
        T::Int,
        R,
        "The longest session timeout a member may ask for.",
    ),
    b("group.max.size", "2147483647", int(1), T::Int, R, "The most members one group takes."),
    b(
        "offsets.topic.num.partitions",
        "50",
        int(1),
        T::Int,
        R,
        "Partitions of __consumer_offsets, fixed when it is first created.",
    ),
    b(
        "broker.rack",
        "",
        Kind::Text,
        T::String,
        R,
        "The rack of this broker (all its shards), reported to clients in Metadata and DescribeCluster.",
    ),
    b(
        "offsets.topic.replication.factor",
        "3",
        int(1),
        T::Int,
        R,
        "Replicas of each __consumer_offsets partition, capped at the nodes there are when it is created.",
    ),
    b("offsets.topic.segment.bytes", "104857600", int(1), T::Int, R, "Segment size of __consumer_offsets."),
    b("offsets.retention.minutes", "10080", int(1), T::Int, R, "How long an empty group's committed offsets are kept."),
    b(
        "offsets.retention.check.interval.ms",
        "600000",
        long(1),
        T::Long,
        R,
        "How often expired committed offsets are looked for.",
    ),
    b("offset.metadata.max.bytes", "4096", int(0), T::Int, R, "The most metadata one committed offset may carry."),
];

const fn t(name: &'static str, broker: &'static str, kind: Kind, ty: ConfigType, doc: &'static str) -> TopicKey {
    TopicKey { name, broker, kind, ty, doc }
}

/// Topic keys: each defaults from its broker key.
pub const TOPIC_KEYS: &[TopicKey] = &[
    t(
        "cleanup.policy",
        "log.cleanup.policy",
        CLEANUP_POLICIES,
        T::List,
        "delete (retention), compact (keep each key's latest record) or both.",
    ),
    t(
        "compression.type",
        "compression.type",
        COMPRESSION_TYPES,
        T::String,
        "Codec this topic's batches are stored with; producer keeps the producer's.",
    ),
    t("retention.ms", "log.retention.ms", long(-1), T::Long, "Age after which a segment is deleted, -1 for no limit."),
    t(
        "retention.bytes",
        "log.retention.bytes",
        long(i64::MIN),
        T::Long,
        "Size above which a partition's oldest segments are deleted, -1 for no limit.",
    ),
    t("segment.bytes", "log.segment.bytes", int(14), T::Int, "Segment size at which a partition rolls a new segment."),
    t("segment.ms", "log.roll.ms", long(1), T::Long, "Age at which a partition rolls a new segment."),
    t(
        "index.interval.bytes",
        "log.index.interval.bytes",
        int(0),
        T::Int,
        "Bytes of log between two offset index entries.",
    ),
    t(
        "preallocate",
        "log.preallocate",
        Kind::Bool,
        T::Boolean,
        "Allocate a new segment's file whole when it is created.",
    ),
    t(
        "delete.retention.ms",
        "log.cleaner.delete.retention.ms",
        long(0),
        T::Long,
        "How long compaction keeps tombstones.",
    ),
    t(
        "flush.messages",
        "log.flush.interval.messages",
        long(1),
        T::Long,
        "Records appended between two syncs (1: every write synced before its acknowledgement).",
    ),
    t("flush.ms", "log.flush.interval.ms", long(0), T::Long, "The longest a written record waits for a sync."),
    t("max.message.bytes", "message.max.bytes", int(0), T::Int, "Largest record batch a produce may append."),
    t(
        "message.timestamp.type",
        "log.message.timestamp.type",
        TIMESTAMP_TYPES,
        T::String,
        "CreateTime keeps the producer's timestamps, LogAppendTime stamps the broker's.",
    ),
    t("min.insync.replicas", "min.insync.replicas", int(1), T::Int, "Replicas that must hold an acks=all write."),
    t(
        "leader.replication.throttled.replicas",
        "leader.replication.throttled.replicas",
        Kind::Replicas,
        T::List,
        "Replicas (partition:node, or *) whose leaders send them at most leader.replication.throttled.rate while out of the ISR.",
    ),
    t(
        "follower.replication.throttled.replicas",
        "follower.replication.throttled.replicas",
        Kind::Replicas,
        T::List,
        "Replicas (partition:node, or *) that take at most follower.replication.throttled.rate while out of the ISR.",
    ),
    t(
        "unclean.leader.election.enable",
        "unclean.leader.election.enable",
        Kind::Bool,
        T::Boolean,
        "Let a replica outside the ISR lead when no replica in sync is alive (acknowledged records may be lost).",
    ),
];

/// The broker key `name`, if sluice knows it.
pub fn broker_key(name: &str) -> Option<&'static BrokerKey> {
    BROKER_KEYS.iter().chain(IDENTITY_KEYS).find(|k| k.name == name)
}

/// The topic key `name`, if sluice knows it.
pub fn topic_key(name: &str) -> Option<&'static TopicKey> {
    TOPIC_KEYS.iter().find(|k| k.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_topic_key_defaults_from_a_dynamic_broker_key_of_its_type() {
        for k in TOPIC_KEYS {
            let b = broker_key(k.broker).unwrap_or_else(|| panic!("{} defaults from unknown {}", k.name, k.broker));
            assert_eq!(b.update, Update::Dynamic, "{}: Kafka lets {} change at run time", k.name, b.name);
            assert_eq!((b.ty, b.kind), (k.ty, k.kind), "{} and {} disagree", k.name, b.name);
        }
    }

    #[test]
    fn names_are_unique_and_defaults_valid() {
        let mut names: Vec<_> = BROKER_KEYS.iter().chain(IDENTITY_KEYS).map(|k| k.name).collect();
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
        for k in BROKER_KEYS {
            assert!(super::super::check_value(k.name, k.default, k.kind).is_ok(), "{}", k.name);
        }
    }
}
