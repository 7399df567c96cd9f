//! The shard-wide bound on cached batches (`--cache-bytes`). Each partition
//! keeps its recent batches (a contiguous suffix of its log); this budget
//! remembers, across all of the shard's partitions, in which order batches
//! were cached, and when the total is over the limit it evicts the oldest,
//! whichever partition holds them. Only writes fill the cache, so catch-up
//! readers never push out the tail that live consumers read.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Weak;

use super::partition::PartitionLog;

/// One cached batch, in caching order.
struct Charge {
    log: Weak<PartitionLog>,
    base_offset: i64,
    bytes: usize,
}

/// The shard's cache budget.
pub struct CacheBudget {
    limit: usize,
    used: Cell<usize>,
    order: RefCell<VecDeque<Charge>>,
}

impl CacheBudget {
    /// A budget of `limit` bytes for the whole shard.
    pub fn new(limit: usize) -> Self {
        Self { limit, used: Cell::new(0), order: RefCell::new(VecDeque::new()) }
    }

    /// The limit in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes currently charged (may briefly count batches a partition has
    /// already dropped on its own; they are released when reached).
    #[cfg(test)]
    pub fn used(&self) -> usize {
        self.used.get()
    }

    /// Records that `log` cached these batches (base offset, bytes), then
    /// evicts the shard's oldest cached batches until the total fits.
    /// Must be called with no partition state borrowed.
    pub fn charge(&self, log: &Weak<PartitionLog>, batches: &[(i64, usize)]) {
        {
            let mut order = self.order.borrow_mut();
            for &(base_offset, bytes) in batches {
                order.push_back(Charge { log: log.clone(), base_offset, bytes });
                self.used.set(self.used.get() + bytes);
            }
        }
        while self.used.get() > self.limit {
            let Some(oldest) = self.order.borrow_mut().pop_front() else {
                break;
            };
            self.used.set(self.used.get() - oldest.bytes);
            if let Some(log) = oldest.log.upgrade() {
                log.evict_cached(oldest.base_offset);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_within_the_limit_evicting_oldest_first() {
        let b = CacheBudget::new(100);
        let gone: Weak<PartitionLog> = Weak::new();
        b.charge(&gone, &[(0, 40), (1, 40)]);
        assert_eq!(b.used(), 80);
        b.charge(&gone, &[(2, 40)]);
        assert_eq!(b.used(), 80, "the oldest batch was evicted");
        assert_eq!(b.order.borrow().front().map(|c| c.base_offset), Some(1));
        b.charge(&gone, &[(3, 500)]);
        assert_eq!(b.used(), 0, "a batch above the limit is not kept either");
    }
}
