//! A follower's appends that are not yet known to be durable: what lets it
//! fetch the next batch while the last one syncs (pipelining), and still
//! report its durable end (`durable_tag`) before it waits long at its
//! leader.
//!
//! After a round that left more at the leader than it brought (a follower
//! catching up, or one under a heavy load), the follower fetches again at
//! once with `max_wait_ms` 0: the leader answers with more and learns the
//! durable end so far. Pipelining is one round deep: before that fetch,
//! the appends of the round before the last must be durable. So at most
//! two rounds' records (two `replica.fetch.response.max.bytes`) wait in
//! memory for the disk, and a follower whose sync hangs stops fetching
//! within a round, falls behind and leaves the ISR, as without pipelining.
//! After any other round, the follower first waits for all its appends to
//! become durable, then fetches with the usual long wait: the fetch that
//! may park at the leader reports everything the follower holds as
//! durable, so no acknowledgement waits on a sync the leader has not been
//! told of, and a follower that keeps up spends no round trip on an empty
//! answer.

use std::rc::Rc;

use crate::storage::PartitionLog;

/// What [`Unsynced::settle`] decided for the next fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Fetch at once, without waiting at the leader: the last round's syncs
    /// are in flight.
    Pipelined,
    /// Everything appended is durable: fetch with the usual wait.
    Parked,
    /// A log could not write what came (full or failing disk): pause before
    /// fetching, or the same records would come back at once.
    Stalled,
}

/// Appended ends (exclusive) not yet seen durable: the last round's, and
/// the rounds' before it. A round appends to each partition at most once,
/// so each list holds at most one entry per followed partition.
#[derive(Default)]
pub struct Unsynced {
    last: Vec<(Rc<PartitionLog>, i64)>,
    earlier: Vec<(Rc<PartitionLog>, i64)>,
}

impl Unsynced {
    /// Records that this round appended to `log` up to `end`.
    pub fn add(&mut self, log: Rc<PartitionLog>, end: i64) {
        self.last.push((log, end));
    }

    /// Decides how the next fetch goes, after a round that left the
    /// follower `behind` its leader or not; waits for the syncs it must.
    pub async fn settle(&mut self, behind: bool) -> Next {
        // What is durable, or was cut off (a failed write cuts the log back
        // to its durable end; a truncation), or belongs to a closed copy
        // (moved away, started afresh) is not waited for.
        let failed = self.last.iter().chain(&self.earlier).any(|(log, _)| log.write_failing());
        let waiting = |(log, end): &(Rc<PartitionLog>, i64)| {
            !log.is_closed() && log.durable_end() < *end && log.log_end() >= *end
        };
        self.last.retain(waiting);
        self.earlier.retain(waiting);
        if self.last.is_empty() && self.earlier.is_empty() && !failed {
            // All durable: a fetch with the long wait reports all of it, and
            // a leader that holds more answers it at once.
            return Next::Parked;
        }
        let mut ok = self.drain_earlier().await;
        std::mem::swap(&mut self.last, &mut self.earlier);
        if behind && !failed && ok {
            // One round deep: the last round's syncs stay in flight.
            return Next::Pipelined;
        }
        ok &= self.drain_earlier().await;
        if ok && !failed { Next::Parked } else { Next::Stalled }
    }

    /// Waits for every append of `earlier`; whether all became durable (a
    /// closed copy's appends count as settled).
    async fn drain_earlier(&mut self) -> bool {
        let mut ok = true;
        for (log, end) in self.earlier.drain(..) {
            ok &= log.durable(end).await.is_ok() || log.is_closed();
        }
        ok
    }
}
