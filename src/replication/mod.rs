//! Replicated partitions (issue 24; design in `docs/notes/replication.md`).
//!
//! A partition's replicas are nodes (shards). The leader's shard serves its
//! followers' Fetch requests from its durable log (`leader.rs`) and keeps,
//! per follower, how far it has copied (`progress.rs`): the high watermark
//! follows the lowest durable end in the ISR, and the leader asks the
//! metadata quorum to drop a follower that fell behind or to take back one
//! that caught up (`isr.rs`). A follower's shard runs one fetcher per leader
//! node it copies from (`fetcher.rs`), over a Kafka connection of its own
//! (`peer.rs`): it appends what it fetched with the log's follower path,
//! waits until that is durable, and only then fetches again, so the offset
//! it fetches from is what it holds on disk. That is what lets an acks=all
//! acknowledgement mean "fdatasynced on every in-sync replica".
//!
//! Every replica holds a copy in a directory of its own, also two replicas
//! on shards of one broker (`ClusterMeta::replica_dir`): such a follower
//! fetches from its leader over loopback, like any other (see
//! docs/ARCHITECTURE.md, "Replication", for why not a cross-core channel).

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, HashSet};

use uuid::Uuid;

pub mod durable_tag;
pub mod fetcher;
pub mod isr;
pub mod leader;
pub mod peer;
pub mod progress;
pub mod throttle;
pub mod unsynced;

/// A partition, by topic id and index.
pub type PartitionKey = (Uuid, i32);

/// A shard's replication state (its thread only).
#[derive(Default)]
pub struct Replication {
    /// Partitions this shard leads that have followers: what it knows of
    /// each follower.
    leading: RefCell<HashMap<PartitionKey, progress::Progress>>,
    /// Leader nodes this shard runs a fetcher for.
    fetchers: RefCell<BTreeSet<i32>>,
    /// Partitions whose ISR change is with the controller, unanswered: one
    /// at a time each.
    altering: RefCell<HashSet<PartitionKey>>,
    /// What this shard may still send to throttled followers.
    pub leader_quota: RefCell<throttle::Quota>,
    /// What this shard may still take for its throttled copies.
    pub follower_quota: RefCell<throttle::Quota>,
    /// Fetch requests built so far: where the next one starts its list.
    turns: std::cell::Cell<usize>,
}

impl Replication {
    /// A number one higher at each call (a follower's fetch rounds).
    pub fn next_turn(&self) -> usize {
        let n = self.turns.get();
        self.turns.set(n.wrapping_add(1));
        n
    }
}
