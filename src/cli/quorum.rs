//! `sluice quorum`: the metadata quorum as `kafka-metadata-quorum.sh
//! describe` shows it, from DescribeQuorum: `--status` (leader, epoch, high
//! watermark, follower lag, voters and observers) or `--replication` (one
//! line per voter and observer with its log end, lag and timestamps).

use clap::Args;
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::describe_quorum_response::{self, ReplicaState};
use kafka_protocol::messages::{
    AddRaftVoterRequest, DescribeQuorumRequest, DescribeQuorumResponse, RemoveRaftVoterRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::client::Cluster;
use super::error::{CliError, check};

/// The metadata log's topic (Kafka's name).
const METADATA_TOPIC: &str = "__cluster_metadata";

/// `sluice quorum` arguments.
///
/// Example: sluice quorum --bootstrap-server localhost:9092 --status
#[derive(Args)]
pub struct QuorumArgs {
    /// Broker(s) to connect to, host:port[,host:port...].
    #[arg(long, default_value = "localhost:9092")]
    pub bootstrap_server: String,
    /// Leader, epoch, high watermark, lag, voters and observers.
    #[arg(long, conflicts_with = "replication")]
    pub status: bool,
    /// Each voter's and observer's log end, lag and fetch times.
    #[arg(long)]
    pub replication: bool,
    /// Make this node, an observer that may vote, a voter (AddRaftVoter).
    #[arg(long, value_name = "NODE_ID", conflicts_with_all = ["status", "replication", "remove_controller"])]
    pub add_controller: Option<i32>,
    /// Make this voter an observer (RemoveRaftVoter).
    #[arg(long, value_name = "NODE_ID", conflicts_with_all = ["status", "replication"])]
    pub remove_controller: Option<i32>,
}

/// Prints the quorum.
pub fn run(args: QuorumArgs) -> Result<(), CliError> {
    let mut cluster = Cluster::connect(&args.bootstrap_server)?;
    if let Some(id) = args.add_controller {
        let req = AddRaftVoterRequest::default().with_cluster_id(None).with_voter_id(id).with_timeout_ms(30_000);
        let resp = cluster.any().send(req)?;
        let why = resp.error_message.as_ref().map_or(String::new(), |m| format!(": {}", m.as_str()));
        check(resp.error_code, || format!("adding controller {id}{why}"))?;
        println!("Added controller {id} to the metadata quorum's voters.");
        return Ok(());
    }
    if let Some(id) = args.remove_controller {
        let resp = cluster.any().send(RemoveRaftVoterRequest::default().with_cluster_id(None).with_voter_id(id))?;
        let why = resp.error_message.as_ref().map_or(String::new(), |m| format!(": {}", m.as_str()));
        check(resp.error_code, || format!("removing controller {id}{why}"))?;
        println!("Removed controller {id} from the metadata quorum's voters.");
        return Ok(());
    }
    let resp = describe(&mut cluster)?;
    let p = partition(&resp)?;
    if args.replication {
        print_replication(p);
    } else {
        print_status(&cluster, &resp, p);
    }
    Ok(())
}

/// DescribeQuorum of the metadata log.
pub(super) fn describe(cluster: &mut Cluster) -> Result<DescribeQuorumResponse, CliError> {
    let req = DescribeQuorumRequest::default().with_topics(vec![
        TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
            .with_partitions(vec![PartitionData::default().with_partition_index(0)]),
    ]);
    let resp = cluster.any().send(req)?;
    check(resp.error_code, || "cannot describe the metadata quorum".into())?;
    Ok(resp)
}

pub(super) fn partition(resp: &DescribeQuorumResponse) -> Result<&describe_quorum_response::PartitionData, CliError> {
    let p = resp
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .next()
        .ok_or_else(|| CliError::Codec("DescribeQuorum response without the metadata partition".into()))?;
    check(p.error_code, || "cannot describe the metadata quorum".into())?;
    Ok(p)
}

/// How far a replica is behind the high watermark.
pub(super) fn lag(p: &describe_quorum_response::PartitionData, r: &ReplicaState) -> i64 {
    (p.high_watermark - r.log_end_offset).max(0)
}

fn print_status(cluster: &Cluster, resp: &DescribeQuorumResponse, p: &describe_quorum_response::PartitionData) {
    let endpoints = |id: i32| -> String {
        let node = resp.nodes.iter().find(|n| n.node_id.0 == id);
        let list: Vec<String> = node
            .map(|n| n.listeners.iter().map(|l| format!("\"{}://{}:{}\"", l.name, l.host, l.port)).collect())
            .unwrap_or_default();
        format!("[{}]", list.join(", "))
    };
    let followers = p.current_voters.iter().filter(|v| v.replica_id != p.leader_id);
    let max_lag = followers.clone().map(|v| lag(p, v)).max().unwrap_or(0);
    let max_lag_ms = followers
        .map(|v| if v.last_caught_up_timestamp < 0 { 0 } else { v.last_fetch_timestamp - v.last_caught_up_timestamp })
        .max()
        .unwrap_or(0);
    let voters: Vec<String> = p
        .current_voters
        .iter()
        .map(|v| format!("{{\"id\": {}, \"endpoints\": {}}}", v.replica_id.0, endpoints(v.replica_id.0)))
        .collect();
    let observers: Vec<String> = p.observers.iter().map(|o| format!("{{\"id\": {}}}", o.replica_id.0)).collect();
    println!("ClusterId:              {}", cluster.meta.cluster_id.as_deref().unwrap_or("-"));
    println!("LeaderId:               {}", p.leader_id.0);
    println!("LeaderEpoch:            {}", p.leader_epoch);
    println!("HighWatermark:          {}", p.high_watermark);
    println!("MaxFollowerLag:         {max_lag}");
    println!("MaxFollowerLagTimeMs:   {max_lag_ms}");
    println!("CurrentVoters:          [{}]", voters.join(", "));
    println!("CurrentObservers:       [{}]", observers.join(", "));
}

fn print_replication(p: &describe_quorum_response::PartitionData) {
    println!("NodeId\tLogEndOffset\tLag\tLastFetchTimestamp\tLastCaughtUpTimestamp\tStatus");
    let voters = p.current_voters.iter().map(|v| (v, if v.replica_id == p.leader_id { "Leader" } else { "Follower" }));
    for (r, status) in voters.chain(p.observers.iter().map(|o| (o, "Observer"))) {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{status}",
            r.replica_id.0,
            r.log_end_offset,
            lag(p, r),
            r.last_fetch_timestamp,
            r.last_caught_up_timestamp
        );
    }
}
