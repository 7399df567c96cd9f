//! A bounded cache of a partition's most recent durable batches, so tailing
//! consumers are served from memory. It always holds a contiguous suffix of
//! the log, which keeps lookups a binary search and eviction a pop-front.

use std::collections::VecDeque;

use bytes::Bytes;

/// The recent-batch cache of one partition.
pub struct BatchCache {
    batches: VecDeque<(i64, i64, Bytes)>,
    bytes: usize,
    limit: usize,
}

impl BatchCache {
    /// An empty cache holding at most `limit` bytes (plus the newest batch,
    /// which is always kept so a single large batch is still cached).
    pub fn new(limit: usize) -> Self {
        Self { batches: VecDeque::new(), bytes: 0, limit }
    }

    /// Adds the next batch of the log (`base..=last`).
    pub fn push(&mut self, base: i64, last: i64, data: Bytes) {
        if let Some(&(_, prev_last, _)) = self.batches.back() {
            debug_assert_eq!(prev_last + 1, base, "cache must hold a contiguous suffix");
        }
        self.bytes += data.len();
        self.batches.push_back((base, last, data));
        while self.bytes > self.limit && self.batches.len() > 1 {
            let (_, _, old) = self.batches.pop_front().expect("len > 1");
            self.bytes -= old.len();
        }
    }

    /// Drops the oldest batch if it is the one based at `base` (the shard
    /// budget evicts in caching order; a batch already gone is ignored).
    pub fn evict_front(&mut self, base: i64) {
        if self.batches.front().is_some_and(|(b, _, _)| *b == base) {
            let (_, _, data) = self.batches.pop_front().expect("checked");
            self.bytes -= data.len();
        }
    }

    /// Drops everything (after a failed write or a truncation).
    pub fn clear(&mut self) {
        self.batches.clear();
        self.bytes = 0;
    }

    /// The batches from the one containing `offset` on, up to `max_bytes`
    /// (but at least one batch if `min_one`) and none starting at or after
    /// `below`, or `None` if `offset` is older than the cache.
    pub fn read(&self, offset: i64, below: i64, max_bytes: usize, min_one: bool) -> Option<Vec<Bytes>> {
        let &(first, _, _) = self.batches.front()?;
        if offset < first {
            return None;
        }
        let start = self.batches.partition_point(|(_, last, _)| *last < offset);
        let mut out = Vec::new();
        let mut total = 0;
        for (base, _, b) in self.batches.range(start..) {
            if *base >= below {
                break;
            }
            if (min_one && out.is_empty()) || total + b.len() <= max_bytes {
                total += b.len();
                out.push(b.clone());
                continue;
            }
            break;
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_bounded_suffix() {
        let mut c = BatchCache::new(10);
        c.push(0, 1, Bytes::from_static(b"aaaa"));
        c.push(2, 2, Bytes::from_static(b"bbbb"));
        c.push(3, 5, Bytes::from_static(b"cccc"));
        assert!(c.read(0, i64::MAX, 100, true).is_none(), "oldest batch evicted");
        assert_eq!(c.read(2, i64::MAX, 100, true).unwrap().len(), 2);
        assert_eq!(c.read(4, i64::MAX, 100, true).unwrap(), vec![Bytes::from_static(b"cccc")]);
        assert_eq!(c.read(2, i64::MAX, 1, true).unwrap().len(), 1, "first batch returned even over the limit");
        assert!(c.read(2, i64::MAX, 1, false).unwrap().is_empty(), "over the limit without min_one");
        assert_eq!(c.read(2, i64::MAX, 8, false).unwrap().len(), 2);
        assert!(c.read(6, i64::MAX, 100, true).unwrap().is_empty());
        assert_eq!(c.read(2, 3, 100, true).unwrap().len(), 1, "nothing at or past the bound");
        assert!(c.read(2, 2, 100, true).unwrap().is_empty());
    }
}
