//! Partition placement: decided once, when a partition is created, and
//! persisted in the metadata log, never recomputed from a hash. A leader
//! goes to the node leading the fewest partitions; its followers to the
//! other nodes holding the fewest replicas. Nodes are shards: on one broker
//! every replica of a partition is on one machine (see `machine_safe`).

/// Counts that placement balances, per node.
#[derive(Debug, Clone)]
pub struct Load {
    /// Partitions each node leads.
    pub leaders: Vec<usize>,
    /// Replicas each node holds, leaders included.
    pub replicas: Vec<usize>,
}

impl Load {
    /// Nodes there are to place on.
    pub fn nodes(&self) -> usize {
        self.leaders.len()
    }
}

/// Picks a node for each of `n` new partitions, always the node that owns
/// the fewest partitions so far (lowest id on ties). `counts` is updated.
pub fn place(counts: &mut [usize], n: usize) -> Vec<i32> {
    assert!(!counts.is_empty(), "placement needs at least one node");
    (0..n)
        .map(|_| {
            let (node, _) = counts.iter().enumerate().min_by_key(|&(i, c)| (*c, i)).expect("non-empty");
            counts[node] += 1;
            node as i32
        })
        .collect()
}

/// Replica assignments for `n` new partitions of `rf` replicas each: the
/// leader as [`place`] picks it, then followers on the other nodes with the
/// fewest replicas, ties going to the nodes after the leader in id order
/// (so that followers spread rather than pile on node 0). `load` is updated.
pub fn place_replicas(load: &mut Load, n: usize, rf: usize) -> Vec<Vec<i32>> {
    let nodes = load.nodes();
    assert!(rf >= 1 && rf <= nodes, "{rf} replicas on {nodes} nodes");
    (0..n)
        .map(|_| {
            let leader = place(&mut load.leaders, 1)[0] as usize;
            load.replicas[leader] += 1;
            let mut replicas = vec![leader as i32];
            for _ in 1..rf {
                let follower = (1..nodes)
                    .map(|step| (leader + step) % nodes)
                    .filter(|n| !replicas.contains(&(*n as i32)))
                    .min_by_key(|&n| (load.replicas[n], (n + nodes - leader) % nodes))
                    .expect("rf <= nodes leaves a node");
                load.replicas[follower] += 1;
                replicas.push(follower as i32);
            }
            replicas
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balances_by_count() {
        let mut counts = vec![0, 0];
        assert_eq!(place(&mut counts, 3), vec![0, 1, 0]);
        assert_eq!(place(&mut counts, 3), vec![1, 0, 1]);
        let mut skewed = vec![5, 0, 1];
        assert_eq!(place(&mut skewed, 3), vec![1, 1, 2]);
    }

    #[test]
    fn replicas_are_distinct_and_balanced() {
        let mut load = Load { leaders: vec![0; 3], replicas: vec![0; 3] };
        let placed = place_replicas(&mut load, 6, 2);
        assert_eq!(placed, [[0, 1], [1, 2], [2, 0], [0, 1], [1, 2], [2, 0]]);
        assert_eq!((load.leaders.clone(), load.replicas.clone()), (vec![2, 2, 2], vec![4, 4, 4]));
        // One replica each: the leaders alone, as before replicas existed.
        let mut one = Load { leaders: vec![5, 0, 1], replicas: vec![5, 0, 1] };
        assert_eq!(place_replicas(&mut one, 3, 1), [[1], [1], [2]]);
        let all = place_replicas(&mut Load { leaders: vec![0; 3], replicas: vec![0; 3] }, 2, 3);
        assert_eq!(all, [[0, 1, 2], [1, 2, 0]]);
    }
}
