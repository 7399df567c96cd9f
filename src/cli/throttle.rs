//! `kafka-reassign-partitions.sh --throttle`: the replication throttle a
//! move runs under, as Kafka's tool sets it. `--execute --throttle RATE`
//! sets `leader.replication.throttled.rate` and
//! `follower.replication.throttled.rate` to RATE on every node the moves
//! involve, and in each moving topic `leader.replication.throttled.replicas`
//! (the current replicas of its moving partitions) and
//! `follower.replication.throttled.replicas` (the replicas they gain).
//! `--verify` removes all of it once every move is complete.

use std::collections::{BTreeMap, BTreeSet};

use super::client::Cluster;
use super::configs::{self, EntityType};
use super::error::CliError;

/// IncrementalAlterConfigs operations.
const SET: i8 = 0;
const DELETE: i8 = 1;

/// The broker rate keys.
const RATES: [&str; 2] = ["leader.replication.throttled.rate", "follower.replication.throttled.rate"];
/// The topic replica-list keys.
const LISTS: [&str; 2] = ["leader.replication.throttled.replicas", "follower.replication.throttled.replicas"];

/// One partition's move: topic, partition, its replicas now, the target.
pub struct Moving<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub current: Vec<i32>,
    pub target: &'a [i32],
}

/// Throttles the moves at `rate` bytes/s (see the module).
pub fn set(cluster: &mut Cluster, rate: i64, moves: &[Moving<'_>]) -> Result<(), CliError> {
    if rate < 1 {
        return Err(CliError::Usage(format!("--throttle takes bytes per second, at least 1, not {rate}")));
    }
    let mut lists: BTreeMap<&str, (Vec<String>, Vec<String>)> = BTreeMap::new();
    let mut nodes = BTreeSet::new();
    for m in moves {
        let (leader, follower) = lists.entry(m.topic).or_default();
        leader.extend(m.current.iter().map(|n| format!("{}:{n}", m.partition)));
        follower.extend(m.target.iter().filter(|n| !m.current.contains(n)).map(|n| format!("{}:{n}", m.partition)));
        nodes.extend(m.current.iter().chain(m.target).copied());
    }
    for (topic, (leader, follower)) in &lists {
        let ops = [(LISTS[0], leader), (LISTS[1], follower)]
            .into_iter()
            .map(|(k, v)| configs::op_entry(k.to_string(), SET, Some(v.join(","))))
            .collect();
        configs::apply(cluster.any(), EntityType::Topics, topic, ops)?;
    }
    for node in nodes {
        let ops = RATES.iter().map(|k| configs::op_entry(k.to_string(), SET, Some(rate.to_string()))).collect();
        configs::apply(cluster.node(node)?, EntityType::Brokers, &node.to_string(), ops)?;
    }
    println!(
        "Warning: You must run --verify periodically, until the reassignment completes, to ensure the throttle is removed."
    );
    println!("The inter-broker throttle limit was set to {rate} B/s");
    Ok(())
}

/// Removes the throttle from every node and from `topics`.
pub fn clear(cluster: &mut Cluster, topics: &BTreeSet<&str>) -> Result<(), CliError> {
    for topic in topics {
        let ops = LISTS.iter().map(|k| configs::op_entry(k.to_string(), DELETE, None)).collect();
        configs::apply(cluster.any(), EntityType::Topics, topic, ops)?;
    }
    for node in cluster.node_ids() {
        let ops = RATES.iter().map(|k| configs::op_entry(k.to_string(), DELETE, None)).collect();
        configs::apply(cluster.node(node)?, EntityType::Brokers, &node.to_string(), ops)?;
    }
    println!("Throttle was removed.");
    Ok(())
}
