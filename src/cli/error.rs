//! What the operator tools report: one line each, no stack traces.

use crate::protocol::ErrorCode;
use sluice::client::ClientError;
use thiserror::Error;

/// An operator tool's failure.
#[derive(Debug, Error)]
pub enum CliError {
    #[error("cannot reach any bootstrap server ({bootstrap}): {reason}")]
    Unreachable { bootstrap: String, reason: String },
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("lost the connection to {addr}: {reason}")]
    Connection { addr: String, reason: String },
    #[error("{what}: {}", kafka_error_name(*code))]
    Kafka { what: String, code: i16 },
    #[error("topic {0:?} does not exist")]
    UnknownTopic(String),
    #[error("group {0:?} does not exist")]
    UnknownGroup(String),
    #[error("{0}")]
    Usage(String),
    #[error("cannot encode or decode a {0}")]
    Codec(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Connect { addr, reason } => CliError::Connect { addr, reason },
            ClientError::Connection { addr, reason } => CliError::Connection { addr, reason },
            ClientError::Unsupported { addr, api } => CliError::Kafka {
                what: format!("{addr} does not serve {:?}", kafka_protocol::messages::ApiKey::try_from(api).ok()),
                code: ClientError::UNSUPPORTED_VERSION,
            },
            ClientError::Codec(what) => CliError::Codec(what),
        }
    }
}

/// Kafka's name for an error code, e.g. `UNKNOWN_TOPIC_OR_PARTITION`.
pub fn kafka_error_name(code: i16) -> String {
    match kafka_protocol::error::ResponseError::try_from_code(code) {
        None => "NONE".into(),
        Some(e) => {
            let camel = e.to_string();
            let mut out = String::with_capacity(camel.len() + 8);
            for (i, c) in camel.chars().enumerate() {
                if c.is_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(c.to_ascii_uppercase());
            }
            out
        }
    }
}

/// `Ok` for error code 0, otherwise a `CliError::Kafka` saying what failed.
pub fn check(code: i16, what: impl FnOnce() -> String) -> Result<(), CliError> {
    if code == ErrorCode::None.code() { Ok(()) } else { Err(CliError::Kafka { what: what(), code }) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn kafka_names() {
        assert_eq!(super::kafka_error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(super::kafka_error_name(36), "TOPIC_ALREADY_EXISTS");
    }
}
