//! Request framing: the 4-byte length prefix, the request header and dispatch
//! by API key. Bodies are decoded with `kafka-protocol`, zero-copy: record
//! sets stay slices of the frame they arrived in.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};
use thiserror::Error;

use super::versions;

/// Why a frame could not be turned into a request. Each of these closes the
/// connection (as Kafka does) except where the caller answers first.
#[derive(Debug, Error)]
pub enum FrameError {
    #[error("frame too short for a request header ({0} bytes)")]
    TooShort(usize),
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    #[error("unsupported version {version} of {key:?}")]
    UnsupportedVersion { key: ApiKey, version: i16, correlation_id: i32 },
    #[error("malformed {key:?} v{version} request: {detail}")]
    Malformed { key: ApiKey, version: i16, detail: String },
}

/// A decoded request.
#[derive(Debug)]
pub struct Request {
    /// The API.
    pub api_key: ApiKey,
    /// Its version.
    pub version: i16,
    /// The request header (correlation id, client id).
    pub header: RequestHeader,
    /// The decoded body.
    pub body: RequestKind,
}

/// Decodes one frame's payload (the bytes after the length prefix).
pub fn decode_request(mut frame: Bytes) -> Result<Request, FrameError> {
    if frame.len() < 8 {
        return Err(FrameError::TooShort(frame.len()));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api_key = ApiKey::try_from(raw_key).map_err(|_| FrameError::UnknownApiKey(raw_key))?;
    if !versions::is_served(api_key, version) {
        return Err(FrameError::UnsupportedVersion { key: api_key, version, correlation_id });
    }
    let malformed = |e: &dyn std::fmt::Display| FrameError::Malformed { key: api_key, version, detail: e.to_string() };
    let header =
        RequestHeader::decode(&mut frame, api_key.request_header_version(version)).map_err(|e| malformed(&e))?;
    let body = RequestKind::decode(api_key, &mut frame, version).map_err(|e| malformed(&e))?;
    Ok(Request { api_key, version, header, body })
}

/// An encoded response, ready for the socket.
pub enum Frame {
    /// One buffer, length prefix included.
    One(Bytes),
    /// Pieces written in turn (the first holds the length prefix): record
    /// sets of a fetch travel as the cached buffers themselves.
    Pieces(Vec<Bytes>),
}

/// Encodes a response whose record sets are behind `stand_ins` (see
/// [`super::zero_copy`]): the frame refers to the record buffers instead
/// of copying them.
pub fn encode_response_pieces(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &impl Encodable,
    stand_ins: super::zero_copy::StandIns,
) -> Option<Frame> {
    let header_version = api_key.response_header_version(version);
    let mut out = super::zero_copy::Pieces::new(stand_ins);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header.encode(&mut out, header_version).expect("a response header always encodes");
    if let Err(e) = body.encode(&mut out, version) {
        tracing::error!("cannot encode {api_key:?} v{version} response: {e}");
        return None;
    }
    let len = out.len() as i32;
    let mut pieces = out.finish();
    // The length prefix goes in front of the first (small, encoded) piece.
    let mut first = BytesMut::with_capacity(4 + pieces.first().map_or(0, Bytes::len));
    first.put_i32(len);
    if pieces.first().is_some_and(|p| p.len() < 4096) {
        first.extend_from_slice(&pieces.remove(0));
    }
    pieces.insert(0, first.freeze());
    Some(Frame::Pieces(pieces))
}

/// Encodes a response frame, length prefix included. ApiVersions always uses
/// response header v0 so that clients can parse it before they know versions.
/// A body that cannot be encoded in `version` (a handler set a field that
/// version lacks) is a bug: it is logged and the response is dropped.
pub fn encode_response(api_key: ApiKey, version: i16, correlation_id: i32, body: &ResponseKind) -> Option<Bytes> {
    let header_version = if api_key == ApiKey::ApiVersions { 0 } else { api_key.response_header_version(version) };
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header.encode(&mut buf, header_version).expect("a response header always encodes");
    if let Err(e) = body.encode(&mut buf, version) {
        tracing::error!("cannot encode {api_key:?} v{version} response: {e}");
        return None;
    }
    let len = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&len.to_be_bytes());
    Some(buf.freeze())
}
