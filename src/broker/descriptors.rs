//! File descriptors: every partition holds its segment files open, and
//! every connection a socket. The soft `RLIMIT_NOFILE` is raised to the
//! hard limit at start, and new partitions are refused while opening them
//! would leave too few descriptors for connections, instead of failing
//! later with EMFILE on accept.

use std::io;

/// Descriptors one partition may hold: its active segment, an index, and a
/// sealed segment open for a read.
pub const PER_PARTITION: u64 = 3;

/// Descriptors kept free for connections, the data directory and the
/// metadata log after any partition is created (a quarter of the limit
/// where that is lower, so that a small limit still takes some topics).
pub const RESERVE: u64 = 1024;

/// The soft limit before and after raising it, and the hard limit.
#[derive(Debug, Clone, Copy)]
pub struct Raised {
    pub before: u64,
    pub now: u64,
    pub hard: u64,
}

fn as_u64(v: libc::rlim_t) -> u64 {
    if v == libc::RLIM_INFINITY { u64::MAX } else { v }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit.
pub fn raise_limit() -> io::Result<Raised> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write only the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(io::Error::last_os_error());
        }
        let before = as_u64(lim.rlim_cur);
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                return Err(io::Error::last_os_error());
            }
            lim = raised;
        }
        Ok(Raised { before, now: as_u64(lim.rlim_cur), hard: as_u64(lim.rlim_max) })
    }
}

fn soft_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes only the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(as_u64(lim.rlim_cur))
}

/// Descriptors the process has open now.
fn open_now() -> io::Result<u64> {
    Ok(std::fs::read_dir("/proc/self/fd")?.count() as u64)
}

/// Why new partitions cannot be opened.
#[derive(Debug, thiserror::Error)]
#[error(
    "not enough file descriptors for {partitions} more partitions: {open} of {limit} are open, and each partition \
     needs up to {PER_PARTITION}, with {RESERVE} (or a quarter of the limit) kept for connections (raise `ulimit -n` \
     or LimitNOFILE)"
)]
pub struct Exhausted {
    pub partitions: u64,
    pub open: u64,
    pub limit: u64,
}

/// Whether `partitions` more partitions fit in the descriptor limit.
pub fn room_for(partitions: u64) -> Result<(), Exhausted> {
    let (Ok(open), Ok(limit)) = (open_now(), soft_limit()) else {
        return Ok(()); // no /proc: the open itself reports EMFILE
    };
    let need = partitions.saturating_mul(PER_PARTITION).saturating_add(RESERVE.min(limit / 4));
    if open.saturating_add(need) > limit {
        return Err(Exhausted { partitions, open, limit });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_past_the_limit_is_refused() {
        assert!(room_for(1).is_ok());
        let e = room_for(u64::MAX / 4).unwrap_err();
        assert!(e.to_string().contains("not enough file descriptors"), "{e}");
    }
}
