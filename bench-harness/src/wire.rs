//! The client side of the wire: framing, request headers and the few
//! requests the harness sends, all encoded with `kafka-protocol` (the codec
//! the broker uses), over blocking sockets.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, MetadataRequest, MetadataResponse, ProduceRequest,
    ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

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

    /// A Produce request frame carrying `batch` to one partition.
    pub fn produce_request(&mut self, topic: &str, partition: i32, acks: i16, batch: &Bytes) -> BytesMut {
        let req = ProduceRequest::default().with_acks(acks).with_timeout_ms(30_000).with_topic_data(vec![
            TopicProduceData::default().with_name(TopicName(StrBytes::from_string(topic.into()))).with_partition_data(
                vec![PartitionProduceData::default().with_index(partition).with_records(Some(batch.clone()))],
            ),
        ]);
        self.frame(ApiKey::Produce, PRODUCE_V, &req).expect("a produce request encodes")
    }

    /// Sends `request` over and over with `inflight` outstanding until
    /// `stop`, calling `done` with each request's latency.
    pub fn pipeline(
        &mut self,
        request: &BytesMut,
        inflight: usize,
        no_response: bool,
        stop: &AtomicBool,
        mut done: impl FnMut(Duration),
    ) -> Result<(), BenchError> {
        let mut sent: VecDeque<Instant> = VecDeque::with_capacity(inflight);
        let mut frame = request.clone();
        while !stop.load(Ordering::Relaxed) || !sent.is_empty() {
            while sent.len() < inflight && !stop.load(Ordering::Relaxed) {
                self.correlation += 1;
                // The correlation id sits after length, api key and version.
                frame[8..12].copy_from_slice(&self.correlation.to_be_bytes());
                self.stream.write_all(&frame)?;
                sent.push_back(Instant::now());
                if no_response {
                    done(Duration::ZERO);
                    sent.pop_back();
                }
            }
            let Some(t0) = sent.pop_front() else {
                continue;
            };
            let mut resp = self.read_frame()?;
            ResponseHeader::decode(&mut resp, ApiKey::Produce.response_header_version(PRODUCE_V)).map_err(proto)?;
            let r = ProduceResponse::decode(&mut resp, PRODUCE_V).map_err(proto)?;
            for t in &r.responses {
                for p in &t.partition_responses {
                    if p.error_code != 0 {
                        return Err(BenchError::Protocol(format!("produce error {}", p.error_code)));
                    }
                }
            }
            done(t0.elapsed());
        }
        Ok(())
    }
}

/// One uncompressed v2 batch of `n` records of `size` bytes, built once and
/// re-sent (the broker assigns offsets; the CRC does not cover them).
pub fn record_batch(n: usize, size: usize) -> Bytes {
    let value = Bytes::from(vec![b'x'; size]);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: now,
            key: None,
            value: Some(value.clone()),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression: Compression::None })
        .expect("a record batch encodes");
    buf.freeze()
}
