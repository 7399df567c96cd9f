//! Storage: per-partition segmented logs written with direct I/O, their
//! in-memory index and recent-batch cache, and recovery on start.

pub mod atomic_file;
pub mod cache;
pub mod cache_budget;
pub mod chunk;
pub mod compaction;
pub mod epoch_cache;
pub mod index;
pub mod index_file;
pub mod io_failure;
pub mod iopoll_probe;
pub mod partition;
pub mod partition_dir;
pub mod producer_state;
pub mod recovery;
pub mod recycle;
pub mod retention;
pub mod segment;
pub mod start_offset;
pub mod walk;

pub use partition::{Appended, Limits, PartitionLog, ReadError, StorageError};
