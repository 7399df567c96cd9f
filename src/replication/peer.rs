//! A connection from a follower shard to the node leading the partitions it
//! copies: Kafka's Fetch over glommio's TCP, so that waiting for the leader
//! never blocks the shard's reactor.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use kafka_protocol::messages::{FetchRequest, FetchResponse, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use thiserror::Error;

/// The Fetch version followers send: v12 is the first with
/// `last_fetched_epoch` and a `DivergingEpoch` in the answer, and the last
/// before v15 moved the replica id into `ReplicaState`. Topics go by name.
pub const FETCH_VERSION: i16 = 12;

/// How long a connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Bytes a response may have beyond what the request asked for (headers,
/// per-partition fields): a length prefix past that is refused before
/// anything is allocated for it.
const RESPONSE_SLACK: usize = 1 << 20;

/// Why an exchange with the leader failed. Each drops the connection.
#[derive(Debug, Error)]
pub enum PeerError {
    /// No connection could be made.
    #[error("cannot connect to {addr}: {cause}")]
    Connect { addr: SocketAddr, cause: std::io::Error },
    /// The connection failed or timed out mid-exchange.
    #[error("connection to {addr} lost: {cause}")]
    Io { addr: SocketAddr, cause: std::io::Error },
    /// The leader's answer was not a Fetch response we can read.
    #[error("bad response from {addr}: {detail}")]
    Codec { addr: SocketAddr, detail: String },
}

/// One connection to a leader node.
pub struct Peer {
    addr: SocketAddr,
    stream: TcpStream,
    correlation: i32,
    client_id: StrBytes,
}

impl Peer {
    /// Connects to the leader node at `addr`, naming itself `client_id`.
    pub async fn connect(addr: SocketAddr, client_id: String) -> Result<Self, PeerError> {
        let stream = TcpStream::connect_timeout(addr, CONNECT_TIMEOUT)
            .await
            .map_err(|e| PeerError::Connect { addr, cause: e.into() })?;
        stream.set_nodelay(true).map_err(|e| PeerError::Connect { addr, cause: e.into() })?;
        Ok(Self { addr, stream, correlation: 0, client_id: StrBytes::from_string(client_id) })
    }

    /// The address connected to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends `req` and waits for its answer, at most `timeout`. The answer
    /// may be at most `req.max_bytes` plus some slack long.
    pub async fn fetch(&mut self, req: &FetchRequest, timeout: Duration) -> Result<FetchResponse, PeerError> {
        let limit = (req.max_bytes.max(0) as usize).saturating_add(RESPONSE_SLACK);
        let addr = self.addr;
        let timed_out = async move {
            glommio::timer::sleep(timeout).await;
            Err(PeerError::Io { addr, cause: std::io::ErrorKind::TimedOut.into() })
        };
        futures_lite::future::or(self.exchange(req, limit), timed_out).await
    }

    async fn exchange(&mut self, req: &FetchRequest, limit: usize) -> Result<FetchResponse, PeerError> {
        self.correlation = self.correlation.wrapping_add(1);
        let frame = self.frame(req)?;
        let addr = self.addr;
        let lost = |cause: std::io::Error| PeerError::Io { addr, cause };
        self.stream.write_all(&frame).await.map_err(lost)?;
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).await.map_err(lost)?;
        let len = i32::from_be_bytes(len);
        if len < 4 || len as usize > limit {
            return Err(self.codec(format!("a response of {len} bytes (at most {limit} expected)")));
        }
        let mut body = vec![0u8; len as usize];
        self.stream.read_exact(&mut body).await.map_err(lost)?;
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, FetchResponse::header_version(FETCH_VERSION))
            .map_err(|e| self.codec(e.to_string()))?;
        if header.correlation_id != self.correlation {
            return Err(
                self.codec(format!("answer to request {}, {} expected", header.correlation_id, self.correlation))
            );
        }
        FetchResponse::decode(&mut body, FETCH_VERSION).map_err(|e| self.codec(e.to_string()))
    }

    /// `req` as a whole request frame, length prefix included.
    fn frame(&self, req: &FetchRequest) -> Result<BytesMut, PeerError> {
        let header = RequestHeader::default()
            .with_request_api_key(kafka_protocol::messages::ApiKey::Fetch as i16)
            .with_request_api_version(FETCH_VERSION)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(self.client_id.clone()));
        let mut buf = BytesMut::with_capacity(256);
        buf.put_i32(0);
        header.encode(&mut buf, FetchRequest::header_version(FETCH_VERSION)).map_err(|e| self.codec(e.to_string()))?;
        req.encode(&mut buf, FETCH_VERSION).map_err(|e| self.codec(e.to_string()))?;
        let len = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        Ok(buf)
    }

    fn codec(&self, detail: String) -> PeerError {
        PeerError::Codec { addr: self.addr, detail }
    }
}
