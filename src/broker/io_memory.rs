//! How much memory each shard registers with io_uring for its I/O buffers.
//!
//! Every DMA buffer a shard allocates (the chunks appends are written from,
//! which then become the cache tailing consumers read) comes from this
//! arena while it has room, and from the heap after. A write from a
//! registered buffer (`IORING_OP_WRITE_FIXED`) skips pinning the buffer's
//! pages for each O_DIRECT write: side by side, one shard appended 30-35%
//! faster with one partition and 10-20% with four (docs/BENCHMARKS.md).
//!
//! The arena must hold what the shard keeps in DMA buffers: the cache
//! (`--cache-bytes`) plus the chunks in flight. Registration pins it, and
//! the kernel counts it against `RLIMIT_MEMLOCK` once per io_uring ring
//! (three per shard) unless the process has `CAP_IPC_LOCK`. Where the limit
//! is too low for that, a shard registers only the minimum glommio needs,
//! and the broker says so at start.

use std::io;

/// The smallest arena: what glommio needs to start an executor, and all a
/// default 8 MiB locked-memory limit allows for a few shards.
pub const MIN_IO_MEMORY: usize = 512 << 10;

/// Arena room beyond the cache: chunks being written and awaiting their
/// fdatasync (64 requests of 256 KiB in flight on one connection fill 16
/// MiB), and DMA reads of older data.
pub const IN_FLIGHT: usize = 64 << 20;

/// io_uring rings per glommio executor (main, latency, poll), each of which
/// registers, and is charged for, the whole arena.
const RINGS: usize = 3;

/// Locked memory left for everything else (rings on older kernels, other
/// mlock users in the process).
const MARGIN: u64 = 8 << 20;

/// `CAP_IPC_LOCK`'s bit in the capability sets of `/proc/self/status`.
const CAP_IPC_LOCK: u32 = 14;

/// The arena size chosen for each shard, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoMemory {
    /// Bytes each shard registers.
    pub per_shard: usize,
    /// Why a full arena could not be had (`None`: it is full).
    pub limited_by: Option<String>,
}

/// Chooses each shard's arena: the cache plus [`IN_FLIGHT`] when the
/// process may lock that much for `shards` shards, else [`MIN_IO_MEMORY`].
/// Raises the soft locked-memory limit to the hard one on the way (which
/// needs no privilege).
pub fn plan(cache_bytes: usize, shards: usize) -> IoMemory {
    let ipc_lock = has_ipc_lock();
    decide(cache_bytes, shards, ipc_lock, if ipc_lock { Ok(u64::MAX) } else { raise_memlock() })
}

/// [`plan`]'s rule, given whether the process has `CAP_IPC_LOCK` and its
/// (raised) locked-memory limit.
fn decide(cache_bytes: usize, shards: usize, ipc_lock: bool, limit: io::Result<u64>) -> IoMemory {
    let want = cache_bytes.saturating_add(IN_FLIGHT);
    if ipc_lock {
        return IoMemory { per_shard: want, limited_by: None };
    }
    let need = (want as u64).saturating_mul((RINGS * shards) as u64).saturating_add(MARGIN);
    match limit {
        Ok(limit) if limit >= need => IoMemory { per_shard: want, limited_by: None },
        Ok(limit) => IoMemory {
            per_shard: MIN_IO_MEMORY,
            limited_by: Some(format!(
                "the locked-memory limit is {} KiB and registered I/O buffers for {shards} shards need {} KiB",
                limit >> 10,
                need >> 10
            )),
        },
        Err(e) => {
            IoMemory { per_shard: MIN_IO_MEMORY, limited_by: Some(format!("cannot read the locked-memory limit: {e}")) }
        }
    }
}

/// Whether the process's effective capabilities include `CAP_IPC_LOCK`
/// (root's do), with which registered buffers are not charged to
/// `RLIMIT_MEMLOCK`.
fn has_ipc_lock() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_IPC_LOCK) != 0)
}

/// Raises the soft `RLIMIT_MEMLOCK` to the hard limit; returns the soft
/// limit now in force (`u64::MAX` when unlimited).
fn raise_memlock() -> io::Result<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit write and read only the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) != 0 {
            return Err(io::Error::last_os_error());
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_MEMLOCK, &raised) == 0 {
                lim = raised;
            }
        }
    }
    Ok(if lim.rlim_cur == libc::RLIM_INFINITY { u64::MAX } else { lim.rlim_cur })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_arena_holds_the_cache_and_the_chunks_in_flight_where_it_may() {
        let full = (128 << 20) + IN_FLIGHT;
        assert_eq!(decide(128 << 20, 2, true, Ok(0)), IoMemory { per_shard: full, limited_by: None });
        assert_eq!(decide(128 << 20, 2, false, Ok(u64::MAX)), IoMemory { per_shard: full, limited_by: None });
        let need = full as u64 * 6 + MARGIN;
        assert_eq!(decide(128 << 20, 2, false, Ok(need)).per_shard, full);
        let short = decide(128 << 20, 2, false, Ok(need - 1));
        assert_eq!(short.per_shard, MIN_IO_MEMORY);
        assert!(short.limited_by.is_some_and(|why| why.contains("locked-memory limit")));
        let unknown = decide(128 << 20, 2, false, Err(io::Error::other("no")));
        assert_eq!(unknown.per_shard, MIN_IO_MEMORY);
    }
}
