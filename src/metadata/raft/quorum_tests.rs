//! Three voters over TCP in one process, each a `Quorum` as a broker opens
//! it: they elect a leader, a proposal made on any of them commits and
//! reaches all, a node that does not vote joins and follows the log, a
//! proposal checked against stale metadata applies nothing,
//! and when the leader is gone the others elect another and commit again;
//! the old leader, reopened, catches up.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Quorum, QuorumConfig, SnapshotSettings};

/// Small, so that the tests snapshot and purge the log: a voter that was
/// down catches up from a snapshot sent over TCP.
const SNAPSHOTS: SnapshotSettings = SnapshotSettings { every: 5, keep: 0 };
use crate::metadata::model::ClusterMeta;
use crate::metadata::raft::MetaCommand;
use crate::metadata::record::MetaRecord;

fn topic(name: &str) -> MetaRecord {
    MetaRecord::TopicPlaced { name: name.into(), id: [7; 16], replicas: vec![vec![0]], configs: vec![] }
}

fn open(dir: &Path, id: u64, voters: &BTreeMap<u64, String>, listener: TcpListener) -> Quorum {
    let config = QuorumConfig {
        id,
        voters: voters.clone(),
        learner_addr: None,
        bootstrap: Vec::new(),
        can_vote: true,
        snapshots: SNAPSHOTS,
    };
    Quorum::open(&dir.join(id.to_string()), ClusterMeta::default(), config, Some(listener)).expect("the quorum opens")
}

/// Waits until `check` holds for `q`'s metadata.
fn eventually(q: &Quorum, what: &str, check: impl Fn(&ClusterMeta) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check(&q.meta()) {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Proposes `rec` on `q`, checked against its metadata as it is now.
fn propose(q: &Quorum, rec: MetaRecord) -> bool {
    let cmd = MetaCommand { records: vec![rec], expect_log_end: Some(q.meta().log_end) };
    q.propose(cmd).expect("committed").applied
}

#[test]
fn three_voters_elect_commit_fail_over_and_catch_up() {
    let dir = std::env::temp_dir().join(format!("sluice-quorum-three-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let listeners: Vec<TcpListener> = (0..3).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    let voters: BTreeMap<u64, String> =
        listeners.iter().enumerate().map(|(i, l)| (i as u64 + 1, l.local_addr().unwrap().to_string())).collect();
    // Each open waits for a leader, which needs two voters up: open them
    // side by side.
    let opening: Vec<_> = listeners
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let (dir, voters): (PathBuf, _) = (dir.clone(), voters.clone());
            std::thread::spawn(move || open(&dir, i as u64 + 1, &voters, l))
        })
        .collect();
    let mut nodes: BTreeMap<u64, Quorum> =
        opening.into_iter().enumerate().map(|(i, t)| (i as u64 + 1, t.join().unwrap())).collect();

    // Each voter registers as a controller once open; a proposal checked
    // against metadata from before the last registration would not apply.
    for q in nodes.values() {
        eventually(q, "every voter's registration is applied", |m| m.controllers.len() == 3);
    }
    let leader = nodes[&1].leader().expect("a leader after open");
    let follower = *nodes.keys().find(|&&id| id != leader).unwrap();
    assert!(propose(&nodes[&follower], topic("a")), "a follower's proposal is forwarded and commits");
    for q in nodes.values() {
        eventually(q, "every voter applies the commit", |m| m.topic("a").is_some());
    }
    // A node that does not vote joins, is sent the log, and proposes.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let learner_addr = Some(l.local_addr().unwrap().to_string());
    let config = QuorumConfig {
        id: 9,
        voters: voters.clone(),
        learner_addr,
        bootstrap: Vec::new(),
        can_vote: false,
        snapshots: SNAPSHOTS,
    };
    let learner = Quorum::open(&dir.join("9"), ClusterMeta::default(), config, Some(l)).expect("the learner joins");
    eventually(&learner, "the learner applies what was committed before it joined", |m| m.topic("a").is_some());
    assert!(propose(&learner, topic("from-learner")), "a learner's proposal is forwarded");
    for q in nodes.values() {
        eventually(q, "every voter applies the learner's proposal", |m| m.topic("from-learner").is_some());
    }
    drop(learner);

    let stale = MetaCommand { records: vec![topic("stale")], expect_log_end: Some(0) };
    assert!(!nodes[&leader].propose(stale).unwrap().applied, "a change checked against old metadata applies nothing");
    assert!(nodes[&leader].meta().topic("stale").is_none());

    // The leader dies: the others elect one of themselves and commit.
    let killed = nodes.remove(&leader).unwrap();
    drop(killed);
    let started = Instant::now();
    assert!(propose(&nodes[&follower], topic("b")), "the survivors commit");
    let failover = started.elapsed();
    assert!(failover < Duration::from_secs(15), "{failover:?}");
    let new_leader = nodes[&follower].leader().unwrap();
    assert_ne!(new_leader, leader);

    // While the old leader is down, the survivors commit enough to
    // snapshot and purge the log it would need: it comes back on its
    // address and catches up from a snapshot sent over TCP.
    for i in 0..12 {
        assert!(propose(&nodes[&follower], topic(&format!("while-down-{i}"))));
    }
    let l = TcpListener::bind(&voters[&leader]).unwrap();
    let back = open(&dir, leader, &voters, l);
    eventually(&back, "the restarted voter catches up", |m| {
        m.topic("b").is_some() && m.topic("a").is_some() && m.topic("while-down-11").is_some()
    });
    assert!(dir.join(leader.to_string()).join(super::DIR_NAME).join("snapshot").exists());
    // Every node restarts from its snapshot and the log after it.
    let before = back.meta();
    drop(back);
    let l = TcpListener::bind(&voters[&leader]).unwrap();
    let again = open(&dir, leader, &voters, l);
    eventually(&again, "a restart restores the snapshot and the log after it", |m| {
        m.topics.len() == before.topics.len() && m.log_end >= before.log_end
    });
    let back = again;
    drop(nodes);
    drop(back);
    std::fs::remove_dir_all(&dir).unwrap();
}
