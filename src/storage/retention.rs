//! Retention policy: which of a partition's oldest segments `retention.ms`
//! and `retention.bytes` no longer keep. Whole segments only, never the
//! active one, as Kafka does.

/// What retention needs to know of one sealed segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Bytes in the segment.
    pub size: u64,
    /// Largest record timestamp in it (-1 when it holds no batch).
    pub max_timestamp: i64,
}

/// How many segments, counted from the oldest, may be deleted. `sealed` are
/// all segments but the active one, oldest first; `total_bytes` is the size of
/// the whole log, active segment included. A limit of -1 means "keep".
pub fn deletable(
    sealed: &[SegmentInfo],
    total_bytes: u64,
    now_ms: i64,
    retention_ms: i64,
    retention_bytes: i64,
) -> usize {
    let mut n = 0;
    let mut remaining = total_bytes;
    for s in sealed {
        let expired = retention_ms >= 0 && s.max_timestamp < now_ms.saturating_sub(retention_ms);
        // Kafka deletes a segment for size only if the log stays at or above
        // the limit without it.
        let oversized = retention_bytes >= 0 && remaining.saturating_sub(s.size) >= retention_bytes as u64;
        if !(expired || oversized) {
            break;
        }
        remaining -= s.size;
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(size: u64, ts: i64) -> SegmentInfo {
        SegmentInfo { size, max_timestamp: ts }
    }

    #[test]
    fn time_and_size_limits() {
        let sealed = [seg(100, 10), seg(100, 20), seg(100, 30)];
        // active segment holds 100 more bytes: 400 in all
        assert_eq!(deletable(&sealed, 400, 1000, -1, -1), 0, "no limits");
        assert_eq!(deletable(&sealed, 400, 1000, 975, -1), 2, "older than 25 ms ago");
        assert_eq!(deletable(&sealed, 400, 1000, 0, -1), 3, "all sealed segments expired");
        assert_eq!(deletable(&sealed, 400, 1000, -1, 250), 1, "keep at least 250 bytes");
        assert_eq!(deletable(&sealed, 400, 1000, -1, 100), 3);
        assert_eq!(deletable(&sealed, 400, 1000, -1, 0), 3, "never the active segment");
        assert_eq!(deletable(&[seg(100, 10), seg(100, 990)], 300, 1000, 500, -1), 1, "stops at the first kept");
    }
}
