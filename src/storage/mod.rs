//! Storage: per-partition segmented logs written with direct I/O, their
//! in-memory index and recent-batch cache, and recovery on start.

/// Whether the named fail point is armed: always false outside `cargo
/// test`, where the `fail` crate's points compile to nothing. For steps
/// whose injected failure needs more than an early return (a torn write
/// is awaited), or that are skipped to stand for a crash.
macro_rules! fail_armed {
    ($name:literal) => {
        (|| {
            fail::fail_point!($name, |_| true);
            false
        })()
    };
}

/// An I/O error standing for a failure injected at a named step.
fn injected(step: &str) -> std::io::Error {
    std::io::Error::other(format!("injected failure at {step}"))
}

pub mod atomic_file;
pub mod cache;
pub mod cache_budget;
pub mod chunk;
pub mod compaction;
pub mod epoch_cache;
pub mod hw_checkpoint;
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
