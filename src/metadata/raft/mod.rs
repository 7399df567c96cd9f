//! The metadata quorum on openraft (issue 23): the type config, a
//! file-backed log store, the state machine over [`ClusterMeta`], the TCP
//! network between controllers (client, server, wire messages, framing),
//! and the quorum the controller proposes through. Its tests run
//! openraft's storage suite and a three-voter quorum in one process (see
//! `docs/notes/openraft-metadata-quorum.md` for the plan ahead).
//!
//! [`ClusterMeta`]: crate::metadata::model::ClusterMeta

pub mod frame;
pub mod log_store;
pub mod members;
pub mod network;
pub mod quorum;
pub mod server;
pub mod sessions;
pub mod snapshot_file;
pub mod state_machine;
pub mod view;
pub mod wire;

use serde::{Deserialize, Serialize};

use super::record::MetaRecord;

/// What a client proposes: metadata records, applied in order.
///
/// A controller checks an admin request against its own copy of the
/// metadata, which may lag the leader's. `expect_log_end` makes that check
/// hold: the records apply only if the metadata log still ends there (no
/// other change committed since), else the command applies nothing and the
/// proposer catches up and checks again. It also makes a retried proposal
/// whose first try did commit apply once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaCommand {
    pub records: Vec<MetaRecord>,
    /// Apply only at this log end; `None`: unconditionally.
    pub expect_log_end: Option<i64>,
}

impl MetaCommand {
    /// Records to apply whatever else committed before them.
    pub fn always(records: Vec<MetaRecord>) -> Self {
        Self { records, expect_log_end: None }
    }
}

impl std::fmt::Display for MetaCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} metadata record(s)", self.records.len())
    }
}

/// What applying a command answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaReply {
    /// The metadata log's end after it.
    pub log_end: i64,
    /// The raft log index of its entry: a node has the command's effect
    /// once it has applied this index.
    pub index: u64,
    /// False when `expect_log_end` did not hold and nothing was applied.
    pub applied: bool,
}

openraft::declare_raft_types!(
    /// The metadata quorum's types.
    pub MetaTypes:
        D = MetaCommand,
        R = MetaReply,
);

/// A node of the metadata quorum.
pub type MetaRaft = openraft::Raft<MetaTypes, state_machine::MetaStateMachine>;

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::Duration;

    use openraft::{BasicNode, Config, Raft};

    use super::log_store::MetaLogStore;
    use super::network::TcpPeers;
    use super::state_machine::MetaStateMachine;
    use super::*;
    use crate::metadata::model::ClusterMeta;

    type MetaRaft = Raft<MetaTypes, MetaStateMachine>;

    async fn start(dir: &std::path::Path) -> (MetaRaft, MetaStateMachine) {
        let config =
            Arc::new(Config { cluster_name: "sluice-metadata".into(), ..Default::default() }.validate().unwrap());
        let store = MetaLogStore::open(dir).unwrap();
        let sm = MetaStateMachine::new(ClusterMeta::default());
        let raft = Raft::new(0, config, TcpPeers, store, sm.clone()).await.unwrap();
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
            let reply = raft.client_write(MetaCommand::always(vec![topic("a"), topic("b")])).await.unwrap();
            assert_eq!(reply.data.log_end, 2);
            assert!(sm.meta().topic("b").is_some());
            raft.shutdown().await.unwrap();

            let (raft, sm) = start(&dir).await;
            raft.wait(Some(Duration::from_secs(10))).current_leader(0, "leads again").await.unwrap();
            let reply = raft.client_write(MetaCommand::always(vec![topic("c")])).await.unwrap();
            assert_eq!(reply.data.log_end, 3, "the two records before the restart were replayed");
            let meta = sm.meta();
            assert!(meta.topic("a").is_some() && meta.topic("c").is_some());
            raft.shutdown().await.unwrap();
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
