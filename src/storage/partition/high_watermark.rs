//! The log's three ends, lowest first: the high watermark (consumers read
//! below it), the durable end (fdatasynced and published: replicas read
//! below it) and the log end (the next offset, pending appends included).
//!
//! A log with one replica keeps the high watermark at its durable end, as
//! sluice always has: what is on disk is committed. A replicated log holds
//! it back to a bound that replication sets: on the leader the lowest
//! durable end its in-sync followers reported, on a follower the leader's
//! high watermark. It follows the durable end up to that bound, never
//! goes back (only a truncation moves it back), and acks=all produce
//! requests wait for it ([`PartitionLog::committed`]).

use glommio::channels::local_channel;

use super::*;

impl PartitionLog {
    /// The end of what consumers may read.
    pub fn high_watermark(&self) -> i64 {
        self.state.borrow().high_watermark
    }

    /// The end of what is durable on this replica: what a follower fetching
    /// from it may read.
    pub fn durable_end(&self) -> i64 {
        self.state.borrow().durable_end
    }

    /// The offset the next appended batch gets.
    pub fn log_end(&self) -> i64 {
        self.state.borrow().next_offset
    }

    /// From now on the high watermark moves only up to the bound
    /// [`Self::bound_high_watermark`] sets (the partition became
    /// replicated), starting from `checkpointed` (its
    /// `replication-offset-checkpoint` entry), kept between the log start
    /// and the durable end. Until a bound is set, it stays there.
    pub fn hold_high_watermark(&self, checkpointed: i64) {
        let mut st = self.state.borrow_mut();
        st.replicated = true;
        st.hw_bound = i64::MIN;
        st.high_watermark = checkpointed.clamp(st.log_start_offset, st.durable_end);
        st.check_invariants();
    }

    /// How far a follower's log end trails its leader's high watermark as
    /// the leader last told it (DescribeLogDirs' offset lag); 0 on a
    /// leader, and before the leader has said.
    pub fn lag_behind_leader(&self) -> i64 {
        let st = self.state.borrow();
        let told = st.following && st.hw_bound != i64::MIN && st.hw_bound != i64::MAX;
        if told { (st.hw_bound - st.next_offset).max(0) } else { 0 }
    }

    /// Whether the high watermark is held for replication.
    pub fn is_replicated(&self) -> bool {
        self.state.borrow().replicated
    }

    /// Lets a replicated log's high watermark follow its durable end up to
    /// `bound` (what every in-sync replica holds); it never goes back.
    /// Wakes long-polling consumers and acks=all producers when it moved.
    /// Returns the new high watermark.
    pub fn bound_high_watermark(&self, bound: i64) -> i64 {
        let mut st = self.state.borrow_mut();
        assert!(st.replicated, "only a replicated log's high watermark is bounded from outside");
        st.hw_bound = bound;
        let hw = bound.min(st.durable_end).max(st.high_watermark);
        let moved = hw > st.high_watermark;
        st.high_watermark = hw;
        st.wake_committed();
        st.check_invariants();
        drop(st);
        if moved {
            self.notify.notify_all();
        }
        hw
    }

    /// Resolves once the high watermark reaches `end` (every in-sync
    /// replica holds the offsets below it): what an acks=all produce
    /// request waits for. Fails if the log closes or a write of those
    /// offsets fails; callers bound the wait with the request's timeout.
    pub fn committed(&self, end: i64) -> impl std::future::Future<Output = Result<(), StorageError>> + use<> {
        let rx = {
            let mut st = self.state.borrow_mut();
            if st.high_watermark >= end {
                None
            } else {
                let (tx, rx) = local_channel::new_bounded(1);
                let at = st.hw_waiters.partition_point(|(e, _)| *e <= end);
                st.hw_waiters.insert(at, (end, tx));
                Some(rx)
            }
        };
        async move {
            match rx {
                None => Ok(()),
                Some(rx) => rx.recv().await.unwrap_or(Err(StorageError::Closed)),
            }
        }
    }
}

impl PartitionLog {
    /// Makes this replica a follower: producers' appends are refused from
    /// now on, and every acks=all request waiting here fails. From now on
    /// its high watermark is its new leader's, which says nothing about the
    /// records those requests appended (the follower may even cut them
    /// off). [`Self::become_leader`] ends it.
    pub fn become_follower(&self) {
        let waiting = {
            let mut st = self.state.borrow_mut();
            st.following = true;
            // Until the leader says, the high watermark stays where it is
            // (a former leader alone in sync had no bound).
            if st.replicated {
                st.hw_bound = i64::MIN;
            }
            std::mem::take(&mut st.hw_waiters)
        };
        for (_, w) in waiting {
            let _ = w.try_send(Err(StorageError::LeaderMoved));
        }
    }
}

impl State {
    /// Answers the acks=all waiters the high watermark has reached.
    pub(super) fn wake_committed(&mut self) {
        let hw = self.high_watermark;
        while self.hw_waiters.front().is_some_and(|(end, _)| *end <= hw) {
            let (_, w) = self.hw_waiters.pop_front().expect("checked");
            let _ = w.try_send(Ok(()));
        }
    }
}
