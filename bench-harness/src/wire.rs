//! The client side of the wire: framing, request headers and the few
//! requests the harness sends, all encoded with `kafka-protocol` (the codec
//! the broker uses), over blocking sockets.

use std::io::{Read, Write};
use std::net::TcpStream;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, CreateTopicsResponse, FetchRequest, FetchResponse, ListOffsetsRequest,
    ListOffsetsResponse, MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse, RequestHeader,
    ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// Why a benchmark run stopped.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol: {0}")]
    Protocol(String),
}

fn proto(e: impl std::fmt::Display) -> BenchError {
    BenchError::Protocol(e.to_string())
}

const CREATE_TOPICS_V: i16 = 4;
const METADATA_V: i16 = 4;
const PRODUCE_V: i16 = 7;
const FETCH_V: i16 = 4;
const LIST_OFFSETS_V: i16 = 1;
const TOPIC_ALREADY_EXISTS: i16 = 36;

/// One connection to one broker.
pub struct Conn {
    stream: TcpStream,
    correlation: i32,
}

impl Conn {
    /// Connects to `addr` (host:port).
    pub fn connect(addr: &str) -> Result<Self, BenchError> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        Ok(Self { stream, correlation: 0 })
    }

    fn frame(&mut self, key: ApiKey, version: i16, body: &impl Encodable) -> Result<BytesMut, BenchError> {
        self.correlation += 1;
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[0; 4]);
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("sluice-bench")))
            .encode(&mut buf, key.request_header_version(version))
            .map_err(proto)?;
        body.encode(&mut buf, version).map_err(proto)?;
        let len = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        Ok(buf)
    }

    fn read_frame(&mut self) -> Result<Bytes, BenchError> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let mut body = vec![0u8; i32::from_be_bytes(len).max(0) as usize];
        self.stream.read_exact(&mut body)?;
        Ok(Bytes::from(body))
    }

    fn call<R: Decodable>(&mut self, key: ApiKey, version: i16, body: &impl Encodable) -> Result<R, BenchError> {
        let frame = self.frame(key, version, body)?;
        self.stream.write_all(&frame)?;
        let mut resp = self.read_frame()?;
        ResponseHeader::decode(&mut resp, key.response_header_version(version)).map_err(proto)?;
        R::decode(&mut resp, version).map_err(proto)
    }

    /// Creates `topic` unless it exists.
    pub fn create_topic(
        &mut self,
        topic: &str,
        partitions: i32,
        configs: &[(String, String)],
    ) -> Result<(), BenchError> {
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
        let resp: CreateTopicsResponse = self.call(ApiKey::CreateTopics, CREATE_TOPICS_V, &req)?;
        match resp.topics.first().map(|t| t.error_code) {
            Some(0) | Some(TOPIC_ALREADY_EXISTS) => Ok(()),
            other => Err(BenchError::Protocol(format!("CreateTopics failed: {other:?}"))),
        }
    }

    /// host:port of each partition's leader, by partition.
    pub fn leaders(&mut self, topic: &str, partitions: i32) -> Result<Vec<String>, BenchError> {
        let req = MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(topic.into())))),
        ]));
        let resp: MetadataResponse = self.call(ApiKey::Metadata, METADATA_V, &req)?;
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

    /// A second handle on the socket, for a thread that reads responses.
    pub fn reader(&self) -> Result<TcpStream, BenchError> {
        Ok(self.stream.try_clone()?)
    }

    /// Writes a request frame, giving it the next correlation id.
    pub fn send_frame(&mut self, frame: &mut BytesMut) -> Result<(), BenchError> {
        self.correlation += 1;
        // The correlation id sits after length, api key and version.
        frame[8..12].copy_from_slice(&self.correlation.to_be_bytes());
        self.stream.write_all(frame)?;
        Ok(())
    }

    /// The offset of each partition at `timestamp` (-2 earliest, -1 latest).
    pub fn list_offsets(
        &mut self,
        topic: &str,
        partitions: &[i32],
        timestamp: i64,
    ) -> Result<Vec<(i32, i64)>, BenchError> {
        let req = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
            ListOffsetsTopic::default().with_name(TopicName(StrBytes::from_string(topic.into()))).with_partitions(
                partitions
                    .iter()
                    .map(|&p| ListOffsetsPartition::default().with_partition_index(p).with_timestamp(timestamp))
                    .collect(),
            ),
        ]);
        let resp: ListOffsetsResponse = self.call(ApiKey::ListOffsets, LIST_OFFSETS_V, &req)?;
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
    pub fn fetch(
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
        let resp: FetchResponse = self.call(ApiKey::Fetch, FETCH_V, &req)?;
        Ok(resp
            .responses
            .into_iter()
            .flat_map(|t| t.partitions)
            .map(|p| (p.partition_index, p.error_code, p.high_watermark, p.records.unwrap_or_default()))
            .collect())
    }

    /// A Produce request frame carrying `batch` to one partition.
    pub fn produce_request(&mut self, topic: &str, partition: i32, acks: i16, batch: &Bytes) -> BytesMut {
        let req = ProduceRequest::default().with_acks(acks).with_timeout_ms(30_000).with_topic_data(vec![
            TopicProduceData::default().with_name(TopicName(StrBytes::from_string(topic.into()))).with_partition_data(
                vec![PartitionProduceData::default().with_index(partition).with_records(Some(batch.clone()))],
            ),
        ]);
        self.frame(ApiKey::Produce, PRODUCE_V, &req).expect("a produce request encodes")
    }
}

/// Reads one Produce response from `stream`: `Ok(errors)` with the number of
/// partitions that reported an error.
pub fn read_produce_response(stream: &mut TcpStream) -> Result<usize, BenchError> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let mut body = vec![0u8; i32::from_be_bytes(len).max(0) as usize];
    stream.read_exact(&mut body)?;
    let mut resp = Bytes::from(body);
    ResponseHeader::decode(&mut resp, ApiKey::Produce.response_header_version(PRODUCE_V)).map_err(proto)?;
    let r = ProduceResponse::decode(&mut resp, PRODUCE_V).map_err(proto)?;
    Ok(r.responses.iter().flat_map(|t| &t.partition_responses).filter(|p| p.error_code != 0).count())
}
