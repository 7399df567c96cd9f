//! Leader elections when a broker is fenced (it stopped, or missed its
//! session): applied with the `BrokerFenced` record itself, so every node
//! that replays the log makes the same choice (Kafka's controller writes a
//! PartitionChangeRecord for each instead; here the choice is a function of
//! the metadata, which every replica of the log holds).
//!
//! For each partition: the fenced broker's nodes leave the ISR. A partition
//! it led gets as leader the first live replica of the ISR, in replica
//! order, at the next leader epoch. With none left, it keeps its leader
//! (no live leader until that broker is back, and the ISR still names it):
//! a replica outside the ISR may lack acknowledged records, so it leads
//! only where `unclean.leader.election.enable` is set for the topic (or as
//! the cluster-wide dynamic default).

use std::collections::BTreeMap;

use super::model::{ClusterMeta, TopicMeta};

/// The topic config (and cluster-wide dynamic default) that lets a replica
/// outside the ISR lead.
pub const UNCLEAN: &str = "unclean.leader.election.enable";

/// Applies broker `broker`'s fencing to every partition (see the module).
pub fn on_fenced(meta: &mut ClusterMeta, broker: i32) {
    let changed: Vec<TopicMeta> = meta
        .topics
        .values()
        .filter_map(|t| {
            let mut t = (**t).clone();
            let mut any = false;
            for p in 0..t.replicas.len() {
                any |= elect(meta, &mut t, p, broker);
            }
            any.then_some(t)
        })
        .collect();
    for t in changed {
        meta.put_topic(t);
    }
}

/// Partition `p` of `t` without broker `broker`; whether it changed.
fn elect(meta: &ClusterMeta, t: &mut TopicMeta, p: usize, broker: i32) -> bool {
    let on_fenced = |n: i32| meta.node(n).is_some_and(|at| at.broker.id == broker);
    let leader = t.leaders[p];
    let isr = &t.isr[p];
    if !on_fenced(leader) && !isr.iter().any(|&n| on_fenced(n)) {
        return false;
    }
    let survivors: Vec<i32> = isr.iter().copied().filter(|&n| !on_fenced(n)).collect();
    if !on_fenced(leader) {
        t.set_isr(p, t.epochs[p], &survivors)
    } else if let Some(&next) = survivors.iter().find(|&&n| meta.is_live(n)) {
        t.elect(p, next, survivors)
    } else if unclean(meta, t) {
        let Some(&next) = t.replicas[p].iter().find(|&&n| meta.is_live(n)) else { return false };
        t.elect(p, next, vec![next])
    } else {
        false
    }
}

/// The partitions to give back to their preferred replica (Kafka's
/// `auto.leader.rebalance.enable`): those whose preferred replica (the
/// first assigned) is live and in sync but does not lead, counted per
/// broker of the preferred replica; a broker's are all returned once they
/// are more than `percentage`% of the partitions it is preferred for.
pub fn imbalanced(meta: &ClusterMeta, percentage: i64) -> Vec<(String, i32)> {
    let mut per_broker: BTreeMap<i32, (usize, Vec<(String, i32)>)> = BTreeMap::new();
    for t in meta.topics.values() {
        for (p, replicas) in t.replicas.iter().enumerate() {
            let preferred = replicas[0];
            let Some(broker) = meta.node(preferred).map(|at| at.broker.id) else { continue };
            let entry = per_broker.entry(broker).or_default();
            entry.0 += 1;
            let eligible = meta.is_live(preferred) && t.isr[p].contains(&preferred);
            if t.leaders[p] != preferred && eligible {
                entry.1.push((t.name.clone(), p as i32));
            }
        }
    }
    per_broker
        .into_values()
        .filter(|(total, off)| !off.is_empty() && (off.len() * 100) as i64 > percentage * *total as i64)
        .flat_map(|(_, off)| off)
        .collect()
}

/// Whether `t` may elect a replica outside its ISR.
fn unclean(meta: &ClusterMeta, t: &TopicMeta) -> bool {
    let cluster = meta.broker_configs.get("").and_then(|c| c.get(UNCLEAN));
    t.configs.get(UNCLEAN).or(cluster).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::model::BrokerReg;
    use std::collections::BTreeMap;
    use uuid::Uuid;

    /// Brokers 1, 2, 3 of one shard each: nodes 0, 1, 2.
    fn three() -> ClusterMeta {
        let mut meta = ClusterMeta::default();
        for id in 1..=3 {
            let reg =
                BrokerReg { id, nodes: Vec::new(), shards: 1, host: "h".into(), port: 9092, rack: None, fenced: false };
            meta.register_broker(reg);
        }
        meta
    }

    fn topic(meta: &mut ClusterMeta, replicas: Vec<Vec<i32>>, configs: &[(&str, &str)]) {
        let configs: BTreeMap<String, String> = configs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        meta.put_topic(TopicMeta::new("t".into(), Uuid::nil(), replicas, configs));
    }

    fn fence(meta: &mut ClusterMeta, broker: i32) {
        meta.set_fenced(broker, true);
        on_fenced(meta, broker);
    }

    fn state(meta: &ClusterMeta, p: usize) -> (i32, i32, Vec<i32>) {
        let t = meta.topic("t").unwrap();
        (t.leaders[p], t.epochs[p], t.isr[p].clone())
    }

    #[test]
    fn the_first_live_replica_in_sync_takes_over_at_the_next_epoch() {
        let mut meta = three();
        topic(&mut meta, vec![vec![0, 1, 2], vec![1, 2, 0]], &[]);
        fence(&mut meta, 1);
        assert_eq!(state(&meta, 0), (1, 1, vec![1, 2]), "node 0's broker is fenced: node 1 leads");
        assert_eq!(state(&meta, 1), (1, 0, vec![1, 2]), "a follower leaves the ISR; the leader stays");
        fence(&mut meta, 2);
        assert_eq!(state(&meta, 0), (2, 2, vec![2]));
        // The last in sync fenced: no live leader, and it stays the leader
        // it would be when it is back.
        fence(&mut meta, 3);
        assert_eq!(state(&meta, 0), (2, 2, vec![2]));
        assert!(!meta.is_live(2));
    }

    #[test]
    fn imbalance_counts_preferred_replicas_that_could_lead_but_do_not() {
        let mut meta = three();
        // Node 0 is preferred for 4 partitions; it leads none of them after
        // its broker was fenced and came back.
        topic(&mut meta, vec![vec![0, 1, 2], vec![0, 2, 1], vec![0, 1, 2], vec![0, 2, 1], vec![1, 2, 0]], &[]);
        fence(&mut meta, 1);
        assert!(imbalanced(&meta, 10).is_empty(), "not live: not eligible");
        meta.set_fenced(1, false);
        assert!(imbalanced(&meta, 10).is_empty(), "not back in sync yet");
        let mut t = (**meta.topic("t").unwrap()).clone();
        for p in 0..4 {
            let (epoch, isr) = (t.epochs[p], t.replicas[p].clone());
            assert!(t.set_isr(p, epoch, &isr));
        }
        meta.put_topic(t);
        let off = imbalanced(&meta, 10);
        assert_eq!(off.iter().map(|(_, p)| *p).collect::<Vec<_>>(), [0, 1, 2, 3]);
        assert!(imbalanced(&meta, 100).is_empty(), "100%: never more than that");
    }

    #[test]
    fn a_replica_out_of_sync_leads_only_where_unclean_election_is_allowed() {
        for (configs, expect) in [(vec![], (0, 0, vec![0])), (vec![(UNCLEAN, "true")], (1, 1, vec![1]))] {
            let mut meta = three();
            topic(&mut meta, vec![vec![0, 1]], &configs);
            let mut t = (**meta.topic("t").unwrap()).clone();
            assert!(t.set_isr(0, 0, &[0]));
            meta.put_topic(t);
            fence(&mut meta, 1);
            assert_eq!(state(&meta, 0), expect, "{configs:?}");
        }
    }
}
