//! A partition's leader epoch cache: which leader epoch began writing at
//! which offset, as Kafka keeps it in `leader-epoch-checkpoint`. A follower
//! asks its leader, with OffsetForLeaderEpoch, where the epoch of its last
//! record ended, and truncates its log there before fetching (issue 24);
//! clients ask the same to validate their position after a leader change.
//!
//! The entries are kept in increasing epoch and increasing start offset; an
//! entry that breaks that order when a new one arrives is removed, as in
//! Kafka. The file is Kafka's checkpoint format: a version line (0), a
//! count line, then `epoch start_offset` per line. File calls block: run
//! them off the reactor.

use std::io;
use std::path::Path;

use thiserror::Error;

use super::atomic_file::{self, Replacement};

/// File name inside the partition directory (Kafka's).
pub const FILE_NAME: &str = "leader-epoch-checkpoint";

/// The checkpoint format's version.
const VERSION: i32 = 0;

/// Most entries a checkpoint may hold: a bound on what a damaged file's
/// count line can make the reader allocate. A partition gets one entry per
/// leader change; Kafka's default limits make millions unthinkable.
pub const MAX_ENTRIES: usize = 1 << 20;

/// "No epoch" / "no offset", as OffsetForLeaderEpoch answers them.
pub const UNDEFINED: i64 = -1;

/// One leader epoch and the first offset it wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    /// The leader epoch.
    pub epoch: i32,
    /// The first offset written in it.
    pub start_offset: i64,
}

/// A checkpoint file that does not read back.
#[derive(Debug, Error)]
pub enum CheckpointError {
    #[error("reading {FILE_NAME}: {0}")]
    Io(#[from] io::Error),
    #[error("{FILE_NAME} line {line}: {why}")]
    Malformed { line: usize, why: String },
}

/// The epochs of one partition, in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpochCache {
    entries: Vec<EpochEntry>,
}

impl EpochCache {
    /// The entries, oldest first.
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The epoch that wrote `offset`: the last one that began at or
    /// before it.
    pub fn epoch_at(&self, offset: i64) -> Option<i32> {
        self.entries.iter().rev().find(|e| e.start_offset <= offset).map(|e| e.epoch)
    }

    /// The newest epoch, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Records that `epoch` began writing at `start_offset`. Entries with an
    /// epoch at least as high or a start at least as late go first (they
    /// belonged to a history that this one replaces); the same epoch again
    /// at a later offset changes nothing. Returns whether anything changed.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        assert!(epoch >= 0 && start_offset >= 0, "epoch {epoch} at {start_offset}");
        if let Some(last) = self.entries.last()
            && last.epoch == epoch
            && last.start_offset <= start_offset
        {
            return false;
        }
        self.entries.retain(|e| e.epoch < epoch && e.start_offset < start_offset);
        self.entries.push(EpochEntry { epoch, start_offset });
        self.check();
        true
    }

    /// Where `epoch` ended, as OffsetForLeaderEpoch answers it for a log
    /// ending at `log_end`: the newest epoch at or below it, and the start
    /// of the next higher epoch (the log end for the newest epoch). An epoch
    /// above every known one, or `UNDEFINED`, answers `(UNDEFINED, UNDEFINED)`.
    pub fn end_offset_for(&self, epoch: i32, log_end: i64) -> (i64, i64) {
        let undefined = (UNDEFINED, UNDEFINED);
        if i64::from(epoch) == UNDEFINED {
            return undefined;
        }
        if self.latest_epoch() == Some(epoch) {
            return (i64::from(epoch), log_end);
        }
        let Some(higher) = self.entries.iter().find(|e| e.epoch > epoch) else {
            return undefined;
        };
        match self.entries.iter().rev().find(|e| e.epoch <= epoch) {
            Some(floor) => (i64::from(floor.epoch), higher.start_offset),
            // Older than anything kept (the start was cut): it ended where
            // the oldest kept epoch began.
            None => (i64::from(epoch), higher.start_offset),
        }
    }

    /// The log was cut back to end at `end`: epochs that began at or after
    /// it are gone.
    pub fn truncate_from_end(&mut self, end: i64) {
        self.entries.retain(|e| e.start_offset < end);
        self.check();
    }

    /// The log now starts at `start`: epochs that ended before it are gone,
    /// and the one holding it now begins there.
    pub fn truncate_from_start(&mut self, start: i64) {
        let Some(keep) = self.entries.iter().rposition(|e| e.start_offset <= start) else {
            return;
        };
        self.entries.drain(..keep);
        self.entries[0].start_offset = start;
        self.check();
    }

    /// The order every change keeps: epochs and start offsets both rise.
    fn check(&self) {
        for pair in self.entries.windows(2) {
            assert!(
                pair[0].epoch < pair[1].epoch && pair[0].start_offset < pair[1].start_offset,
                "epoch cache out of order: {:?} then {:?}",
                pair[0],
                pair[1]
            );
        }
    }

    /// The checkpoint file's text.
    fn encode(&self) -> String {
        let mut out = format!("{VERSION}\n{}\n", self.entries.len());
        for e in &self.entries {
            out.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        out
    }

    /// Parses a checkpoint file's text; anything out of Kafka's format or
    /// out of order is refused whole.
    fn decode(text: &str) -> Result<Self, CheckpointError> {
        let bad = |line: usize, why: &str| CheckpointError::Malformed { line, why: why.to_string() };
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim()));
        let (n, version) = lines.next().ok_or_else(|| bad(1, "empty file"))?;
        if version.parse::<i32>().ok() != Some(VERSION) {
            return Err(bad(n, "unknown version"));
        }
        let (n, count) = lines.next().ok_or_else(|| bad(2, "no entry count"))?;
        let count: usize = count.parse().map_err(|_| bad(n, "entry count is not a number"))?;
        if count > MAX_ENTRIES {
            return Err(bad(n, "more entries than any partition has"));
        }
        let mut cache = EpochCache::default();
        for _ in 0..count {
            let (n, line) = lines.next().ok_or_else(|| bad(0, "fewer entries than counted"))?;
            let mut parts = line.split_whitespace();
            let epoch = parts.next().and_then(|p| p.parse::<i32>().ok()).filter(|e| *e >= 0);
            let start = parts.next().and_then(|p| p.parse::<i64>().ok()).filter(|s| *s >= 0);
            let (Some(epoch), Some(start_offset), None) = (epoch, start, parts.next()) else {
                return Err(bad(n, "expected `epoch start_offset`"));
            };
            if cache.entries.last().is_some_and(|l| l.epoch >= epoch || l.start_offset >= start_offset) {
                return Err(bad(n, "entries out of order"));
            }
            cache.entries.push(EpochEntry { epoch, start_offset });
        }
        if let Some((n, extra)) = lines.find(|(_, l)| !l.is_empty()) {
            return Err(bad(n, &format!("unexpected line {extra:?} after the entries")));
        }
        Ok(cache)
    }

    /// Reads `dir`'s checkpoint; no file is an empty cache.
    pub fn load(dir: &Path) -> Result<Self, CheckpointError> {
        match std::fs::read_to_string(dir.join(FILE_NAME)) {
            Ok(text) => Self::decode(&text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes the checkpoint atomically and durably (file and directory
    /// synced) before returning.
    pub fn store(&self, dir: &Path) -> io::Result<()> {
        atomic_file::replace(dir, &[Replacement { path: dir.join(FILE_NAME), bytes: self.encode().into_bytes() }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> EpochCache {
        let mut c = EpochCache::default();
        for &(e, s) in entries {
            c.assign(e, s);
        }
        c
    }

    fn pairs(c: &EpochCache) -> Vec<(i32, i64)> {
        c.entries().iter().map(|e| (e.epoch, e.start_offset)).collect()
    }

    #[test]
    fn the_epoch_at_an_offset_is_the_last_begun_at_or_before_it() {
        let c = cache(&[(0, 0), (2, 100), (5, 250)]);
        let at: Vec<Option<i32>> = [-1, 0, 99, 100, 249, 250, i64::MAX].iter().map(|&o| c.epoch_at(o)).collect();
        assert_eq!(at, [None, Some(0), Some(0), Some(2), Some(2), Some(5), Some(5)]);
        assert_eq!(EpochCache::default().epoch_at(7), None);
    }

    #[test]
    fn assign_keeps_epochs_and_offsets_rising() {
        let mut c = cache(&[(0, 0), (2, 100), (5, 250)]);
        assert!(!c.assign(5, 300), "the same epoch later changes nothing");
        assert_eq!(pairs(&c), [(0, 0), (2, 100), (5, 250)]);
        // A lower epoch from a newer history replaces what it contradicts.
        assert!(c.assign(3, 120));
        assert_eq!(pairs(&c), [(0, 0), (2, 100), (3, 120)]);
        assert!(c.assign(4, 110));
        assert_eq!(pairs(&c), [(0, 0), (2, 100), (4, 110)]);
    }

    #[test]
    fn end_offsets_as_offset_for_leader_epoch_answers() {
        let c = cache(&[(1, 0), (3, 100), (6, 250)]);
        assert_eq!(c.end_offset_for(6, 400), (6, 400), "the newest epoch ends at the log end");
        assert_eq!(c.end_offset_for(3, 400), (3, 250));
        assert_eq!(c.end_offset_for(4, 400), (3, 250), "an epoch between two: the lower one's end");
        assert_eq!(c.end_offset_for(1, 400), (1, 100));
        assert_eq!(c.end_offset_for(0, 400), (0, 0), "older than every kept epoch");
        assert_eq!(c.end_offset_for(7, 400), (UNDEFINED, UNDEFINED));
        assert_eq!(c.end_offset_for(-1, 400), (UNDEFINED, UNDEFINED));
        assert_eq!(EpochCache::default().end_offset_for(0, 10), (UNDEFINED, UNDEFINED));
    }

    #[test]
    fn truncation_from_either_end() {
        let mut c = cache(&[(1, 0), (3, 100), (6, 250)]);
        c.truncate_from_end(250);
        assert_eq!(pairs(&c), [(1, 0), (3, 100)]);
        c.truncate_from_end(1000);
        assert_eq!(pairs(&c), [(1, 0), (3, 100)]);
        c.truncate_from_start(150);
        assert_eq!(pairs(&c), [(3, 150)]);
        c.truncate_from_start(10);
        assert_eq!(pairs(&c), [(3, 150)], "a start below the first entry changes nothing");
        c.truncate_from_end(0);
        assert!(c.entries().is_empty());
    }

    #[test]
    fn checkpoint_round_trips_and_refuses_damage() {
        let c = cache(&[(1, 0), (3, 100), (6, 250)]);
        let text = c.encode();
        assert_eq!(text, "0\n3\n1 0\n3 100\n6 250\n");
        assert_eq!(EpochCache::decode(&text).unwrap(), c);
        for bad in [
            "",
            "1\n0\n",
            "0\nx\n",
            "0\n99999999999\n",
            "0\n2\n1 0\n",
            "0\n2\n3 0\n1 5\n",
            "0\n1\n1 0 9\n",
            "0\n1\n-1 0\n",
            "0\n1\n1 0\n2 5\n",
        ] {
            assert!(EpochCache::decode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn stored_and_loaded_from_a_directory() {
        let dir = std::env::temp_dir().join(format!("sluice-epochs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(EpochCache::load(&dir).unwrap(), EpochCache::default());
        let c = cache(&[(0, 0), (4, 77)]);
        c.store(&dir).unwrap();
        assert_eq!(EpochCache::load(&dir).unwrap(), c);
        std::fs::write(dir.join(FILE_NAME), "0\n1\n").unwrap();
        assert!(matches!(EpochCache::load(&dir), Err(CheckpointError::Malformed { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
