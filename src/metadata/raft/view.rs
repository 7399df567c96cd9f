//! What DescribeQuorum and `sluice cluster` show of the quorum, as this
//! node sees it: the leader, its term (Kafka's leader epoch), the committed
//! end (the high watermark) and, where this node leads, how far each voter's
//! log reaches. Raft log positions are given as Kafka offsets: the entry at
//! index i ends at offset i + 1. A task on the quorum's runtime keeps it
//! current from openraft's metrics; shards read it without locks.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use openraft::RaftMetrics;
use openraft::async_runtime::WatchReceiver;

use super::{MetaRaft, MetaTypes};

/// The quorum as one node sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QuorumView {
    /// This node's voter id.
    pub node: u64,
    /// The leader it follows (or is), if any.
    pub leader: Option<u64>,
    /// The current term: Kafka's leader epoch.
    pub term: u64,
    /// The committed end of the log.
    pub high_watermark: i64,
    /// Each voter's id, controller address and log end: known for all
    /// where this node leads, only its own elsewhere (-1: unknown).
    pub voters: Vec<Voter>,
    /// The same for the learners: brokers that follow the log, not voting
    /// (Kafka's observers).
    pub observers: Vec<Voter>,
}

/// One voter.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Voter {
    pub id: u64,
    /// `host:port` of its controller listener (empty for the embedded
    /// one-voter quorum, whose listener is the broker's).
    pub addr: String,
    pub log_end: i64,
}

/// The view shards read.
pub type SharedView = Arc<ArcSwap<QuorumView>>;

/// The Kafka offset just past a raft log index.
fn end_of(index: Option<u64>) -> i64 {
    index.map_or(0, |i| i as i64 + 1)
}

/// The view `m` describes.
fn view_of(m: &RaftMetrics<MetaTypes>, addrs: &BTreeMap<u64, String>) -> QuorumView {
    let membership = m.membership_config.membership();
    let state = |id: u64| {
        // openraft's replication map (on the leader only) covers its
        // followers and learners, not itself.
        let log_end = match &m.replication {
            _ if id == m.id => end_of(m.last_log_index),
            Some(r) => r.get(&id).map_or(-1, |l| end_of(l.map(|l| l.index))),
            None => -1,
        };
        let addr = addrs.get(&id).cloned().or_else(|| membership.get_node(&id).map(|n| n.addr.clone()));
        Voter { id, addr: addr.unwrap_or_default(), log_end }
    };
    QuorumView {
        node: m.id,
        leader: m.current_leader,
        term: m.current_term,
        high_watermark: end_of(m.cluster_committed.or(m.local_committed).map(|c| c.index)),
        voters: membership.voter_ids().map(state).collect(),
        observers: membership.learner_ids().map(state).collect(),
    }
}

/// Keeps `view` current for as long as `raft` runs.
pub async fn follow(raft: MetaRaft, view: SharedView, addrs: BTreeMap<u64, String>) {
    let mut rx = raft.metrics();
    loop {
        view.store(Arc::new(view_of(&rx.borrow_watched(), &addrs)));
        if rx.changed().await.is_err() {
            return;
        }
    }
}
