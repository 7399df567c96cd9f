//! A small blocking Kafka client for the operator tools (not the broker's
//! reactor: these are one-shot command-line programs). Requests and
//! responses are encoded by kafka-protocol, as in the broker. Versions are
//! negotiated per API with ApiVersions on each connection.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

use super::error::CliError;
use crate::protocol::ErrorCode;

/// How long a connect or a response may take.
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response accepted.
const MAX_RESPONSE: usize = 256 << 20;

/// One connection to one node.
pub struct Conn {
    addr: String,
    stream: TcpStream,
    correlation: i32,
    /// Highest version the node serves, per API key.
    versions: HashMap<i16, (i16, i16)>,
}

impl Conn {
    /// Connects to `addr` ("host:port") and asks which versions it serves.
    pub fn connect(addr: &str) -> Result<Self, CliError> {
        let fail = |reason: String| CliError::Connect { addr: addr.to_string(), reason };
        let sock =
            addr.to_socket_addrs().map_err(|e| fail(e.to_string()))?.next().ok_or_else(|| fail("no address".into()))?;
        let stream = TcpStream::connect_timeout(&sock, Duration::from_secs(5)).map_err(|e| fail(e.to_string()))?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_nodelay(true)?;
        let mut conn = Conn { addr: addr.to_string(), stream, correlation: 0, versions: HashMap::new() };
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("sluice-cli"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let resp: ApiVersionsResponse = conn.send_at(req, 3)?;
        if resp.error_code != ErrorCode::None.code() {
            return Err(fail(format!("ApiVersions failed with error code {}", resp.error_code)));
        }
        conn.versions = resp.api_keys.iter().map(|k| (k.api_key, (k.min_version, k.max_version))).collect();
        Ok(conn)
    }

    /// The address connected to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// (API key, min, max) of every API the node serves.
    pub fn api_versions(&self) -> Vec<(i16, i16, i16)> {
        let mut v: Vec<_> = self.versions.iter().map(|(k, (lo, hi))| (*k, *lo, *hi)).collect();
        v.sort();
        v
    }

    /// The version of `R` to use: the highest both sides know.
    pub fn version<R: Request>(&self) -> Result<i16, CliError> {
        let ours = R::VERSIONS;
        let (min, max) = *self.versions.get(&R::KEY).ok_or_else(|| CliError::Kafka {
            what: format!("{} does not serve {:?}", self.addr, ApiKey::try_from(R::KEY).ok()),
            code: 35,
        })?;
        let v = max.min(ours.max);
        if v < min.max(ours.min) {
            return Err(CliError::Kafka { what: format!("no common version of API {}", R::KEY), code: 35 });
        }
        Ok(v)
    }

    /// Sends `req` at the negotiated version and waits for its response.
    pub fn send<R: Request>(&mut self, req: R) -> Result<R::Response, CliError> {
        let v = self.version::<R>()?;
        self.send_at(req, v)
    }

    /// Sends `req` at `version` without waiting for an answer (acks=0
    /// produce, which the broker does not answer).
    pub fn send_no_response<R: Request>(&mut self, req: R, version: i16) -> Result<(), CliError> {
        let buf = self.frame(req, version)?;
        let addr = self.addr.clone();
        self.stream.write_all(&buf).map_err(|e| CliError::Connection { addr, reason: e.to_string() })
    }

    fn frame<R: Request>(&mut self, req: R, version: i16) -> Result<BytesMut, CliError> {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("sluice-cli")));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header.encode(&mut buf, R::header_version(version)).map_err(|e| CliError::Codec(e.to_string()))?;
        req.encode(&mut buf, version).map_err(|e| CliError::Codec(format!("request: {e}")))?;
        let len = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        Ok(buf)
    }

    /// Sends `req` at `version`.
    pub fn send_at<R: Request>(&mut self, req: R, version: i16) -> Result<R::Response, CliError> {
        let buf = self.frame(req, version)?;
        let lost = |e: std::io::Error| CliError::Connection { addr: self.addr.clone(), reason: e.to_string() };
        self.stream.write_all(&buf).map_err(lost)?;
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).map_err(lost)?;
        let len = i32::from_be_bytes(len);
        if len < 4 || len as usize > MAX_RESPONSE {
            return Err(CliError::Codec(format!("response of {len} bytes")));
        }
        let mut body = vec![0u8; len as usize];
        self.stream.read_exact(&mut body).map_err(lost)?;
        let mut body = Bytes::from(body);
        let rh = ResponseHeader::decode(&mut body, <R::Response as HeaderVersion>::header_version(version))
            .map_err(|e| CliError::Codec(e.to_string()))?;
        if rh.correlation_id != self.correlation {
            return Err(CliError::Codec(format!("response to request {} out of order", rh.correlation_id)));
        }
        let resp = R::Response::decode(&mut body, version).map_err(|e| CliError::Codec(format!("response: {e}")))?;
        let _ = body.remaining();
        Ok(resp)
    }
}

/// The cluster as the tools see it: a bootstrap connection, metadata, and
/// connections to other nodes opened on demand.
pub struct Cluster {
    /// The bootstrap list as given.
    pub bootstrap: String,
    conns: HashMap<i32, Conn>,
    first: Conn,
    /// Latest metadata.
    pub meta: MetadataResponse,
}

impl Cluster {
    /// Connects to the first reachable bootstrap server and reads metadata
    /// for all topics.
    pub fn connect(bootstrap: &str) -> Result<Self, CliError> {
        let mut last = String::from("empty list");
        for addr in bootstrap.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            match Conn::connect(addr) {
                Ok(first) => {
                    let mut c = Cluster {
                        bootstrap: bootstrap.into(),
                        conns: HashMap::new(),
                        first,
                        meta: MetadataResponse::default(),
                    };
                    c.refresh(None)?;
                    return Ok(c);
                }
                Err(CliError::Connect { reason, .. }) => last = reason,
                Err(e) => last = e.to_string(),
            }
        }
        Err(CliError::Unreachable { bootstrap: bootstrap.into(), reason: last })
    }

    /// Reloads metadata (all topics, or just these).
    pub fn refresh(&mut self, topics: Option<&[String]>) -> Result<(), CliError> {
        use kafka_protocol::messages::TopicName;
        use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
        let req = MetadataRequest::default().with_allow_auto_topic_creation(false).with_topics(topics.map(|ts| {
            ts.iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(t.clone())))))
                .collect()
        }));
        self.meta = self.first.send(req)?;
        Ok(())
    }

    /// The bootstrap connection.
    pub fn any(&mut self) -> &mut Conn {
        &mut self.first
    }

    /// A connection to node `id`.
    pub fn node(&mut self, id: i32) -> Result<&mut Conn, CliError> {
        if !self.conns.contains_key(&id) {
            let b = self
                .meta
                .brokers
                .iter()
                .find(|b| b.node_id.0 == id)
                .ok_or_else(|| CliError::Usage(format!("node {id} is not in the cluster metadata")))?;
            let conn = Conn::connect(&format!("{}:{}", b.host, b.port))?;
            self.conns.insert(id, conn);
        }
        Ok(self.conns.get_mut(&id).expect("just inserted"))
    }

    /// Every node id.
    pub fn node_ids(&self) -> Vec<i32> {
        let mut ids: Vec<i32> = self.meta.brokers.iter().map(|b| b.node_id.0).collect();
        ids.sort();
        ids
    }

    /// Leader node of each partition of `topic`, by partition index.
    pub fn leaders(&self, topic: &str) -> Result<Vec<i32>, CliError> {
        let t = self
            .meta
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic) && t.error_code == ErrorCode::None.code())
            .ok_or_else(|| CliError::UnknownTopic(topic.into()))?;
        let mut parts: Vec<(i32, i32)> = t.partitions.iter().map(|p| (p.partition_index, p.leader_id.0)).collect();
        parts.sort();
        Ok(parts.into_iter().map(|(_, l)| l).collect())
    }
}
