//! A follower's appends that are not yet known to be durable: what lets it
//! fetch the next batch while the last one syncs (pipelining), and still
//! report its durable end (`durable_tag`) before it waits long at its
//! leader.
//!
//! After a round that left more at the leader than it brought (a follower
//! catching up, or one under a heavy load), the follower fetches again at
//! once with `max_wait_ms` 0: the leader answers with more and learns the
//! durable end so far. After any other round, the follower first waits
//! for its appends to become durable, then fetches with the usual long
//! wait: the fetch that may park at the leader carries a durable end that
//! covers everything the follower holds, so no acknowledgement waits on a
//! sync the leader has not been told of, and a follower that keeps up
//! spends no round trip on an empty answer.

use std::rc::Rc;

use crate::storage::PartitionLog;

/// Most appends remembered: a fetch covers every followed partition once,
/// and a round appends at most once per partition, so this is reached only
/// by a follower of this many partitions of one leader, which then waits
/// for its syncs before fetching again (the simple form).
const MAX_UNSYNCED: usize = 4096;

/// What [`Unsynced::settle`] decided for the next fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Fetch at once, without waiting at the leader: syncs are in flight.
    Pipelined,
    /// Everything appended is durable: fetch with the usual wait.
    Parked,
    /// A log could not write what came (full or failing disk): pause before
    /// fetching, or the same records would come back at once.
    Stalled,
}

/// Appended ends (exclusive) not yet seen durable, per log.
#[derive(Default)]
pub struct Unsynced {
    pending: Vec<(Rc<PartitionLog>, i64)>,
}

impl Unsynced {
    /// Records that `log` was appended to up to `end`.
    pub fn add(&mut self, log: Rc<PartitionLog>, end: i64) {
        match self.pending.iter_mut().find(|(l, _)| Rc::ptr_eq(l, &log)) {
            Some((_, e)) => *e = (*e).max(end),
            None => self.pending.push((log, end)),
        }
        debug_assert!(self.pending.len() <= MAX_UNSYNCED + 1);
    }

    /// Decides how the next fetch goes, after a round that left the
    /// follower `behind` its leader or not; waits for the syncs when it
    /// should.
    pub async fn settle(&mut self, behind: bool) -> Next {
        // A failed write cuts the log back to its durable end: asked first,
        // as the cut leaves nothing to wait for below.
        if self.pending.iter().any(|(log, _)| log.write_failing()) {
            self.pending.clear();
            return Next::Stalled;
        }
        // Forget what became durable, or was cut off by a truncation.
        self.pending.retain(|(log, end)| log.durable_end() < *end && log.log_end() >= *end);
        if self.pending.is_empty() {
            return Next::Parked;
        }
        if behind && self.pending.len() <= MAX_UNSYNCED {
            return Next::Pipelined;
        }
        let mut next = Next::Parked;
        for (log, end) in self.pending.drain(..) {
            if log.durable(end).await.is_err() {
                next = Next::Stalled;
            }
        }
        next
    }
}
