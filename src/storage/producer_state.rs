//! Idempotent producers' state per partition, as Kafka keeps it: for each
//! producer id its epoch and its last five batches (sequence range and
//! offsets), so that a retried batch is answered with its original offset
//! instead of being appended twice, and a gap in the sequence is refused.
//! Snapshotted to `producer.snapshot` in the partition directory (at segment
//! roll and clean shutdown); batches after the snapshot are replayed from the
//! log on open.

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use thiserror::Error;

use super::atomic_file::Replacement;

/// Batches remembered per producer (Kafka's
/// `max.in.flight.requests.per.connection` limit for idempotence).
pub const REMEMBERED_BATCHES: usize = 5;

const SNAPSHOT_FILE: &str = "producer.snapshot";
const SNAPSHOT_MAGIC: &[u8; 8] = b"SLPRODS1";

/// One appended batch of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// What is known about one producer id in this partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<ProducerBatch>,
    /// Max timestamp of its last batch (ms), for expiry.
    pub last_timestamp: i64,
}

/// Why an idempotent batch is refused.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum SequenceError {
    #[error("producer {producer_id}: epoch {epoch} is older than the current epoch {current}")]
    InvalidEpoch { producer_id: i64, epoch: i16, current: i16 },
    #[error("producer {producer_id}: sequence {seq} does not follow {last} (epoch {epoch})")]
    OutOfOrder { producer_id: i64, epoch: i16, seq: i32, last: i32 },
}

/// The outcome of checking a batch against its producer's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Append it.
    Fresh,
    /// Already in the log: answer with the original batch's offsets.
    Duplicate(ProducerBatch),
}

/// Sequences wrap at `i32::MAX` back to 0, as Kafka's do.
fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX { 0 } else { seq + 1 }
}

impl ProducerEntry {
    /// Checks a batch (epoch, sequence range) of `producer_id`.
    pub fn check(&self, producer_id: i64, epoch: i16, first_seq: i32, last_seq: i32) -> Result<Check, SequenceError> {
        let known = !self.batches.is_empty();
        if known && epoch < self.epoch {
            return Err(SequenceError::InvalidEpoch { producer_id, epoch, current: self.epoch });
        }
        if known && epoch == self.epoch {
            if let Some(b) = self.batches.iter().find(|b| b.first_seq == first_seq && b.last_seq == last_seq) {
                return Ok(Check::Duplicate(*b));
            }
            let last = self.batches.back().expect("known").last_seq;
            if first_seq != next_seq(last) {
                return Err(SequenceError::OutOfOrder { producer_id, epoch, seq: first_seq, last });
            }
        } else if known && first_seq != 0 {
            // A new epoch starts its sequence at 0.
            return Err(SequenceError::OutOfOrder { producer_id, epoch, seq: first_seq, last: -1 });
        }
        // An unknown producer (new, or expired) may start anywhere, as in
        // Kafka since KIP-360.
        Ok(Check::Fresh)
    }

    /// Records an appended batch.
    pub fn record(&mut self, epoch: i16, batch: ProducerBatch, timestamp: i64) {
        if epoch != self.epoch {
            self.batches.clear();
            self.epoch = epoch;
        }
        if self.batches.len() == REMEMBERED_BATCHES {
            self.batches.pop_front();
        }
        self.batches.push_back(batch);
        self.last_timestamp = self.last_timestamp.max(timestamp);
    }
}

/// The producers of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerState {
    pub producers: HashMap<i64, ProducerEntry>,
}

impl ProducerState {
    /// Records an appended batch of `producer_id`.
    pub fn record(&mut self, producer_id: i64, epoch: i16, batch: ProducerBatch, timestamp: i64) {
        self.producers.entry(producer_id).or_default().record(epoch, batch, timestamp);
    }

    /// Forgets producers whose last batch is older than `expiration_ms`
    /// (`producer.id.expiration.ms`). Returns how many went.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| e.last_timestamp.saturating_add(expiration_ms) > now_ms);
        before - self.producers.len()
    }

    /// Encodes the state, valid for the log below `end_offset`.
    fn encode(&self, end_offset: i64) -> Vec<u8> {
        let mut b = Vec::with_capacity(32 + self.producers.len() * 64);
        b.extend_from_slice(SNAPSHOT_MAGIC);
        b.extend_from_slice(&end_offset.to_be_bytes());
        b.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        for (pid, e) in &self.producers {
            b.extend_from_slice(&pid.to_be_bytes());
            b.extend_from_slice(&e.epoch.to_be_bytes());
            b.extend_from_slice(&e.last_timestamp.to_be_bytes());
            b.push(e.batches.len() as u8);
            for x in &e.batches {
                b.extend_from_slice(&x.first_seq.to_be_bytes());
                b.extend_from_slice(&x.last_seq.to_be_bytes());
                b.extend_from_slice(&x.first_offset.to_be_bytes());
                b.extend_from_slice(&x.last_offset.to_be_bytes());
            }
        }
        let crc = crate::crc::crc32c(&b);
        b.extend_from_slice(&crc.to_be_bytes());
        b
    }

    /// Decodes a snapshot: the state and the log end it is valid for.
    fn decode(b: &[u8]) -> Option<(Self, i64)> {
        let (body, crc) = b.split_at_checked(b.len().checked_sub(4)?)?;
        if crate::crc::crc32c(body).to_be_bytes() != crc || !body.starts_with(SNAPSHOT_MAGIC) {
            return None;
        }
        let mut r = &body[SNAPSHOT_MAGIC.len()..];
        fn take<const N: usize>(r: &mut &[u8]) -> Option<[u8; N]> {
            let (head, rest) = r.split_at_checked(N)?;
            *r = rest;
            head.try_into().ok()
        }
        let end = i64::from_be_bytes(take(&mut r)?);
        let count = u32::from_be_bytes(take(&mut r)?);
        let mut state = ProducerState::default();
        for _ in 0..count {
            let pid = i64::from_be_bytes(take(&mut r)?);
            let epoch = i16::from_be_bytes(take(&mut r)?);
            let last_timestamp = i64::from_be_bytes(take(&mut r)?);
            let n = take::<1>(&mut r)?[0] as usize;
            let mut batches = VecDeque::with_capacity(n);
            for _ in 0..n {
                batches.push_back(ProducerBatch {
                    first_seq: i32::from_be_bytes(take(&mut r)?),
                    last_seq: i32::from_be_bytes(take(&mut r)?),
                    first_offset: i64::from_be_bytes(take(&mut r)?),
                    last_offset: i64::from_be_bytes(take(&mut r)?),
                });
            }
            state.producers.insert(pid, ProducerEntry { epoch, batches, last_timestamp });
        }
        r.is_empty().then_some((state, end))
    }

    /// The snapshot file in `dir`, valid for the log below `end_offset`,
    /// for [`super::atomic_file::replace`].
    pub fn snapshot(&self, dir: &Path, end_offset: i64) -> Replacement {
        Replacement { path: dir.join(SNAPSHOT_FILE), bytes: self.encode(end_offset) }
    }

    /// Reads the snapshot, if there is a valid one (blocking).
    pub fn read_snapshot(dir: &Path) -> Option<(Self, i64)> {
        std::fs::read(dir.join(SNAPSHOT_FILE)).ok().and_then(|b| Self::decode(&b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(first_seq: i32, last_seq: i32, first_offset: i64) -> ProducerBatch {
        ProducerBatch { first_seq, last_seq, first_offset, last_offset: first_offset + i64::from(last_seq - first_seq) }
    }

    #[test]
    fn duplicates_are_found_and_gaps_refused() {
        let mut e = ProducerEntry::default();
        assert_eq!(e.check(7, 0, 0, 9), Ok(Check::Fresh));
        e.record(0, batch(0, 9, 100), 1);
        assert_eq!(e.check(7, 0, 0, 9), Ok(Check::Duplicate(batch(0, 9, 100))));
        assert_eq!(e.check(7, 0, 10, 19), Ok(Check::Fresh));
        assert!(matches!(e.check(7, 0, 11, 19), Err(SequenceError::OutOfOrder { .. })));
        e.record(1, batch(0, 4, 200), 2);
        assert!(matches!(e.check(7, 0, 5, 9), Err(SequenceError::InvalidEpoch { .. })));
        assert!(matches!(e.check(7, 2, 3, 9), Err(SequenceError::OutOfOrder { .. })));
        assert_eq!(e.check(7, 2, 0, 9), Ok(Check::Fresh));
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut e = ProducerEntry::default();
        for i in 0..7 {
            e.record(0, batch(i * 10, i * 10 + 9, i64::from(i) * 10), 0);
        }
        assert_eq!(e.batches.len(), REMEMBERED_BATCHES);
        assert!(matches!(e.check(1, 0, 0, 9), Err(SequenceError::OutOfOrder { .. })));
        assert_eq!(e.check(1, 0, 60, 69), Ok(Check::Duplicate(batch(60, 69, 60))));
    }

    #[test]
    fn snapshot_round_trips_and_rejects_corruption() {
        let mut s = ProducerState::default();
        s.record(1, 0, batch(0, 4, 0), 10);
        s.record(2, 3, batch(5, 9, 5), 20);
        let bytes = s.encode(10);
        assert_eq!(ProducerState::decode(&bytes), Some((s.clone(), 10)));
        let mut bad = bytes.clone();
        bad[12] ^= 1;
        assert_eq!(ProducerState::decode(&bad), None);
        assert_eq!(ProducerState::decode(&bytes[..bytes.len() - 1]), None);
        assert_eq!(s.expire(1_000, 985), 1);
    }
}
