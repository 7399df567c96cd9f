//! `sluice cluster`: the nodes, the controller, the metadata quorum and each
//! node's API versions.

use clap::Args;
use kafka_protocol::messages::ApiKey;

use super::client::Cluster;
use super::error::CliError;

/// `sluice cluster` arguments.
///
/// Example: sluice cluster --bootstrap-server localhost:9092 --api-versions
#[derive(Args)]
pub struct ClusterArgs {
    /// Broker(s) to connect to, host:port[,host:port...].
    #[arg(long, default_value = "localhost:9092")]
    pub bootstrap_server: String,
    /// Also list the API versions each node serves.
    #[arg(long)]
    pub api_versions: bool,
}

/// Prints the cluster.
pub fn run(args: ClusterArgs) -> Result<(), CliError> {
    let mut cluster = Cluster::connect(&args.bootstrap_server)?;
    let meta = cluster.meta.clone();
    let answered = cluster.any().addr().to_string();
    println!("Bootstrap: {} (answered by {answered})", cluster.bootstrap);
    println!("Cluster id: {}", meta.cluster_id.as_deref().unwrap_or("-"));
    println!("Controller: node {}", meta.controller_id.0);
    let quorum = super::quorum::describe(&mut cluster)?;
    let q = super::quorum::partition(&quorum)?;
    let voters: Vec<String> = q.current_voters.iter().map(|v| v.replica_id.0.to_string()).collect();
    println!(
        "Metadata quorum: leader node {}, epoch {}, high watermark {}, voters [{}]",
        q.leader_id.0,
        q.leader_epoch,
        q.high_watermark,
        voters.join(",")
    );
    let mut brokers = meta.brokers.clone();
    brokers.sort_by_key(|b| b.node_id.0);
    for b in brokers {
        println!("Node {}: {}:{}", b.node_id.0, b.host, b.port);
        if args.api_versions {
            for (key, min, max) in cluster.node(b.node_id.0)?.api_versions() {
                let name = ApiKey::try_from(key).map_or_else(|_| format!("ApiKey({key})"), |k| format!("{k:?}"));
                println!("\t{name}({key}): {min} to {max}");
            }
        }
    }
    Ok(())
}
