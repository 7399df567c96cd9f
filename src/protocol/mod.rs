//! Wire protocol: framing, the API version table, error codes and the
//! record-batch view. Message bodies are encoded by the `kafka-protocol` crate.

pub use sluice::batch;
pub mod batch_walk;
pub mod decompress;
pub mod error_code;
pub mod frame;
#[cfg(test)]
mod fuzz_tests;
pub mod lz4_frame;
pub mod record;
pub mod record_walk;
pub mod rewrite;
pub mod stored_records;
pub mod versions;
pub mod zero_copy;
pub mod zstd_stream;

pub use error_code::ErrorCode;
