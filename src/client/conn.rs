//! One blocking connection to one node.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

use super::ClientError;

/// How long a response may take (and a connect, at most 5 s of it).
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response frame accepted: a length prefix beyond it is refused
/// before anything is allocated for it.
pub const MAX_RESPONSE: usize = 256 << 20;

/// A connection and what the node said it serves.
pub struct Conn {
    addr: String,
    client_id: &'static str,
    stream: TcpStream,
    correlation: i32,
    /// (min, max) version the node serves, per API key.
    versions: HashMap<i16, (i16, i16)>,
}

impl Conn {
    /// Connects to `addr` ("host:port") as `client_id` and asks which
    /// versions it serves.
    pub fn connect(addr: &str, client_id: &'static str) -> Result<Self, ClientError> {
        let fail = |reason: String| ClientError::Connect { addr: addr.to_string(), reason };
        let sock =
            addr.to_socket_addrs().map_err(|e| fail(e.to_string()))?.next().ok_or_else(|| fail("no address".into()))?;
        let stream = TcpStream::connect_timeout(&sock, Duration::from_secs(5)).map_err(|e| fail(e.to_string()))?;
        stream.set_read_timeout(Some(TIMEOUT)).map_err(|e| fail(e.to_string()))?;
        stream.set_nodelay(true).map_err(|e| fail(e.to_string()))?;
        let mut conn = Conn { addr: addr.to_string(), client_id, stream, correlation: 0, versions: HashMap::new() };
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str(client_id))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let resp: ApiVersionsResponse = conn.send_at(req, 3)?;
        if resp.error_code != 0 {
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
    pub fn version<R: Request>(&self) -> Result<i16, ClientError> {
        let unsupported = || ClientError::Unsupported { addr: self.addr.clone(), api: R::KEY };
        let (min, max) = *self.versions.get(&R::KEY).ok_or_else(unsupported)?;
        let v = max.min(R::VERSIONS.max);
        if v < min.max(R::VERSIONS.min) {
            return Err(unsupported());
        }
        Ok(v)
    }

    /// Sends `req` at the negotiated version and waits for its response.
    pub fn send<R: Request>(&mut self, req: R) -> Result<R::Response, ClientError> {
        let v = self.version::<R>()?;
        self.send_at(req, v)
    }

    /// Sends `req` at `version` and waits for its response.
    pub fn send_at<R: Request>(&mut self, req: R, version: i16) -> Result<R::Response, ClientError> {
        let mut buf = self.frame(req, version)?;
        self.send_frame(&mut buf)?;
        let correlation = self.correlation;
        let addr = self.addr.clone();
        let (id, resp) = read_response::<R::Response>(&mut self.stream, version, &addr)?;
        if id != correlation {
            return Err(ClientError::Codec(format!("response to request {id}, {correlation} expected")));
        }
        Ok(resp)
    }

    /// Sends `req` at `version` without waiting for an answer (acks=0
    /// produce, which the broker does not answer).
    pub fn send_no_response<R: Request>(&mut self, req: R, version: i16) -> Result<(), ClientError> {
        let mut buf = self.frame(req, version)?;
        self.send_frame(&mut buf)
    }

    /// `req` encoded at `version` as a whole request frame (its correlation
    /// id is set by [`Self::send_frame`]), for callers that re-send or
    /// patch a frame (the load generator stamps batches inside one).
    pub fn frame<R: Request>(&self, req: R, version: i16) -> Result<BytesMut, ClientError> {
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(0)
            .with_client_id(Some(StrBytes::from_static_str(self.client_id)));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header.encode(&mut buf, R::header_version(version)).map_err(|e| ClientError::Codec(e.to_string()))?;
        req.encode(&mut buf, version).map_err(|e| ClientError::Codec(format!("request: {e}")))?;
        let len = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        Ok(buf)
    }

    /// Writes a frame from [`Self::frame`], giving it the next correlation
    /// id (it sits after the length, API key and version).
    pub fn send_frame(&mut self, frame: &mut BytesMut) -> Result<(), ClientError> {
        self.correlation = self.correlation.wrapping_add(1);
        frame[8..12].copy_from_slice(&self.correlation.to_be_bytes());
        self.stream
            .write_all(frame)
            .map_err(|e| ClientError::Connection { addr: self.addr.clone(), reason: e.to_string() })
    }

    /// A second handle on the socket, for a thread that reads responses
    /// (with [`read_response`]) while this one writes requests.
    pub fn reader(&self) -> Result<TcpStream, ClientError> {
        self.stream.try_clone().map_err(|e| ClientError::Connection { addr: self.addr.clone(), reason: e.to_string() })
    }
}

/// Reads one response of type `R` (to a request of `version`) from
/// `stream`: its correlation id and body. A length prefix outside
/// `4..=MAX_RESPONSE` is refused before anything is allocated.
pub fn read_response<R: Decodable + HeaderVersion>(
    stream: &mut impl Read,
    version: i16,
    addr: &str,
) -> Result<(i32, R), ClientError> {
    let lost = |e: std::io::Error| ClientError::Connection { addr: addr.to_string(), reason: e.to_string() };
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).map_err(lost)?;
    let len = i32::from_be_bytes(len);
    if len < 4 || len as usize > MAX_RESPONSE {
        return Err(ClientError::Codec(format!("response of {len} bytes")));
    }
    let mut body = vec![0u8; len as usize];
    stream.read_exact(&mut body).map_err(lost)?;
    let mut body = Bytes::from(body);
    let header =
        ResponseHeader::decode(&mut body, R::header_version(version)).map_err(|e| ClientError::Codec(e.to_string()))?;
    let resp = R::decode(&mut body, version).map_err(|e| ClientError::Codec(format!("response: {e}")))?;
    let _ = body.remaining();
    Ok((header.correlation_id, resp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ProduceResponse;

    #[test]
    fn a_lying_length_prefix_is_refused_before_allocating() {
        for len in [i32::MAX, -1, 0, 3, (MAX_RESPONSE + 1) as i32] {
            let mut wire: &[u8] = &len.to_be_bytes();
            let got = read_response::<ProduceResponse>(&mut wire, 7, "test");
            assert!(matches!(got, Err(ClientError::Codec(_))), "{len}: {:?}", got.err());
        }
    }
}
