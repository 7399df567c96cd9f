//! The metadata quorum on openraft (issue 23): the type config, a
//! file-backed log store, the state machine over [`ClusterMeta`], a
//! one-voter network, and the quorum the controller proposes through. Its
//! tests run openraft's storage suite (see
//! `docs/notes/openraft-metadata-quorum.md` for the plan ahead).
//!
//! [`ClusterMeta`]: crate::metadata::model::ClusterMeta

pub mod log_store;
pub mod network;
pub mod quorum;
pub mod state_machine;

use serde::{Deserialize, Serialize};

use super::record::MetaRecord;

/// What a client proposes: metadata records, applied in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaCommand {
    pub records: Vec<MetaRecord>,
}

impl std::fmt::Display for MetaCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} metadata record(s)", self.records.len())
    }
}

/// What applying a command answers: the metadata log's end after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaReply {
    pub log_end: i64,
}

openraft::declare_raft_types!(
    /// The metadata quorum's types.
    pub MetaTypes:
        D = MetaCommand,
        R = MetaReply,
);

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::Duration;

    use openraft::{BasicNode, Config, Raft};

    use super::log_store::MetaLogStore;
    use super::network::NoPeers;
    use super::state_machine::MetaStateMachine;
    use super::*;
    use crate::metadata::model::ClusterMeta;

    type MetaRaft = Raft<MetaTypes, MetaStateMachine>;

    async fn start(dir: &std::path::Path) -> (MetaRaft, MetaStateMachine) {
        let config =
            Arc::new(Config { cluster_name: "sluice-metadata".into(), ..Default::default() }.validate().unwrap());
        let store = MetaLogStore::open(dir).unwrap();
        let sm = MetaStateMachine::new(ClusterMeta { nodes: 2, ..Default::default() });
        let raft = Raft::new(0, config, NoPeers, store, sm.clone()).await.unwrap();
        (raft, sm)
    }

    fn topic(name: &str) -> MetaRecord {
        MetaRecord::TopicPlaced { name: name.into(), id: [3; 16], replicas: vec![vec![0, 1]], configs: vec![] }
    }

    /// One voter: initialized once, it leads; a committed command reaches
    /// the state machine, and after a restart the log replays it.
    #[test]
    fn a_one_voter_quorum_commits_and_replays_after_a_restart() {
        let dir = std::env::temp_dir().join(format!("sluice-raft-one-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        rt.block_on(async {
            let (raft, sm) = start(&dir).await;
            raft.initialize(BTreeMap::from([(0u64, BasicNode::default())])).await.unwrap();
            raft.wait(Some(Duration::from_secs(10))).current_leader(0, "a lone voter elects itself").await.unwrap();
            let reply = raft.client_write(MetaCommand { records: vec![topic("a"), topic("b")] }).await.unwrap();
            assert_eq!(reply.data.log_end, 2);
            assert!(sm.meta().topic("b").is_some());
            raft.shutdown().await.unwrap();

            let (raft, sm) = start(&dir).await;
            raft.wait(Some(Duration::from_secs(10))).current_leader(0, "leads again").await.unwrap();
            let reply = raft.client_write(MetaCommand { records: vec![topic("c")] }).await.unwrap();
            assert_eq!(reply.data.log_end, 3, "the two records before the restart were replayed");
            let meta = sm.meta();
            assert!(meta.topic("a").is_some() && meta.topic("c").is_some());
            raft.shutdown().await.unwrap();
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
