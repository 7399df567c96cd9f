//! Keeping copies in their directories when a broker restarts with fewer
//! shards. A broker's first copy of a partition is in Kafka's `topic-p`,
//! a further one in `topic-p+N` (`ClusterMeta::replica_dir`). When the
//! node holding `topic-p` is gone (its shard no longer runs), the
//! partition's replicas are reassigned (`controller::reassign_gone_nodes`)
//! and another local node becomes the broker's first copy: the name
//! `topic-p` passes to it. Before any shard opens a log, this decides
//! which data that node keeps: its own copy (renamed to `topic-p`) if it
//! was in the ISR, or if the gone node was not; else the gone node's, which
//! the ISR said held everything acknowledged. Directories of further copies
//! whose nodes are gone are removed. Blocking: run at start, before the
//! shards.

use std::io;
use std::path::Path;

use tracing::{info, warn};

use super::model::{ClusterMeta, TopicMeta, replica_dir_name};

/// Brings broker `broker`'s partition directories in `data_dir` from the
/// metadata `prev` to `next` (`next` reassigned the replicas of its gone
/// nodes). Failures are logged: a copy left where it was is opened as it
/// is (its node then copies its leader again).
pub fn reconcile(prev: &ClusterMeta, next: &ClusterMeta, broker: i32, data_dir: &Path) {
    for t in next.topics.values() {
        let Some(before) = prev.topic(&t.name).filter(|b| b.id == t.id) else { continue };
        for p in 0..t.replicas.len().min(before.replicas.len()) {
            if let Err(e) = partition(prev, before, next, t, p, broker, data_dir) {
                warn!(topic = %t.name, partition = p, "cannot move a copy to its node's directory: {e}");
            }
        }
    }
}

/// One partition's directories (see the module).
fn partition(
    prev: &ClusterMeta,
    before: &TopicMeta,
    next: &ClusterMeta,
    t: &TopicMeta,
    p: usize,
    broker: i32,
    data_dir: &Path,
) -> io::Result<()> {
    let was = mine(prev, broker, &before.replicas[p]);
    let now = mine(next, broker, &t.replicas[p]);
    // Further copies of nodes no longer among the replicas.
    for &m in was.iter().skip(1).filter(|m| !t.replicas[p].contains(m)) {
        remove(&data_dir.join(replica_dir_name(&t.name, p, Some(m))))?;
    }
    let (Some(&first_was), Some(&first_now)) = (was.first(), now.first()) else { return Ok(()) };
    if first_was == first_now || !was.contains(&first_now) {
        // Same first copy, or a node new here takes `topic-p` as it is.
        return Ok(());
    }
    let own = data_dir.join(replica_dir_name(&t.name, p, Some(first_now)));
    let first = data_dir.join(replica_dir_name(&t.name, p, None));
    let isr = &before.isr[p];
    if isr.contains(&first_now) || !isr.contains(&first_was) {
        info!(dir = %own.display(), to = %first.display(), "the broker's first copy is gone: its successor keeps its own data");
        remove(&first)?;
        if own.exists() {
            std::fs::rename(&own, &first)?;
        }
    } else {
        info!(dir = %first.display(), node = first_now, "the broker's first copy is gone: its successor, out of the ISR, takes its data");
        remove(&own)?;
    }
    crate::storage::partition_dir::sync_dir(data_dir)
}

/// The nodes of `replicas` that are broker `broker`'s, its gone shards'
/// included (a gone node is no longer a node of the metadata, but its
/// broker keeps its id).
fn mine(meta: &ClusterMeta, broker: i32, replicas: &[i32]) -> Vec<i32> {
    let ids = meta.brokers.get(&broker).map_or(&[][..], |b| &b.nodes[..]);
    replicas.iter().copied().filter(|n| ids.contains(n)).collect()
}

/// Removes a directory and what it holds; one missing is no failure.
fn remove(dir: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::model::BrokerReg;
    use std::collections::BTreeMap;
    use uuid::Uuid;

    fn meta(shards: usize, replicas: Vec<i32>, isr: &[i32]) -> ClusterMeta {
        let mut meta = ClusterMeta::default();
        let reg =
            BrokerReg { id: 0, nodes: Vec::new(), shards: 2, host: "h".into(), port: 1, rack: None, fenced: false };
        meta.register_broker(reg.clone());
        meta.register_broker(BrokerReg { shards, ..reg });
        let mut t = TopicMeta::new("t".into(), Uuid::nil(), vec![replicas], BTreeMap::new());
        // The first member of `isr` leads (after an election if it must).
        if t.leaders[0] != isr[0] {
            assert!(t.elect(0, isr[0], isr.to_vec()));
        }
        assert!(t.set_isr(0, t.epochs[0], isr));
        meta.put_topic(t);
        meta
    }

    fn dirs(d: &Path, names: &[(&str, &str)]) {
        for (name, content) in names {
            std::fs::create_dir_all(d.join(name)).unwrap();
            std::fs::write(d.join(name).join("mark"), content).unwrap();
        }
    }

    fn mark(d: &Path, name: &str) -> Option<String> {
        std::fs::read_to_string(d.join(name).join("mark")).ok()
    }

    /// Node 1 held `t-0`, node 0 `t-0+0`; the broker restarts with one
    /// shard, so node 0 is the first (and only) copy now.
    #[test]
    fn the_survivor_keeps_its_own_copy_when_it_was_in_sync_or_the_gone_one_was_not() {
        for (isr, kept) in [(vec![0, 1], "node0"), (vec![0], "node0"), (vec![1], "node1")] {
            let d = std::env::temp_dir().join(format!(
                "sluice-rdirs-{}-{}",
                std::process::id(),
                isr.len() * 10 + isr[0] as usize
            ));
            let _ = std::fs::remove_dir_all(&d);
            dirs(&d, &[("t-0", "node1"), ("t-0+0", "node0")]);
            // As at start: registered with one shard, before the moves.
            let (prev, next) = (meta(1, vec![1, 0], &isr), meta(1, vec![0], &[0]));
            reconcile(&prev, &next, 0, &d);
            assert_eq!(mark(&d, "t-0").as_deref(), Some(kept), "ISR {isr:?}");
            assert!(!d.join("t-0+0").exists(), "ISR {isr:?}");
            std::fs::remove_dir_all(&d).unwrap();
        }
    }

    /// A further copy whose node is gone is removed; a first copy that
    /// stays first is left alone.
    #[test]
    fn a_gone_further_copy_is_removed() {
        let d = std::env::temp_dir().join(format!("sluice-rdirs-further-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        dirs(&d, &[("t-0", "node0"), ("t-0+1", "node1")]);
        let (prev, next) = (meta(1, vec![0, 1], &[0, 1]), meta(1, vec![0], &[0]));
        reconcile(&prev, &next, 0, &d);
        assert_eq!(mark(&d, "t-0").as_deref(), Some("node0"));
        assert!(!d.join("t-0+1").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
