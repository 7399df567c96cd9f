//! Indexes of a segment: a sparse offset index (one entry per
//! `index.interval.bytes` of log) and a time index, as Kafka keeps them.
//! A lookup lands at most one interval before the wanted batch, and a reader
//! walks batch headers from there; nothing scans a whole segment, and memory
//! grows with bytes / interval, not with the number of batches.

/// Location and bounds of one batch (for appends in flight and recovery).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchEntry {
    /// First offset in the batch.
    pub base_offset: i64,
    /// Last offset in the batch.
    pub last_offset: i64,
    /// Largest record timestamp in the batch.
    pub max_timestamp: i64,
    /// Base offset of the segment holding it.
    pub segment_base: i64,
    /// Byte position inside that segment.
    pub position: u64,
    /// Size in bytes, log overhead included.
    pub len: u32,
}

/// One offset index entry: the batch starting at `offset` is at `position`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    /// Base offset of an indexed batch.
    pub offset: i64,
    /// Its byte position in the segment.
    pub position: u64,
}

/// One time index entry: up to (and including) the batch at `position`
/// (offset `offset`), the largest timestamp in the segment is `timestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    /// Largest timestamp so far in the segment.
    pub timestamp: i64,
    /// Base offset of the batch that raised it.
    pub offset: i64,
    /// That batch's byte position.
    pub position: u64,
}

/// The indexes of one segment.
#[derive(Debug, Clone, Default)]
pub struct SegmentIndex {
    /// Sparse offset entries, increasing in offset and position.
    pub offsets: Vec<OffsetEntry>,
    /// Time entries, increasing in timestamp and position.
    pub times: Vec<TimeEntry>,
    /// Largest timestamp in the segment (-1 when empty).
    pub max_timestamp: i64,
    /// Offset after the segment's last batch (None when empty).
    pub next_offset: Option<i64>,
    bytes_since_entry: u64,
}

impl SegmentIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self { max_timestamp: -1, ..Self::default() }
    }

    /// Records the next batch of the segment (batches come in log order).
    pub fn append(&mut self, e: &BatchEntry, interval: u64) {
        debug_assert!(self.next_offset.is_none_or(|n| n <= e.base_offset), "batches are indexed in order");
        if self.offsets.is_empty() || self.bytes_since_entry >= interval {
            self.offsets.push(OffsetEntry { offset: e.base_offset, position: e.position });
            self.bytes_since_entry = 0;
        }
        self.bytes_since_entry += u64::from(e.len);
        if e.max_timestamp > self.max_timestamp {
            self.max_timestamp = e.max_timestamp;
            // Coalesce rises within one interval into the latest entry.
            match self.times.last_mut() {
                Some(t) if e.position - t.position < interval => t.timestamp = e.max_timestamp,
                _ => self.times.push(TimeEntry {
                    timestamp: e.max_timestamp,
                    offset: e.base_offset,
                    position: e.position,
                }),
            }
        }
        self.next_offset = Some(e.last_offset + 1);
    }

    /// Rebuilds an index from its files for a segment of `size` bytes: time
    /// entries get the position of the offset entry at or before them (a
    /// valid place to start a walk). `None` if an entry points past the end.
    pub fn from_files(loaded: super::index_file::Loaded, size: u64) -> Option<Self> {
        if loaded.offsets.last().is_some_and(|e| e.position >= size) {
            return None;
        }
        let mut ix = Self { offsets: loaded.offsets, max_timestamp: -1, ..Self::default() };
        ix.times = loaded
            .times
            .iter()
            .map(|&(timestamp, offset)| TimeEntry { timestamp, offset, position: ix.floor_position(offset) })
            .collect();
        ix.max_timestamp = ix.times.last().map_or(-1, |t| t.timestamp);
        Some(ix)
    }

    /// Prepares to re-index the segment from its last offset entry on (after
    /// a restart): drops that entry and later time entries, and returns the
    /// entry, where the walk or scan resumes.
    pub fn resume_point(&mut self) -> OffsetEntry {
        let last = self.offsets.pop().unwrap_or(OffsetEntry { offset: 0, position: 0 });
        self.times.retain(|t| t.position < last.position);
        self.max_timestamp = self.times.last().map_or(-1, |t| t.timestamp);
        self.next_offset = None;
        // The resumed batch must start a new entry.
        self.bytes_since_entry = u64::MAX;
        last
    }

    /// Where to start walking batches to find `offset`: the position of the
    /// last indexed batch starting at or before it.
    pub fn floor_position(&self, offset: i64) -> u64 {
        let i = self.offsets.partition_point(|e| e.offset <= offset);
        if i == 0 { 0 } else { self.offsets[i - 1].position }
    }

    /// Where to start walking batches to find the first record with a
    /// timestamp of at least `ts`: every batch before the returned position
    /// has only older records. `None` if the segment has none that new.
    pub fn time_floor_position(&self, ts: i64) -> Option<u64> {
        if self.max_timestamp < ts {
            return None;
        }
        // Entry i is the first whose running maximum reaches `ts`; every batch
        // before its position stayed below the previous entry's maximum.
        let i = self.times.partition_point(|t| t.timestamp < ts);
        Some(self.times[i].position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(base: i64, n: i64, ts: i64, pos: u64, len: u32) -> BatchEntry {
        BatchEntry {
            base_offset: base,
            last_offset: base + n - 1,
            max_timestamp: ts,
            segment_base: 0,
            position: pos,
            len,
        }
    }

    #[test]
    fn sparse_offsets_and_times() {
        let mut ix = SegmentIndex::new();
        let mut pos = 0;
        for i in 0..100 {
            ix.append(&batch(i * 2, 2, 1000 + i, pos, 100), 1000);
            pos += 100;
        }
        assert_eq!(ix.offsets.len(), 10, "one entry per 1000 bytes");
        assert_eq!(ix.next_offset, Some(200));
        assert_eq!(ix.max_timestamp, 1099);
        // offset 45 lives in batch 22 (offsets 44-45) at position 2200
        let p = ix.floor_position(45);
        assert!(p <= 2200 && 2200 - p < 1000, "floor {p}");
        assert_eq!(ix.floor_position(0), 0);
        // first record with ts >= 1050 is in batch 50 at position 5000
        let t = ix.time_floor_position(1050).unwrap();
        assert!(t <= 5000 && 5000 - t <= 1000, "time floor {t}");
        assert_eq!(ix.time_floor_position(2000), None);
        assert_eq!(ix.time_floor_position(0), Some(0));
    }
}
