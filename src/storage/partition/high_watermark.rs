//! The log's three ends, lowest first: the high watermark (consumers read
//! below it), the durable end (fdatasynced and published: replicas read
//! below it) and the log end (the next offset, pending appends included).
//!
//! A log with one replica keeps the high watermark at its durable end, as
//! sluice always has: what is on disk is committed. A replicated log (issue
//! 24) holds it back until every in-sync replica has the offsets: the
//! leader advances it from its followers' fetch positions, a follower from
//! the leader's fetch responses. It never passes the durable end, and only
//! a truncation moves it back.

use super::*;

// The replica fetcher and the leader's ISR tracking (issue 24) call these;
// until then only the in-process tests do.
#[cfg_attr(not(test), allow(dead_code))]
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

    /// From now on the high watermark moves only by
    /// [`Self::advance_high_watermark`] (the partition became replicated),
    /// starting from `checkpointed` (its `replication-offset-checkpoint`
    /// entry), kept between the log start and the durable end.
    pub fn hold_high_watermark(&self, checkpointed: i64) {
        let mut st = self.state.borrow_mut();
        st.replicated = true;
        st.high_watermark = checkpointed.clamp(st.log_start_offset, st.durable_end);
        st.check_invariants();
    }

    /// Moves a replicated log's high watermark up to `offset` (what every
    /// in-sync replica holds), never past the durable end and never back.
    /// Wakes long-polling consumers when it moved. Returns the new value.
    pub fn advance_high_watermark(&self, offset: i64) -> i64 {
        let mut st = self.state.borrow_mut();
        assert!(st.replicated, "only a replicated log's high watermark is set from outside");
        let hw = offset.min(st.durable_end).max(st.high_watermark);
        let moved = hw > st.high_watermark;
        st.high_watermark = hw;
        st.check_invariants();
        drop(st);
        if moved {
            self.notify.notify_all();
        }
        hw
    }
}
