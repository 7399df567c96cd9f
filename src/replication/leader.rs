//! The leader's side: it takes a partition's lead (fresh follower
//! progress, the high watermark held for the ISR), records each follower
//! fetch, and bounds the high watermark by the ISR's lowest durable end.

use std::time::Instant;

use crate::metadata::TopicMeta;
use crate::storage::PartitionLog;

use super::progress::{Ends, Progress};
use super::{PartitionKey, Replication};

/// What a follower's fetch position says about its log, against the
/// leader's (Fetch v12+'s `last_fetched_epoch` check).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// Its log is a prefix of the leader's: send it what follows.
    Consistent,
    /// Its log holds offsets the leader's does not (an older leader's
    /// tail): it must cut back to the end of `epoch`, `end_offset`, first.
    Diverging { epoch: i32, end_offset: i64 },
    /// It is not one of the partition's replicas.
    NotAReplica,
    /// It fetches from past the leader's durable end.
    Ahead,
}

/// Where a follower whose last batch has `last_epoch` and whose log ends at
/// `fetch_offset` stands against `log`. A follower that sends no epoch (-1)
/// is taken at its word.
pub fn position(log: &PartitionLog, fetch_offset: i64, last_epoch: i32) -> Position {
    if last_epoch < 0 {
        return Position::Consistent;
    }
    let (epoch, end_offset) = log.end_offset_for_epoch(last_epoch);
    let epoch = i32::try_from(epoch).unwrap_or(-1);
    if epoch == last_epoch && end_offset >= fetch_offset {
        Position::Consistent
    } else if epoch < 0 {
        // The follower's last epoch is newer than any this log knows (it
        // led after an unclean election, say): no common epoch bounds the
        // cut, so it goes back to what this leader has committed, as
        // Kafka's follower truncates to its high watermark then.
        Position::Diverging { epoch, end_offset: log.high_watermark() }
    } else {
        Position::Diverging { epoch, end_offset }
    }
}

impl Replication {
    /// This shard leads partition `p` of `topic` through `log` at the
    /// topic's current leader epoch: follower progress starts afresh at a
    /// new epoch, and the high watermark is bounded by the current ISR.
    pub fn lead(&self, topic: &TopicMeta, p: usize, log: &PartitionLog) {
        let key: PartitionKey = (topic.id, p as i32);
        let (epoch, leader, replicas) = (topic.epochs[p], topic.leaders[p], &topic.replicas[p]);
        {
            let mut leading = self.leading.borrow_mut();
            let pr = match leading.get_mut(&key) {
                Some(pr) if pr.epoch == epoch => {
                    pr.set_replicas(leader, replicas, Instant::now());
                    pr
                }
                _ => leading.entry(key).insert_entry(Progress::new(epoch, leader, replicas, Instant::now())).into_mut(),
            };
            pr.set_isr(&topic.isr[p]);
        }
        self.bound(topic, p, log);
    }

    /// This shard no longer leads partition `p` of `topic`.
    pub fn stop_leading(&self, key: PartitionKey) {
        self.leading.borrow_mut().remove(&key);
    }

    /// Records that follower `replica` fetched partition `p` of `topic`
    /// with its log at `ends`, and moves the high watermark if that lets it.
    /// Returns false if `replica` is not one of its followers.
    pub fn on_replica_fetch(&self, topic: &TopicMeta, p: usize, replica: i32, ends: Ends, log: &PartitionLog) -> bool {
        let key: PartitionKey = (topic.id, p as i32);
        {
            let mut leading = self.leading.borrow_mut();
            let Some(progress) = leading.get_mut(&key).filter(|pr| pr.knows(replica)) else { return false };
            progress.on_fetch(replica, ends, log.durable_end(), Instant::now());
        }
        self.bound(topic, p, log);
        true
    }

    /// Bounds `log`'s high watermark by what partition `p`'s maximal ISR
    /// holds (the ISR this shard was told with its role, not the request's
    /// snapshot, which may be older; and the followers joining it).
    fn bound(&self, topic: &TopicMeta, p: usize, log: &PartitionLog) {
        let key: PartitionKey = (topic.id, p as i32);
        let bound = self.leading.borrow().get(&key).map_or(i64::MAX, |pr| pr.bound(&pr.maximal_isr()));
        if log.is_replicated() {
            log.bound_high_watermark(bound);
        }
    }

    /// Whether this shard leads partition `key` (with followers).
    pub fn leads(&self, key: PartitionKey) -> bool {
        self.leading.borrow().contains_key(&key)
    }

    /// The partitions this shard leads with followers.
    pub fn led(&self) -> Vec<PartitionKey> {
        self.leading.borrow().keys().copied().collect()
    }

    /// Marks `joining` as joining partition `key`'s ISR (an AlterPartition
    /// on its way; empty when answered), and re-bounds the high watermark.
    pub fn set_joining(&self, key: PartitionKey, joining: Vec<i32>) {
        if let Some(pr) = self.leading.borrow_mut().get_mut(&key) {
            pr.set_joining(joining);
        }
    }

    /// Calls `f` with partition `key`'s follower progress, if led here.
    pub fn with_progress<T>(&self, key: PartitionKey, f: impl FnOnce(&Progress) -> T) -> Option<T> {
        self.leading.borrow().get(&key).map(f)
    }
}
