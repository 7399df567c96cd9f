//! Partition placement: decided once, when a partition is created, and
//! persisted in the metadata log, never recomputed from a hash. A leader
//! goes to the live node leading the fewest partitions; its followers to
//! other nodes, preferring first a broker (machine) the partition is not on
//! yet, then a rack it is not in yet, then the nodes holding the fewest
//! replicas. Where brokers are fewer than replicas, followers go to other
//! shards of one broker, as Kafka places replicas of brokers that share a
//! host (not machine-safe; `sluice topics describe` says so).

use std::collections::BTreeMap;

/// A node replicas may go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The node id.
    pub node: i32,
    /// The broker (machine) it is a shard of.
    pub broker: i32,
    /// Its broker's rack.
    pub rack: Option<String>,
}

/// Counts that placement balances, per node id.
#[derive(Debug, Clone, Default)]
pub struct Load {
    /// Partitions each node leads.
    pub leaders: BTreeMap<i32, usize>,
    /// Replicas each node holds, leaders included.
    pub replicas: BTreeMap<i32, usize>,
}

impl Load {
    /// Partitions `node` leads.
    pub fn leading(&self, node: i32) -> usize {
        self.leaders.get(&node).copied().unwrap_or(0)
    }

    /// Replicas `node` holds.
    pub fn holding(&self, node: i32) -> usize {
        self.replicas.get(&node).copied().unwrap_or(0)
    }
}

/// The candidate leading the fewest partitions (the first on ties).
pub fn pick_leader(nodes: &[Candidate], load: &Load) -> usize {
    assert!(!nodes.is_empty(), "placement needs at least one node");
    (0..nodes.len()).min_by_key(|&i| (load.leading(nodes[i].node), i)).expect("non-empty")
}

/// The candidate for one more replica beside `chosen` (indexes into
/// `nodes`, the leader first): a broker, then a rack, not yet used, then
/// the fewest replicas, ties going to the nodes after the leader in order
/// (so that followers spread rather than pile on the first node).
pub fn pick_follower(nodes: &[Candidate], load: &Load, chosen: &[usize]) -> Option<usize> {
    let len = nodes.len();
    let leader = chosen[0];
    let on_broker = |i: usize| chosen.iter().any(|&c| nodes[c].broker == nodes[i].broker);
    let in_rack = |i: usize| nodes[i].rack.is_some() && chosen.iter().any(|&c| nodes[c].rack == nodes[i].rack);
    (1..len)
        .map(|step| (leader + step) % len)
        .filter(|i| !chosen.contains(i))
        .min_by_key(|&i| (on_broker(i), in_rack(i), load.holding(nodes[i].node), (i + len - leader) % len))
}

/// Replica assignments (node ids, leader first) for `n` new partitions of
/// `rf` replicas each over `nodes`. `load` is updated.
pub fn place_replicas(nodes: &[Candidate], load: &mut Load, n: usize, rf: usize) -> Vec<Vec<i32>> {
    assert!(rf >= 1 && rf <= nodes.len(), "{rf} replicas on {} nodes", nodes.len());
    (0..n)
        .map(|_| {
            let mut chosen = vec![pick_leader(nodes, load)];
            while chosen.len() < rf {
                chosen.push(pick_follower(nodes, load, &chosen).expect("rf <= nodes leaves a node"));
            }
            *load.leaders.entry(nodes[chosen[0]].node).or_default() += 1;
            for &c in &chosen {
                *load.replicas.entry(nodes[c].node).or_default() += 1;
            }
            chosen.iter().map(|&c| nodes[c].node).collect()
        })
        .collect()
}

/// How many distinct brokers `nodes` span.
pub fn brokers(nodes: &[Candidate]) -> usize {
    let mut b: Vec<i32> = nodes.iter().map(|c| c.broker).collect();
    b.sort_unstable();
    b.dedup();
    b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_broker(n: i32) -> Vec<Candidate> {
        (0..n).map(|node| Candidate { node, broker: 0, rack: None }).collect()
    }

    fn load(leaders: &[usize], replicas: &[usize]) -> Load {
        Load {
            leaders: leaders.iter().enumerate().map(|(n, c)| (n as i32, *c)).collect(),
            replicas: replicas.iter().enumerate().map(|(n, c)| (n as i32, *c)).collect(),
        }
    }

    #[test]
    fn replicas_are_distinct_and_balanced_on_one_broker() {
        let nodes = one_broker(3);
        let mut l = Load::default();
        let placed = place_replicas(&nodes, &mut l, 6, 2);
        assert_eq!(placed, [[0, 1], [1, 2], [2, 0], [0, 1], [1, 2], [2, 0]]);
        assert_eq!((l.leading(0), l.leading(1), l.leading(2)), (2, 2, 2));
        assert_eq!((l.holding(0), l.holding(1), l.holding(2)), (4, 4, 4));
        // One replica each: the leaders alone, as before replicas existed.
        let mut skewed = load(&[5, 0, 1], &[5, 0, 1]);
        assert_eq!(place_replicas(&nodes, &mut skewed, 3, 1), [[1], [1], [2]]);
        let all = place_replicas(&nodes, &mut Load::default(), 2, 3);
        assert_eq!(all, [[0, 1, 2], [1, 2, 0]]);
    }

    /// Three brokers of two shards: every partition's replicas on three
    /// brokers, leaders two per node, four per broker.
    #[test]
    fn replicas_go_to_distinct_brokers_first() {
        let nodes: Vec<Candidate> = (0..6).map(|node| Candidate { node, broker: 10 + node / 2, rack: None }).collect();
        let mut l = Load::default();
        let placed = place_replicas(&nodes, &mut l, 12, 3);
        for r in &placed {
            let mut b: Vec<i32> = r.iter().map(|n| 10 + n / 2).collect();
            b.sort_unstable();
            b.dedup();
            assert_eq!(b.len(), 3, "{r:?} on three brokers");
        }
        assert!((0..6).all(|n| l.leading(n) == 2), "{:?}", l.leaders);
        assert!((0..6).all(|n| l.holding(n) == 6), "{:?}", l.replicas);
        assert_eq!(brokers(&nodes), 3);
    }

    /// Two brokers per rack: a partition's second replica leaves the
    /// leader's rack before it uses another broker in it.
    #[test]
    fn replicas_spread_over_racks() {
        let rack = |r: &str| Some(r.to_string());
        let nodes = vec![
            Candidate { node: 0, broker: 0, rack: rack("a") },
            Candidate { node: 1, broker: 1, rack: rack("a") },
            Candidate { node: 2, broker: 2, rack: rack("b") },
            Candidate { node: 3, broker: 3, rack: rack("b") },
        ];
        for r in place_replicas(&nodes, &mut Load::default(), 8, 2) {
            assert_ne!(nodes[r[0] as usize].rack, nodes[r[1] as usize].rack, "{r:?}");
        }
    }
}
