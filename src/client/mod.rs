//! A small blocking Kafka client: one connection per node, requests and
//! responses encoded by kafka-protocol (as in the broker), versions
//! negotiated with ApiVersions when a connection opens, and every response
//! frame bounded before it is read. The operator tools (`src/cli/`) and the
//! load generator (`bench-harness`) both use it, with Kafka's partitioner
//! and codec names.

mod conn;
mod error;
pub mod partitioner;

pub use conn::{Conn, MAX_RESPONSE, TIMEOUT, read_response};
pub use error::ClientError;

use kafka_protocol::records::Compression;

/// A codec by the name Kafka's clients and `compression.type` use
/// (`none` and `uncompressed` both mean none); `None` for other names
/// (`producer`, or a typo).
pub fn codec_by_name(name: &str) -> Option<Compression> {
    match name {
        "none" | "uncompressed" => Some(Compression::None),
        "gzip" => Some(Compression::Gzip),
        "snappy" => Some(Compression::Snappy),
        "lz4" => Some(Compression::Lz4),
        "zstd" => Some(Compression::Zstd),
        _ => None,
    }
}
