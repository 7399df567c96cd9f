//! What can go wrong talking to a broker.

use thiserror::Error;

/// A client call's failure.
#[derive(Debug, Error)]
pub enum ClientError {
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("lost the connection to {addr}: {reason}")]
    Connection { addr: String, reason: String },
    /// The node does not serve the API, or at no version this client knows.
    #[error("{addr} does not serve API key {api} at a version this client knows")]
    Unsupported { addr: String, api: i16 },
    #[error("cannot encode or decode a {0}")]
    Codec(String),
}

impl ClientError {
    /// Kafka's UNSUPPORTED_VERSION, for tools that report error codes.
    pub const UNSUPPORTED_VERSION: i16 = 35;
}
