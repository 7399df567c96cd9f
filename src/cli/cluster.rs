//! `sluice cluster`: the nodes, the controller, the metadata quorum and each
//! node's API versions.

use std::collections::BTreeMap;

use clap::Args;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::metadata_response::MetadataResponseBroker;
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeClusterRequest, DescribeConfigsRequest, MetadataResponse, UnregisterBrokerRequest,
};
use kafka_protocol::protocol::StrBytes;

use super::client::Cluster;
use super::error::{CliError, check};

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
    /// Decommission the stopped broker with this id (`node.id`) instead
    /// (UnregisterBroker).
    #[arg(long, value_name = "BROKER_ID")]
    pub unregister: Option<i32>,
}

/// Prints the cluster, or unregisters a broker.
pub fn run(args: ClusterArgs) -> Result<(), CliError> {
    let mut cluster = Cluster::connect(&args.bootstrap_server)?;
    if let Some(id) = args.unregister {
        let resp = cluster.any().send(UnregisterBrokerRequest::default().with_broker_id(BrokerId(id)))?;
        let why = resp.error_message.as_ref().map_or(String::new(), |m| format!(": {}", m.as_str()));
        check(resp.error_code, || format!("unregistering broker {id}{why}"))?;
        println!("Broker {id} is no longer registered.");
        return Ok(());
    }
    let meta = cluster.meta.clone();
    let answered = cluster.any().addr().to_string();
    println!("Bootstrap: {} (answered by {answered})", cluster.bootstrap);
    println!("Cluster id: {}", meta.cluster_id.as_deref().unwrap_or("-"));
    println!("Controller: node {}", meta.controller_id.0);
    print_quorum(&mut cluster)?;
    let load = Load::of(&meta);
    let owners = brokers_of(&mut cluster)?;
    let mut by_broker: BTreeMap<i32, Vec<&MetadataResponseBroker>> = BTreeMap::new();
    for b in &meta.brokers {
        by_broker.entry(owners.get(&b.node_id.0).copied().unwrap_or(-1)).or_default().push(b);
    }
    for (broker, mut nodes) in by_broker {
        nodes.sort_by_key(|b| b.node_id.0);
        let ids: Vec<i32> = nodes.iter().map(|b| b.node_id.0).collect();
        let sum = |m: &BTreeMap<i32, usize>| ids.iter().map(|n| m.get(n).unwrap_or(&0)).sum::<usize>();
        let rack = nodes[0].rack.as_ref().map(|r| format!(", rack {r}")).unwrap_or_default();
        let name = if broker < 0 { "Broker ?".to_string() } else { format!("Broker {broker}") };
        println!(
            "{name}: {}{rack}, alive, {} shard(s), leads {} partitions, holds {} replicas",
            nodes[0].host,
            ids.len(),
            sum(&load.leaders),
            sum(&load.replicas)
        );
        for b in nodes {
            let id = b.node_id.0;
            println!(
                "  Node {id}: {}:{}, alive, leads {} partitions, holds {} replicas",
                b.host,
                b.port,
                load.leaders.get(&id).unwrap_or(&0),
                load.replicas.get(&id).unwrap_or(&0)
            );
            if args.api_versions {
                for (key, min, max) in cluster.node(id)?.api_versions() {
                    let name = ApiKey::try_from(key).map_or_else(|_| format!("ApiKey({key})"), |k| format!("{k:?}"));
                    println!("\t{name}({key}): {min} to {max}");
                }
            }
        }
    }
    // Fenced brokers' nodes (DescribeCluster v2 lists them on request):
    // stopped or silent, their partitions without a live leader.
    let described = cluster.any().send(DescribeClusterRequest::default().with_include_fenced_brokers(true))?;
    for b in described.brokers.iter().filter(|b| b.is_fenced) {
        let id = b.broker_id.0;
        println!("Node {id}: {}:{}, fenced, holds {} replicas", b.host, b.port, load.replicas.get(&id).unwrap_or(&0));
    }
    if load.leaderless.is_empty() {
        println!("Partitions without a live leader: none");
    } else {
        println!("Partitions without a live leader: {}", load.leaderless.join(", "));
    }
    Ok(())
}

/// The quorum's leader, epoch, high watermark, and each voter's lag.
fn print_quorum(cluster: &mut Cluster) -> Result<(), CliError> {
    let quorum = super::quorum::describe(cluster)?;
    let q = super::quorum::partition(&quorum)?;
    let voters: Vec<String> = q
        .current_voters
        .iter()
        .map(|v| match v.log_end_offset {
            end if end < 0 => format!("{} (lag unknown)", v.replica_id.0),
            _ => format!("{} (lag {})", v.replica_id.0, super::quorum::lag(q, v)),
        })
        .collect();
    println!(
        "Metadata quorum: leader node {}, epoch {}, high watermark {}, voters {}",
        q.leader_id.0,
        q.leader_epoch,
        q.high_watermark,
        voters.join(", ")
    );
    Ok(())
}

/// The broker (`broker.id`) each live node is a shard of. A broker
/// describes only its own nodes' configs, so each is asked about every
/// node once and answers for its own: one request per broker. Nodes that
/// do not answer are left out.
fn brokers_of(cluster: &mut Cluster) -> Result<BTreeMap<i32, i32>, CliError> {
    let nodes = cluster.node_ids();
    let mut owner = BTreeMap::new();
    for &n in &nodes {
        if owner.contains_key(&n) {
            continue;
        }
        let resources = nodes
            .iter()
            .filter(|m| !owner.contains_key(*m))
            .map(|m| {
                DescribeConfigsResource::default()
                    .with_resource_type(BROKER_RESOURCE)
                    .with_resource_name(StrBytes::from_string(m.to_string()))
                    .with_configuration_keys(Some(vec![StrBytes::from_static_str("broker.id")]))
            })
            .collect();
        let req = DescribeConfigsRequest::default().with_resources(resources);
        // A node that cannot be reached (killed, not fenced yet) is listed
        // under an unknown broker rather than failing the whole view.
        let Ok(resp) = cluster.node(n).and_then(|conn| Ok(conn.send(req)?)) else {
            continue;
        };
        for r in resp.results.iter().filter(|r| r.error_code == 0) {
            let broker = r.configs.iter().find(|c| c.name.as_str() == "broker.id").and_then(|c| c.value.as_ref());
            if let (Ok(node), Some(Ok(broker))) = (r.resource_name.parse(), broker.map(|b| b.parse())) {
                owner.insert(node, broker);
            }
        }
    }
    Ok(owner)
}

/// DescribeConfigs' resource type for a broker (node).
const BROKER_RESOURCE: i8 = 4;

/// What the metadata says each node carries.
struct Load {
    /// Partitions led, by node.
    leaders: BTreeMap<i32, usize>,
    /// Replicas held (leaders included), by node.
    replicas: BTreeMap<i32, usize>,
    /// `topic-partition` of every partition whose leader is no live node.
    leaderless: Vec<String>,
}

impl Load {
    fn of(meta: &MetadataResponse) -> Self {
        let live: Vec<i32> = meta.brokers.iter().map(|b| b.node_id.0).collect();
        let mut load = Load { leaders: BTreeMap::new(), replicas: BTreeMap::new(), leaderless: Vec::new() };
        for t in &meta.topics {
            let name = t.name.as_ref().map_or("?", |n| n.as_str());
            for p in &t.partitions {
                if live.contains(&p.leader_id.0) {
                    *load.leaders.entry(p.leader_id.0).or_default() += 1;
                } else {
                    load.leaderless.push(format!("{name}-{}", p.partition_index));
                }
                for r in &p.replica_nodes {
                    *load.replicas.entry(r.0).or_default() += 1;
                }
            }
        }
        load.leaderless.sort();
        load
    }
}
