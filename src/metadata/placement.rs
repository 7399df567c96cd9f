//! Partition placement: decided once, when a partition is created, by
//! partition count per node; persisted in the metadata log and never
//! recomputed from a hash.

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
}
