//! How much memory each shard registers with io_uring for its I/O buffers.
//!
//! Every DMA buffer a shard allocates (the chunks appends are written from,
//! which then become the cache tailing consumers read) comes from this
//! arena while it has room, and from the heap after. A write from a
//! registered buffer (`IORING_OP_WRITE_FIXED`) skips pinning the buffer's
//! pages for each O_DIRECT write: side by side, one shard appended 18-35%
//! faster with one partition and 1-10% with four (docs/BENCHMARKS.md,
//! "Registered I/O buffers").
//!
//! The arena should hold what the shard keeps in DMA buffers: the blocks
//! the cache (`--cache-bytes`) holds, 1.5 times its bytes, plus the chunks
//! in flight. Registration pins it (it is
//! resident from the start), and the kernel counts it against
//! `RLIMIT_MEMLOCK` once per io_uring ring (three per shard) unless the
//! process has `CAP_IPC_LOCK` in the initial user namespace. Where the
//! limit is too low for that, a shard registers only the minimum glommio
//! needs, and the broker says so at start. The arena is also capped at the
//! kernel's 1 GiB per registered buffer, and all shards' arenas together at
//! a quarter of the memory the broker may use.

use std::io;

use thiserror::Error;

/// The smallest arena: what glommio needs to start an executor, and all a
/// default 8 MiB locked-memory limit allows for a few shards.
pub const MIN_IO_MEMORY: usize = 512 << 10;

/// Arena room beyond the cache: chunks being written and awaiting their
/// fdatasync (64 requests of 256 KiB in flight on each of four connections
/// fill 64 MiB), and DMA reads of older data.
pub const IN_FLIGHT: usize = 64 << 20;

/// Arena bytes per cached byte, as a fraction: cached chunks hold whole
/// 1 MiB blocks of which batches fill from half (sparser ones are copied
/// out) to all; 256 KiB produce requests fill about three quarters.
const CACHE_BLOCKS: (usize, usize) = (3, 2);

/// io_uring rings per glommio executor (main, latency, poll), each of which
/// registers, and is charged for, the whole arena.
const RINGS: usize = 3;

/// Locked memory left for everything else (rings on older kernels, other
/// users of the same limit: it is charged per user, not per process).
const MARGIN: u64 = 8 << 20;

/// The kernel refuses a registered buffer larger than this.
pub const MAX_IO_MEMORY: usize = 1 << 30;

/// All shards' arenas together take at most this share of the memory the
/// broker may use (the machine's, or its cgroup's limit): pinned memory
/// cannot be reclaimed.
const MEMORY_SHARE: u64 = 4;

/// `CAP_IPC_LOCK`'s bit in the capability sets of `/proc/self/status`.
const CAP_IPC_LOCK: u32 = 14;

/// The arena size chosen for each shard, and why.
#[derive(Debug)]
pub struct IoMemory {
    /// Bytes each shard registers.
    pub per_shard: usize,
    /// Why a full arena could not be had (`None`: it is full).
    pub limited_by: Option<Shortfall>,
}

/// Why shards register only [`MIN_IO_MEMORY`].
#[derive(Debug, Error)]
pub enum Shortfall {
    /// The locked-memory limit is below what the arenas are charged.
    #[error("the locked-memory limit is {} KiB and registered I/O buffers for {shards} shards need {} KiB", limit >> 10, need >> 10)]
    Limit {
        /// `RLIMIT_MEMLOCK`, raised to its hard limit.
        limit: u64,
        /// Every ring's charge for every shard's arena, plus [`MARGIN`].
        need: u64,
        /// Shards starting.
        shards: usize,
    },
    /// `getrlimit` failed.
    #[error("cannot read the locked-memory limit: {0}")]
    Unreadable(#[source] io::Error),
}

/// Chooses each shard's arena: the blocks the cache holds plus
/// [`IN_FLIGHT`] when the
/// process may lock that much for `shards` shards, else [`MIN_IO_MEMORY`].
/// Raises the soft locked-memory limit to the hard one on the way (which
/// needs no privilege).
pub fn plan(cache_bytes: usize, shards: usize) -> IoMemory {
    let ipc_lock = has_ipc_lock() && in_initial_user_namespace();
    let limit = if ipc_lock { Ok(u64::MAX) } else { raise_memlock() };
    decide(cache_bytes, shards, ipc_lock, limit, usable_memory())
}

/// [`plan`]'s rule, given whether the process has `CAP_IPC_LOCK`, its
/// (raised) locked-memory limit and the memory it may use.
fn decide(cache_bytes: usize, shards: usize, ipc_lock: bool, limit: io::Result<u64>, memory: u64) -> IoMemory {
    let share = usize::try_from(memory / MEMORY_SHARE / shards.max(1) as u64).unwrap_or(usize::MAX);
    let want = (cache_bytes / CACHE_BLOCKS.1)
        .saturating_mul(CACHE_BLOCKS.0)
        .saturating_add(IN_FLIGHT)
        .min(MAX_IO_MEMORY)
        .min(share)
        .max(MIN_IO_MEMORY);
    if ipc_lock {
        return IoMemory { per_shard: want, limited_by: None };
    }
    let need = (want as u64).saturating_mul((RINGS * shards) as u64).saturating_add(MARGIN);
    match limit {
        Ok(limit) if limit >= need => IoMemory { per_shard: want, limited_by: None },
        Ok(limit) => IoMemory { per_shard: MIN_IO_MEMORY, limited_by: Some(Shortfall::Limit { limit, need, shards }) },
        Err(e) => IoMemory { per_shard: MIN_IO_MEMORY, limited_by: Some(Shortfall::Unreadable(e)) },
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

/// Whether the process runs in the initial user namespace, where its
/// capabilities are the ones io_uring checks (root in a container with its
/// own user namespace has `CAP_IPC_LOCK` only there).
fn in_initial_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .is_ok_and(|map| map.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"])
}

/// The memory the broker may use: the machine's, or its cgroup's limit
/// where that is lower (`u64::MAX` when neither can be read).
fn usable_memory() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        let kib = m.lines().find_map(|l| l.strip_prefix("MemTotal:"))?.trim().trim_end_matches("kB").trim();
        kib.parse::<u64>().ok().map(|k| k * 1024)
    });
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max").ok().and_then(|m| m.trim().parse::<u64>().ok());
    total.unwrap_or(u64::MAX).min(cgroup.unwrap_or(u64::MAX))
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
        let ram = 24 << 30;
        let full = (192 << 20) + IN_FLIGHT;
        let unlimited = |m: IoMemory| m.per_shard == full && m.limited_by.is_none();
        assert!(unlimited(decide(128 << 20, 2, true, Ok(0), ram)));
        assert!(unlimited(decide(128 << 20, 2, false, Ok(u64::MAX), ram)));
        let need = full as u64 * 6 + MARGIN;
        assert_eq!(decide(128 << 20, 2, false, Ok(need), ram).per_shard, full);
        let short = decide(128 << 20, 2, false, Ok(need - 1), ram);
        assert_eq!(short.per_shard, MIN_IO_MEMORY);
        assert!(short.limited_by.is_some_and(|why| why.to_string().contains("locked-memory limit")));
        let unknown = decide(128 << 20, 2, false, Err(io::Error::other("no")), ram);
        assert_eq!(unknown.per_shard, MIN_IO_MEMORY);
    }

    #[test]
    fn the_arena_stays_within_the_kernels_limit_and_a_share_of_memory() {
        assert_eq!(decide(4 << 30, 2, true, Ok(0), 1 << 40).per_shard, MAX_IO_MEMORY);
        // 64 shards on 16 GiB: a quarter of it, 64 MiB each.
        assert_eq!(decide(128 << 20, 64, true, Ok(0), 16 << 30).per_shard, 64 << 20);
        assert_eq!(decide(128 << 20, 4096, true, Ok(0), 1 << 30).per_shard, MIN_IO_MEMORY);
    }
}
