//! The partition log's invariants, each with a name, checked where its
//! state changes: the O(1) ones always, the ones that walk the segment list
//! or the queues in debug builds and in `cargo test`. A broken invariant
//! panics with its name: the log must never go on from a state it cannot
//! explain (acknowledged data is at stake).

use super::{Spare, State, sealed_sum};
use crate::storage::chunk::{CHUNK_CAPACITY, PAGE};

// A chunk's buffer (capacity plus the prefix page) is a power of two: the
// registered arena's buddy allocator rounds every buffer up to one.
const _: () = assert!((CHUNK_CAPACITY + PAGE as usize).is_power_of_two());
const _: () = assert!(PAGE.is_power_of_two());

impl State {
    /// Panics with the name of the first invariant that does not hold.
    pub(super) fn check_invariants(&self) {
        let fail = |name: &str, detail: String| -> ! { panic!("partition log invariant `{name}` broken: {detail}") };
        let (start, hw, durable, end) =
            (self.log_start_offset, self.high_watermark, self.durable_end, self.next_offset);
        if !(start <= hw && hw <= durable && durable <= end) {
            fail(
                "log_start <= high_watermark <= durable_end <= log_end",
                format!("{start} / {hw} / {durable} / {end}"),
            );
        }
        if !self.replicated && hw != durable {
            fail("an unreplicated log's high watermark is its durable end", format!("{hw} != {durable}"));
        }
        let Some(last) = self.segments.last() else { fail("segments non-empty", "no segment".into()) };
        if self.write_segment < last.base_offset {
            fail("write segment at or after the active one", format!("{} < {}", self.write_segment, last.base_offset));
        }
        if cfg!(any(test, debug_assertions)) {
            self.check_segments();
            self.check_queues();
        }
    }

    /// Segments sorted and not overlapping; the sealed bytes kept in step.
    fn check_segments(&self) {
        for pair in self.segments.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            if a.base_offset >= b.base_offset {
                panic!("partition log invariant `segments sorted` broken: {} then {}", a.base_offset, b.base_offset);
            }
            if a.index.next_offset.is_some_and(|n| n > b.base_offset) {
                panic!(
                    "partition log invariant `segments do not overlap` broken: {} ends at {:?}, {} follows",
                    a.base_offset, a.index.next_offset, b.base_offset
                );
            }
        }
        let sum = sealed_sum(&self.segments);
        assert_eq!(self.sealed_bytes, sum, "partition log invariant `sealed_bytes is the sealed segments' sum` broken");
    }

    /// Waiters ordered by the end they wait for; pending chunks in order,
    /// after the durable end, ending at the log end.
    fn check_queues(&self) {
        for queue in [&self.waiters, &self.hw_waiters] {
            let ends: Vec<i64> = queue.iter().map(|(e, _)| *e).collect();
            if ends.windows(2).any(|w| w[0] > w[1]) {
                panic!("partition log invariant `waiters ordered by end offset` broken: {ends:?}");
            }
        }
        if self.hw_waiters.front().is_some_and(|(end, _)| *end <= self.high_watermark) {
            panic!("partition log invariant `no waiter for a high watermark already reached` broken");
        }
        let mut expect = None;
        for c in &self.pending {
            let Some(first) = c.entries.first() else { continue };
            // A follower's batches may leave gaps (a compacted leader's log),
            // never overlaps.
            if first.base_offset < self.durable_end || expect.is_some_and(|e| e > first.base_offset) {
                panic!(
                    "partition log invariant `pending chunks in order after the durable end` broken: chunk at {}, after {:?}, durable end {}",
                    first.base_offset, expect, self.durable_end
                );
            }
            expect = Some(c.end_offset);
        }
        if let Some(e) = expect.filter(|e| *e != self.next_offset) {
            panic!("partition log invariant `pending ends at the log end` broken: {e} != {}", self.next_offset);
        }
    }

    /// Moves the spare segment along its allowed edges only: a free spare
    /// or none becomes busy (taken for a roll, or being made by retention),
    /// and a busy one becomes ready or absent.
    pub(super) fn move_spare(&mut self, next: Spare) {
        let allowed = matches!(
            (self.spare, next),
            (Spare::Ready(_) | Spare::Absent, Spare::Busy) | (Spare::Busy, Spare::Ready(_) | Spare::Absent)
        );
        assert!(allowed, "partition log invariant `spare moves along its edges` broken: {:?} -> {next:?}", self.spare);
        self.spare = next;
    }
}
