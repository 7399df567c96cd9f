//! A node that only votes (`process.roles=controller`): the metadata
//! quorum's voter on its controller listener (or, not among the voters, an
//! observer until AddRaftVoter makes it one), and while it leads, the
//! expiry that fences silent brokers. It has no shards, no client listener
//! and registers no broker, so clients never see it; brokers find it only
//! through `controller.quorum.voters`.

use std::path::PathBuf;

use tracing::info;

use super::{BrokerError, cluster_id_of, cluster_quorum, derived_cluster_id, discover_quorum, shutdown, take_data_dir};
use crate::config::BrokerSettings;
use crate::config::kraft::ClusterProcess;
use crate::metadata::controller::refuse_file_log;
use crate::metadata::model::ClusterMeta;
use crate::metadata::raft::quorum::Quorum;

/// Runs the voter until SIGTERM or SIGINT (or a kill: the quorum's log is
/// synced before each answer, so nothing a kill interrupts is lost).
pub fn run(data_dir: PathBuf, mut process: ClusterProcess, settings: &BrokerSettings) -> Result<(), BrokerError> {
    assert!(!process.serves_clients && process.can_vote, "a controller-only node may vote");
    // Before any thread exists, so that all of them inherit the mask.
    let signals = shutdown::block_signals();
    let dir_err = |source| BrokerError::DataDir { path: data_dir.clone(), source };
    take_data_dir(&data_dir)?;
    let quorums_id = discover_quorum(&mut process, &data_dir).map_err(dir_err)?;
    let cluster_id = cluster_id_of(&data_dir, quorums_id, || derived_cluster_id(&process)).map_err(dir_err)?;
    refuse_file_log(&data_dir).map_err(dir_err)?;
    let (config, listener) = cluster_quorum(&process).map_err(dir_err)?;
    let base = ClusterMeta::of_cluster(cluster_id.clone());
    let quorum = Quorum::open(&data_dir, base, config, Some(listener)).map_err(dir_err)?;
    quorum.start_expiry(settings.session_timeout());
    info!(
        node.id = process.node_id,
        controller = %process.controller,
        data_dir = %data_dir.display(),
        cluster_id = %cluster_id,
        "sluice controller ready (process.roles=controller: no shards, no client listener)"
    );
    let sig = shutdown::wait_for_signal(&signals);
    info!(signal = sig, "shutting down");
    // Nothing to hand over: the other voters elect a leader without it.
    drop(quorum);
    Ok(())
}
