//! The API version table sluice advertises in ApiVersions: exactly the APIs
//! that are implemented, each over the range that is handled and tested.

use kafka_protocol::messages::ApiKey;

/// One advertised API and its version range.
#[derive(Debug, Clone, Copy)]
pub struct Supported {
    /// The API.
    pub key: ApiKey,
    /// Lowest advertised version.
    pub min: i16,
    /// Highest advertised version.
    pub max: i16,
    /// Lowest version actually served. Produce advertises from v0 because old
    /// librdkafka only enables features whose ranges overlap its own (as Kafka
    /// 4.0 does, KAFKA-18659), but message formats v0/v1 are not accepted.
    pub min_served: i16,
}

const fn api(key: ApiKey, min: i16, max: i16) -> Supported {
    Supported { key, min, max, min_served: min }
}

/// Every API sluice serves.
pub const SUPPORTED: &[Supported] = &[
    Supported { key: ApiKey::Produce, min: 0, max: 12, min_served: 3 },
    api(ApiKey::Fetch, 4, 17),
    api(ApiKey::ListOffsets, 1, 10),
    api(ApiKey::OffsetForLeaderEpoch, 2, 4),
    api(ApiKey::Metadata, 0, 13),
    api(ApiKey::ApiVersions, 0, 4),
    api(ApiKey::CreateTopics, 2, 7),
    api(ApiKey::DeleteTopics, 1, 6),
    api(ApiKey::DescribeConfigs, 1, 4),
    api(ApiKey::CreatePartitions, 0, 3),
    api(ApiKey::DescribeCluster, 0, 2),
    api(ApiKey::DescribeQuorum, 0, 2),
    api(ApiKey::UnregisterBroker, 0, 0),
    api(ApiKey::ElectLeaders, 0, 2),
    api(ApiKey::AlterPartitionReassignments, 0, 0),
    api(ApiKey::ListPartitionReassignments, 0, 0),
    api(ApiKey::AddRaftVoter, 0, 0),
    api(ApiKey::RemoveRaftVoter, 0, 0),
    api(ApiKey::InitProducerId, 0, 5),
    api(ApiKey::DeleteRecords, 0, 2),
    api(ApiKey::FindCoordinator, 0, 6),
    api(ApiKey::JoinGroup, 0, 9),
    api(ApiKey::SyncGroup, 0, 5),
    api(ApiKey::Heartbeat, 0, 4),
    api(ApiKey::LeaveGroup, 0, 5),
    api(ApiKey::OffsetCommit, 2, 9),
    api(ApiKey::OffsetFetch, 1, 9),
    api(ApiKey::DescribeGroups, 0, 6),
    api(ApiKey::ListGroups, 0, 5),
    api(ApiKey::DeleteGroups, 0, 2),
    api(ApiKey::OffsetDelete, 0, 0),
    api(ApiKey::IncrementalAlterConfigs, 0, 1),
    api(ApiKey::AlterConfigs, 0, 2),
    api(ApiKey::AlterReplicaLogDirs, 1, 2),
    api(ApiKey::DescribeLogDirs, 1, 4),
    api(ApiKey::DescribeTopicPartitions, 0, 0),
];

/// The served range for `key`, if sluice implements it.
pub fn lookup(key: ApiKey) -> Option<&'static Supported> {
    SUPPORTED.iter().find(|s| s.key == key)
}

/// Whether `version` of `key` is served.
pub fn is_served(key: ApiKey, version: i16) -> bool {
    lookup(key).is_some_and(|s| version >= s.min_served && version <= s.max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_version_is_encodable_by_the_codec() {
        for s in SUPPORTED {
            let codec = s.key.valid_versions();
            assert!(s.min <= s.min_served && s.min_served <= s.max);
            assert!(
                s.min_served >= codec.min && s.max <= codec.max,
                "{:?} serves {}..={} but the codec knows {}..={}",
                s.key,
                s.min_served,
                s.max,
                codec.min,
                codec.max
            );
        }
    }
}
