//! The requests the harness sends, at fixed versions that every
//! Kafka-compatible broker serves, over the shared blocking client
//! (`sluice::client`: framing, version check, bounded response reads).

use std::net::TcpStream;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, CreateTopicsResponse, FetchRequest, FetchResponse, ListOffsetsRequest,
    ListOffsetsResponse, MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
pub use sluice::client::Conn;
use sluice::client::{ClientError, read_response};

/// Why a benchmark run stopped.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Client(#[from] ClientError),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol: {0}")]
    Protocol(String),
}

fn proto(e: impl std::fmt::Display) -> BenchError {
    BenchError::Protocol(e.to_string())
}

const CLIENT_ID: &str = "sluice-bench";
const CREATE_TOPICS_V: i16 = 4;
const METADATA_V: i16 = 4;
const PRODUCE_V: i16 = 7;
const FETCH_V: i16 = 4;
const LIST_OFFSETS_V: i16 = 1;
const TOPIC_ALREADY_EXISTS: i16 = 36;

/// Connects to `addr` (host:port).
pub fn connect(addr: &str) -> Result<Conn, BenchError> {
    Ok(Conn::connect(addr, CLIENT_ID)?)
}

/// The harness's requests, on a connection.
pub trait Requests {
    fn create_topic(&mut self, topic: &str, partitions: i32, configs: &[(String, String)]) -> Result<(), BenchError>;
    fn leaders(&mut self, topic: &str, partitions: i32) -> Result<Vec<String>, BenchError>;
    fn list_offsets(&mut self, topic: &str, partitions: &[i32], timestamp: i64) -> Result<Vec<(i32, i64)>, BenchError>;
    fn fetch(
        &mut self,
        topic: &str,
        partitions: &[(i32, i64)],
        max_wait_ms: i32,
    ) -> Result<Vec<(i32, i16, i64, Bytes)>, BenchError>;
    fn produce_request(&self, topic: &str, partition: i32, acks: i16, batch: &Bytes) -> BytesMut;
}

impl Requests for Conn {
    /// Creates `topic` unless it exists.
    fn create_topic(&mut self, topic: &str, partitions: i32, configs: &[(String, String)]) -> Result<(), BenchError> {
        let t = CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_num_partitions(partitions)
            .with_replication_factor(-1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(k.clone()))
                            .with_value(Some(StrBytes::from_string(v.clone())))
                    })
                    .collect(),
            );
        let req = CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(30_000);
        let resp: CreateTopicsResponse = self.send_at(req, CREATE_TOPICS_V)?;
        match resp.topics.first().map(|t| t.error_code) {
            Some(0) | Some(TOPIC_ALREADY_EXISTS) => Ok(()),
            other => Err(BenchError::Protocol(format!("CreateTopics failed: {other:?}"))),
        }
    }

    /// host:port of each partition's leader, by partition.
    fn leaders(&mut self, topic: &str, partitions: i32) -> Result<Vec<String>, BenchError> {
        let req = MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(topic.into())))),
        ]));
        let resp: MetadataResponse = self.send_at(req, METADATA_V)?;
        let t = resp.topics.first().ok_or_else(|| proto("no topic in Metadata"))?;
        (0..partitions)
            .map(|p| {
                let part = t
                    .partitions
                    .iter()
                    .find(|x| x.partition_index == p)
                    .ok_or_else(|| proto(format!("partition {p} missing")))?;
                let b = resp
                    .brokers
                    .iter()
                    .find(|b| b.node_id == part.leader_id)
                    .ok_or_else(|| proto(format!("leader of {p} unknown")))?;
                Ok(format!("{}:{}", b.host, b.port))
            })
            .collect()
    }

    /// The offset of each partition at `timestamp` (-2 earliest, -1 latest).
    fn list_offsets(&mut self, topic: &str, partitions: &[i32], timestamp: i64) -> Result<Vec<(i32, i64)>, BenchError> {
        let req = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
            ListOffsetsTopic::default().with_name(TopicName(StrBytes::from_string(topic.into()))).with_partitions(
                partitions
                    .iter()
                    .map(|&p| ListOffsetsPartition::default().with_partition_index(p).with_timestamp(timestamp))
                    .collect(),
            ),
        ]);
        let resp: ListOffsetsResponse = self.send_at(req, LIST_OFFSETS_V)?;
        let mut out = Vec::new();
        for t in resp.topics {
            for p in t.partitions {
                if p.error_code != 0 {
                    return Err(proto(format!("ListOffsets error {}", p.error_code)));
                }
                out.push((p.partition_index, p.offset));
            }
        }
        Ok(out)
    }

    /// One Fetch of `partitions` (partition, offset): (partition, error,
    /// high watermark, record bytes) per partition.
    fn fetch(
        &mut self,
        topic: &str,
        partitions: &[(i32, i64)],
        max_wait_ms: i32,
    ) -> Result<Vec<(i32, i16, i64, Bytes)>, BenchError> {
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(16 << 20)
            .with_topics(vec![
                FetchTopic::default().with_topic(TopicName(StrBytes::from_string(topic.into()))).with_partitions(
                    partitions
                        .iter()
                        .map(|&(p, o)| {
                            FetchPartition::default()
                                .with_partition(p)
                                .with_fetch_offset(o)
                                .with_partition_max_bytes(4 << 20)
                        })
                        .collect(),
                ),
            ]);
        let resp: FetchResponse = self.send_at(req, FETCH_V)?;
        Ok(resp
            .responses
            .into_iter()
            .flat_map(|t| t.partitions)
            .map(|p| (p.partition_index, p.error_code, p.high_watermark, p.records.unwrap_or_default()))
            .collect())
    }

    /// A Produce request frame carrying `batch` to one partition.
    fn produce_request(&self, topic: &str, partition: i32, acks: i16, batch: &Bytes) -> BytesMut {
        let req = ProduceRequest::default().with_acks(acks).with_timeout_ms(30_000).with_topic_data(vec![
            TopicProduceData::default().with_name(TopicName(StrBytes::from_string(topic.into()))).with_partition_data(
                vec![PartitionProduceData::default().with_index(partition).with_records(Some(batch.clone()))],
            ),
        ]);
        self.frame(req, PRODUCE_V).expect("a produce request encodes")
    }
}

/// Reads one Produce response from `stream`: `Ok(errors)` with the number of
/// partitions that reported an error.
pub fn read_produce_response(stream: &mut TcpStream) -> Result<usize, BenchError> {
    let (_, r) = read_response::<ProduceResponse>(stream, PRODUCE_V, "the partition leader")?;
    Ok(r.responses.iter().flat_map(|t| &t.partition_responses).filter(|p| p.error_code != 0).count())
}
