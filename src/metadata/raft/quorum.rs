//! The one-voter metadata quorum the controller writes through: openraft on
//! a small tokio runtime of its own (never on a shard's reactor), over the
//! log store and state machine beside this file. The controller's thread
//! blocks on each proposal, as it blocked on the file log's fsync.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::{BasicNode, Config, Raft, SnapshotPolicy};

use super::log_store::MetaLogStore;
use super::network::NoPeers;
use super::state_machine::MetaStateMachine;
use super::{MetaCommand, MetaTypes};
use crate::metadata::model::ClusterMeta;
use crate::metadata::record::MetaRecord;

/// The quorum's directory inside the data dir (Kafka's metadata log dir
/// name).
pub const DIR_NAME: &str = "__cluster_metadata-0";

/// This broker's controller: the one voter.
const VOTER: u64 = 0;

/// How long start-up waits for the voter to lead.
const ELECTION_WAIT: Duration = Duration::from_secs(30);

type MetaRaft = Raft<MetaTypes, MetaStateMachine>;

/// The running quorum.
pub struct Quorum {
    rt: tokio::runtime::Runtime,
    raft: MetaRaft,
    sm: MetaStateMachine,
}

impl Quorum {
    /// Opens the quorum in `data_dir`, initializing it on first start, and
    /// returns once it leads and has applied everything committed before.
    /// `base` carries this node's cluster id and node count.
    pub fn open(data_dir: &Path, base: ClusterMeta) -> io::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sluice-raft")
            .enable_all()
            .build()?;
        let store = MetaLogStore::open(&data_dir.join(DIR_NAME))?;
        let sm = MetaStateMachine::new(base);
        // Never snapshot: the state machine lives in memory, rebuilt by
        // replaying the whole log, which must therefore never be purged.
        let config = Config {
            cluster_name: "sluice-metadata".into(),
            snapshot_policy: SnapshotPolicy::Never,
            ..Default::default()
        }
        .validate()
        .map_err(io::Error::other)?;
        let raft =
            rt.block_on(Raft::new(VOTER, Arc::new(config), NoPeers, store, sm.clone())).map_err(io::Error::other)?;
        rt.block_on(async {
            if !raft.is_initialized().await.map_err(io::Error::other)? {
                raft.initialize(BTreeMap::from([(VOTER, BasicNode::default())])).await.map_err(io::Error::other)?;
            }
            raft.wait(Some(ELECTION_WAIT))
                .current_leader(VOTER, "the one voter leads")
                .await
                .map_err(io::Error::other)?;
            Ok::<_, io::Error>(())
        })?;
        let quorum = Self { rt, raft, sm };
        // Entries apply in order: once an empty command is applied, every
        // one committed before it is too.
        quorum.propose(Vec::new())?;
        Ok(quorum)
    }

    /// Commits `records` and returns the metadata once they are applied.
    pub fn propose(&self, records: Vec<MetaRecord>) -> io::Result<ClusterMeta> {
        self.rt.block_on(self.raft.client_write(MetaCommand { records })).map_err(io::Error::other)?;
        Ok(self.sm.meta())
    }

    /// The metadata as of the last applied entry.
    pub fn meta(&self) -> ClusterMeta {
        self.sm.meta()
    }
}
