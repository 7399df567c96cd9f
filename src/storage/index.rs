//! The in-memory batch index of a partition: where each durable batch lives.
//! Lookups by offset are binary searches; nothing scans a segment file.

/// Location and bounds of one batch.
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

/// Index of the first entry whose batch contains or follows `offset`.
pub fn find(entries: &[BatchEntry], offset: i64) -> usize {
    entries.partition_point(|e| e.last_offset < offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_returns_the_batch_containing_an_offset() {
        let e = |b, l| BatchEntry {
            base_offset: b,
            last_offset: l,
            max_timestamp: 0,
            segment_base: 0,
            position: 0,
            len: 1,
        };
        let v = vec![e(0, 4), e(5, 5), e(6, 9)];
        assert_eq!(find(&v, 0), 0);
        assert_eq!(find(&v, 3), 0);
        assert_eq!(find(&v, 5), 1);
        assert_eq!(find(&v, 7), 2);
        assert_eq!(find(&v, 10), 3);
    }
}
