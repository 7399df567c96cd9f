//! What sluice's broker and operator tools share with its load generator
//! (`bench-harness`): the record batch header's layout, CRC-32C, and a
//! blocking Kafka client with Kafka's partitioner and codec names. The
//! broker itself is the `sluice` binary (`src/main.rs`); nothing here runs
//! on a shard's reactor.

pub mod batch;
pub mod client;
pub mod crc;
