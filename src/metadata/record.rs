//! Records of the metadata log, encoded with rkyv and framed as
//! `[len: u32][crc32c: u32][payload]` so that a torn tail is detected.

use rkyv::rancor;
use thiserror::Error;

/// One change to cluster metadata. Replaying all records in order rebuilds
/// the snapshot.
#[derive(
    Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, serde::Serialize, serde::Deserialize,
)]
pub enum MetaRecord {
    /// A topic was created with these partition leaders and configs (one
    /// replica each; written before replica assignments existed).
    TopicCreated { name: String, id: [u8; 16], leaders: Vec<i32>, configs: Vec<(String, String)> },
    /// A topic was deleted.
    TopicDeleted { name: String },
    /// Partitions were added to a topic (their leaders, in partition order;
    /// one replica each, as `TopicCreated`).
    PartitionsAdded { name: String, leaders: Vec<i32> },
    /// A partition moved to another node (the shard count changed).
    PartitionMoved { name: String, partition: i32, leader: i32 },
    /// Producer ids below `next` have been handed out (InitProducerId).
    ProducerIdsAllocated { next: i64 },
    /// A topic's config overrides were replaced by these (IncrementalAlterConfigs).
    /// New variants go last: the discriminants of stored records must not move.
    TopicConfigsSet { name: String, configs: Vec<(String, String)> },
    /// The dynamic configs of a broker resource (`""`: the cluster-wide
    /// default, `"N"`: node N) were replaced by these.
    BrokerConfigsSet { resource: String, configs: Vec<(String, String)> },
    /// A topic was created with these replica assignments (per partition,
    /// leader first) and configs.
    TopicPlaced { name: String, id: [u8; 16], replicas: Vec<Vec<i32>>, configs: Vec<(String, String)> },
    /// Partitions were added to a topic with these replica assignments.
    PartitionsPlaced { name: String, replicas: Vec<Vec<i32>> },
    /// A partition's replicas changed (nodes that no longer exist replaced).
    PartitionReassigned { name: String, partition: i32, replicas: Vec<i32> },
    /// A broker started with `shards` shards, reachable at `host`, shard k
    /// on `port + k`: it keeps the node ids it had, and new shards get new
    /// ones (`ClusterMeta::register_broker`).
    BrokerRegistered { broker: i32, shards: i32, host: String, port: u16, rack: Option<String> },
    /// A broker stopped (controlled shutdown) or missed its session.
    BrokerFenced { broker: i32 },
    /// A fenced broker heartbeats again.
    BrokerUnfenced { broker: i32 },
    /// A stopped broker was decommissioned (UnregisterBroker): it is no
    /// longer listed; its node ids are kept for it should it register again.
    BrokerUnregistered { broker: i32 },
    /// A node that can vote (`process.roles` with `controller`) listens for
    /// the quorum at `addr`: AddRaftVoter may make it a voter (Kafka's
    /// RegisterControllerRecord). An empty `addr`: it no longer can (it
    /// started as `process.roles=broker`).
    ControllerRegistered { id: i32, addr: String },
    /// Topic `name`'s partitions' leader epochs (a snapshot's image: in the
    /// log, a change of leader bumps its partition's epoch).
    LeaderEpochs { name: String, epochs: Vec<i32> },
    /// A partition's leader had its ISR changed (Kafka's AlterPartition):
    /// applied only while `leader_epoch` is still the partition's.
    IsrChanged { name: String, partition: i32, leader_epoch: i32, isr: Vec<i32> },
    /// Topic `name`'s partitions' ISRs (a snapshot's image).
    Isrs { name: String, isr: Vec<Vec<i32>> },
    /// ElectLeaders chose `leader` for a partition, with this ISR (the
    /// leader epoch goes up by one).
    LeaderElected { name: String, partition: i32, leader: i32, isr: Vec<i32> },
    /// AlterPartitionReassignments: a partition starts moving to `target`.
    ReassignmentStarted { name: String, partition: i32, target: Vec<i32> },
    /// AlterPartitionReassignments with no replicas: a move is cancelled.
    ReassignmentCancelled { name: String, partition: i32 },
    /// A move under way (a snapshot's image).
    Reassigning { name: String, partition: i32, target: Vec<i32>, original: Vec<i32> },
}

/// A record frame that does not check out.
#[derive(Debug, Error)]
pub enum RecordError {
    #[error("record frame truncated")]
    Truncated,
    #[error("record checksum mismatch")]
    Checksum,
    #[error("record payload undecodable: {0}")]
    Decode(String),
}

const FRAME_HEADER: usize = 8;

/// Appends the framed encoding of `rec` to `out` (how the file log wrote
/// records; tests write old-format logs with it).
#[cfg(test)]
pub fn encode(rec: &MetaRecord, out: &mut Vec<u8>) {
    let payload = rkyv::to_bytes::<rancor::Error>(rec).expect("metadata records always serialize");
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&crate::crc::crc32c(&payload).to_be_bytes());
    out.extend_from_slice(&payload);
}

/// Decodes the record at the start of `buf`; returns it and its frame size.
pub fn decode(buf: &[u8]) -> Result<(MetaRecord, usize), RecordError> {
    if buf.len() < FRAME_HEADER {
        return Err(RecordError::Truncated);
    }
    let len = u32::from_be_bytes(buf[0..4].try_into().expect("4")) as usize;
    let crc = u32::from_be_bytes(buf[4..8].try_into().expect("4"));
    let payload = buf.get(FRAME_HEADER..FRAME_HEADER + len).ok_or(RecordError::Truncated)?;
    if crate::crc::crc32c(payload) != crc {
        return Err(RecordError::Checksum);
    }
    // rkyv needs its input aligned; the frame inside the file is not.
    let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(len);
    aligned.extend_from_slice(payload);
    let rec =
        rkyv::from_bytes::<MetaRecord, rancor::Error>(&aligned).map_err(|e| RecordError::Decode(e.to_string()))?;
    Ok((rec, FRAME_HEADER + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_torn_tail() {
        let recs = vec![
            MetaRecord::TopicCreated {
                name: "t".into(),
                id: [7; 16],
                leaders: vec![0, 1],
                configs: vec![("retention.ms".into(), "1".into())],
            },
            MetaRecord::PartitionsAdded { name: "t".into(), leaders: vec![0] },
            MetaRecord::TopicDeleted { name: "t".into() },
            MetaRecord::TopicPlaced { name: "u".into(), id: [8; 16], replicas: vec![vec![1, 0]], configs: vec![] },
            MetaRecord::PartitionsPlaced { name: "u".into(), replicas: vec![vec![0, 1]] },
            MetaRecord::PartitionReassigned { name: "u".into(), partition: 1, replicas: vec![1] },
            MetaRecord::BrokerConfigsSet {
                resource: String::new(),
                configs: vec![("log.retention.ms".into(), "9".into())],
            },
        ];
        let mut buf = Vec::new();
        for r in &recs {
            encode(r, &mut buf);
        }
        let mut pos = 0;
        let mut out = Vec::new();
        while pos < buf.len() {
            let (r, n) = decode(&buf[pos..]).unwrap();
            out.push(r);
            pos += n;
        }
        assert_eq!(out, recs);
        let (_, first) = decode(&buf).unwrap();
        assert!(matches!(decode(&buf[..first - 1]), Err(RecordError::Truncated)));
        let mut bad = buf.clone();
        bad[10] ^= 1;
        assert!(matches!(decode(&bad), Err(RecordError::Checksum)));
        assert!(matches!(decode(&buf[..5]), Err(RecordError::Truncated)));
    }
}
