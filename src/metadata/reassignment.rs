//! Moving a partition's replicas (Kafka's AlterPartitionReassignments,
//! KIP-455), as metadata: while a partition moves, its replicas are the
//! target followed by the original replicas not in it; the new ones copy
//! the leader as followers and join the ISR once caught up. When every
//! target replica is in the ISR, the reassignment completes in the same
//! change that made it so (applied alike on every node): the replicas
//! become the target, the ISR keeps only target replicas, and a leader
//! outside the target gives way to the first live target replica in sync
//! (at the next leader epoch). A cancelled one goes back to the original.

use super::model::{ClusterMeta, TopicMeta};

/// One partition's move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassignment {
    /// The replicas it moves to, preferred leader first.
    pub target: Vec<i32>,
    /// The replicas it had when the move began.
    pub original: Vec<i32>,
}

impl Reassignment {
    /// Replicas the move adds (ListPartitionReassignments' adding).
    pub fn adding(&self) -> Vec<i32> {
        self.target.iter().copied().filter(|n| !self.original.contains(n)).collect()
    }

    /// Replicas the move removes.
    pub fn removing(&self) -> Vec<i32> {
        self.original.iter().copied().filter(|n| !self.target.contains(n)).collect()
    }
}

impl TopicMeta {
    /// Starts moving partition `p` to `target` (replacing a move already
    /// under way: its original stays the original), then completes it if
    /// the target is in sync already (`is_live` tells live nodes).
    pub fn start_reassignment(&mut self, p: usize, target: Vec<i32>, is_live: impl Fn(i32) -> bool) {
        assert!(!target.is_empty(), "a reassignment names at least one replica");
        let original = self.reassigning.get(&p).map_or_else(|| self.replicas[p].clone(), |r| r.original.clone());
        let mut all = target.clone();
        all.extend(original.iter().copied().filter(|n| !target.contains(n)));
        self.replicas[p] = all;
        self.reassigning.insert(p, Reassignment { target, original });
        self.finish_reassignment(p, is_live);
    }

    /// Cancels partition `p`'s move: back to its original replicas (a
    /// leader among the added ones gives way). Returns false if it was not
    /// moving.
    pub fn cancel_reassignment(&mut self, p: usize, is_live: impl Fn(i32) -> bool) -> bool {
        let Some(r) = self.reassigning.get(&p) else { return false };
        // Going back needs a leader among the original replicas that holds
        // everything acknowledged: the current one, or a live one in sync.
        let leader = self.leaders[p];
        let can_lead =
            r.original.contains(&leader) || r.original.iter().any(|&n| self.isr[p].contains(&n) && is_live(n));
        if !can_lead {
            return false;
        }
        let original = self.reassigning.remove(&p).expect("checked").original;
        self.settle(p, original, is_live);
        true
    }

    /// Completes partition `p`'s move if every target replica is in the
    /// ISR and one of them, live, can lead. Returns whether it completed.
    pub fn finish_reassignment(&mut self, p: usize, is_live: impl Fn(i32) -> bool) -> bool {
        let Some(r) = self.reassigning.get(&p) else { return false };
        let in_sync = r.target.iter().all(|n| self.isr[p].contains(n));
        // The whole target is in sync: any live member of it can lead.
        let can_lead = r.target.contains(&self.leaders[p]) || r.target.iter().any(|&n| is_live(n));
        if !in_sync || !can_lead {
            return false;
        }
        let target = self.reassigning.remove(&p).expect("checked").target;
        self.settle(p, target, is_live);
        true
    }

    /// Makes `replicas` partition `p`'s replicas: the ISR keeps only
    /// them, and a leader outside them gives way to the first live one in
    /// sync (callers make sure there is one).
    fn settle(&mut self, p: usize, replicas: Vec<i32>, is_live: impl Fn(i32) -> bool) {
        let isr: Vec<i32> = self.isr[p].iter().copied().filter(|n| replicas.contains(n)).collect();
        let leader = self.leaders[p];
        self.replicas[p] = replicas.clone();
        if replicas.contains(&leader) {
            self.isr[p] = replicas.iter().copied().filter(|n| isr.contains(n)).collect();
            return;
        }
        let next = replicas.iter().copied().find(|&n| isr.contains(&n) && is_live(n));
        let elected = next.is_some_and(|n| self.elect(p, n, isr.clone()));
        debug_assert!(elected, "a settled move has a live replica in sync to lead");
    }
}

/// A node of `target` that would take the place of its broker's first copy
/// in `current`, with that copy's node: `(newcomer, first)`. A copy keeps
/// its directory while it lives, and the first copy on a broker is the one
/// named `topic-p` (`ClusterMeta::replica_dir`), so a target may add copies
/// on a broker or drop them all, but not put another of its nodes first.
/// During a move the target comes first, so this covers the move too.
pub fn displaced_copy(meta: &ClusterMeta, current: &[i32], target: &[i32]) -> Option<(i32, i32)> {
    let broker = |n: i32| meta.node(n).map(|at| at.broker.id);
    let first_on = |list: &[i32], b: Option<i32>| list.iter().copied().find(|&n| broker(n) == b);
    current.iter().copied().filter(|&n| first_on(current, broker(n)) == Some(n)).find_map(|n| {
        let newcomer = first_on(target, broker(n)).filter(|&m| m != n)?;
        Some((newcomer, n))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use uuid::Uuid;

    fn topic() -> TopicMeta {
        TopicMeta::new("t".into(), Uuid::nil(), vec![vec![0, 1, 2]], BTreeMap::new())
    }

    #[test]
    fn a_move_completes_once_the_target_is_in_sync_and_the_leader_moves_if_it_must() {
        let mut t = topic();
        let live = |_| true;
        t.start_reassignment(0, vec![3, 1, 2], live);
        assert_eq!(t.replicas[0], [3, 1, 2, 0], "target first, then the original");
        assert_eq!(t.reassigning[&0].adding(), [3]);
        assert_eq!(t.reassigning[&0].removing(), [0]);
        assert!(!t.finish_reassignment(0, live), "3 is not in sync yet");
        assert!(t.set_isr(0, 0, &[0, 1, 2, 3]));
        assert!(t.finish_reassignment(0, live));
        assert_eq!((t.replicas[0].clone(), t.isr[0].clone()), (vec![3, 1, 2], vec![3, 1, 2]));
        assert_eq!((t.leaders[0], t.epochs[0]), (3, 1), "the old leader left: the first in sync leads");
        assert!(t.reassigning.is_empty());
    }

    #[test]
    fn a_cancelled_move_goes_back_and_a_reorder_completes_at_once() {
        let mut t = topic();
        let live = |_| true;
        t.start_reassignment(0, vec![4, 5], live);
        assert!(t.cancel_reassignment(0, live));
        assert_eq!((t.replicas[0].clone(), t.leaders[0], t.epochs[0]), (vec![0, 1, 2], 0, 0));
        assert!(!t.cancel_reassignment(0, live), "nothing to cancel");
        t.start_reassignment(0, vec![2, 0], live);
        assert!(t.reassigning.is_empty(), "already in sync: done at once");
        assert_eq!((t.replicas[0].clone(), t.leaders[0], t.isr[0].clone()), (vec![2, 0], 0, vec![2, 0]));
    }

    #[test]
    fn a_target_may_add_a_copy_on_a_broker_but_not_put_it_first() {
        let mut meta = ClusterMeta::default();
        for (id, shards) in [(1, 2), (2, 1)] {
            let reg = crate::metadata::model::BrokerReg {
                id,
                nodes: Vec::new(),
                shards,
                host: "h".into(),
                port: 9092,
                rack: None,
                fenced: false,
            };
            meta.register_broker(reg);
        }
        // Nodes 0 and 1 are broker 1's shards, node 2 broker 2's.
        assert_eq!(displaced_copy(&meta, &[0], &[0, 1]), None, "a second copy after the first");
        assert_eq!(displaced_copy(&meta, &[0, 1], &[0]), None, "a second copy dropped");
        assert_eq!(displaced_copy(&meta, &[0, 2], &[2]), None, "every copy of broker 1 dropped");
        assert_eq!(displaced_copy(&meta, &[2, 0], &[0, 2]), None, "a reorder across brokers");
        assert_eq!(displaced_copy(&meta, &[0], &[1, 0]), Some((1, 0)));
        assert_eq!(displaced_copy(&meta, &[0, 2], &[1, 2]), Some((1, 0)), "a move between shards");
        assert_eq!(displaced_copy(&meta, &[2, 0, 1], &[2, 1, 0]), Some((1, 0)));
    }
}
