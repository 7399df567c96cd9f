//! `sluice reassign`: partition moves as `kafka-reassign-partitions.sh`
//! runs them, from Kafka's reassignment JSON (`{"version":1,"partitions":
//! [{"topic":"t","partition":0,"replicas":[1,2,3]}]}`): `--execute`
//! starts them (AlterPartitionReassignments), `--verify` says which are
//! complete (ListPartitionReassignments, then the replicas in Metadata),
//! `--cancel` cancels those still under way.

use std::path::PathBuf;

use clap::Args;
use kafka_protocol::messages::alter_partition_reassignments_request::{ReassignablePartition, ReassignableTopic};
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, ListPartitionReassignmentsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::client::Cluster;
use super::error::{CliError, check};
use super::throttle;

/// `sluice reassign` arguments.
///
/// Example: sluice reassign --bootstrap-server localhost:9092 --reassignment-json-file move.json --execute
#[derive(Args)]
pub struct ReassignArgs {
    /// Broker(s) to connect to, host:port[,host:port...].
    #[arg(long, default_value = "localhost:9092")]
    pub bootstrap_server: String,
    /// Kafka's reassignment JSON.
    #[arg(long)]
    pub reassignment_json_file: PathBuf,
    /// Start the moves.
    #[arg(long, conflicts_with_all = ["verify", "cancel"])]
    pub execute: bool,
    /// Say which moves are complete.
    #[arg(long, conflicts_with = "cancel")]
    pub verify: bool,
    /// Cancel the moves still under way.
    #[arg(long)]
    pub cancel: bool,
    /// With --execute: throttle the moves' replication to this many bytes
    /// per second (removed by --verify once they are complete).
    #[arg(long, requires = "execute")]
    pub throttle: Option<i64>,
}

/// One partition of the JSON.
#[derive(serde::Deserialize)]
struct Move {
    topic: String,
    partition: i32,
    replicas: Vec<i32>,
}

#[derive(serde::Deserialize)]
struct Plan {
    partitions: Vec<Move>,
}

/// Runs `--execute`, `--verify` or `--cancel`.
pub fn run(args: ReassignArgs) -> Result<(), CliError> {
    let text = std::fs::read_to_string(&args.reassignment_json_file)
        .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", args.reassignment_json_file.display())))?;
    let plan: Plan = serde_json::from_str(&text).map_err(|e| CliError::Usage(format!("bad reassignment JSON: {e}")))?;
    let mut cluster = Cluster::connect(&args.bootstrap_server)?;
    if args.verify {
        return verify(&mut cluster, &plan);
    }
    if !args.execute && !args.cancel {
        return Err(CliError::Usage("name --execute, --verify or --cancel".into()));
    }
    if let Some(rate) = args.throttle {
        let moving: Vec<throttle::Moving<'_>> = plan
            .partitions
            .iter()
            .map(|m| throttle::Moving {
                topic: &m.topic,
                partition: m.partition,
                current: replicas_now(&cluster, &m.topic, m.partition).unwrap_or_default(),
                target: &m.replicas,
            })
            .collect();
        throttle::set(&mut cluster, rate, &moving)?;
    }
    let mut topics: Vec<ReassignableTopic> = Vec::new();
    for m in &plan.partitions {
        let replicas = args.execute.then(|| m.replicas.iter().map(|n| BrokerId(*n)).collect());
        let part = ReassignablePartition::default().with_partition_index(m.partition).with_replicas(replicas);
        match topics.iter_mut().find(|t| t.name.as_str() == m.topic) {
            Some(t) => t.partitions.push(part),
            None => topics.push(ReassignableTopic::default().with_name(name(&m.topic)).with_partitions(vec![part])),
        }
    }
    let req = AlterPartitionReassignmentsRequest::default().with_timeout_ms(30_000).with_topics(topics);
    let resp = cluster.any().send(req)?;
    check(resp.error_code, || "AlterPartitionReassignments".to_string())?;
    let verb = if args.execute { "started" } else { "cancelled" };
    let mut failed = 0;
    for t in &resp.responses {
        for p in &t.partitions {
            let at = format!("{}-{}", t.name.as_str(), p.partition_index);
            if p.error_code == 0 {
                println!("Reassignment of partition {at} {verb}.");
            } else {
                failed += 1;
                let why = p.error_message.as_ref().map_or("", |m| m.as_str());
                println!("Error reassigning partition {at} (error code {}): {why}", p.error_code);
            }
        }
    }
    if failed > 0 {
        return Err(CliError::Usage(format!("{failed} partition(s) could not be reassigned")));
    }
    Ok(())
}

/// Prints, per partition of the plan, whether its move is complete.
fn verify(cluster: &mut Cluster, plan: &Plan) -> Result<(), CliError> {
    let mut topics: Vec<ListPartitionReassignmentsTopics> = Vec::new();
    for m in &plan.partitions {
        match topics.iter_mut().find(|t| t.name.as_str() == m.topic) {
            Some(t) => t.partition_indexes.push(m.partition),
            None => topics.push(
                ListPartitionReassignmentsTopics::default()
                    .with_name(name(&m.topic))
                    .with_partition_indexes(vec![m.partition]),
            ),
        }
    }
    let req = ListPartitionReassignmentsRequest::default().with_timeout_ms(30_000).with_topics(Some(topics));
    let resp = cluster.any().send(req)?;
    check(resp.error_code, || "ListPartitionReassignments".to_string())?;
    let ongoing = |topic: &str, p: i32| {
        resp.topics.iter().any(|t| t.name.as_str() == topic && t.partitions.iter().any(|q| q.partition_index == p))
    };
    cluster.refresh(None)?;
    let mut complete = true;
    for m in &plan.partitions {
        let at = format!("{}-{}", m.topic, m.partition);
        let replicas = replicas_now(cluster, &m.topic, m.partition);
        complete &= !ongoing(&m.topic, m.partition);
        if ongoing(&m.topic, m.partition) {
            println!("Reassignment of partition {at} is still in progress.");
        } else if replicas.as_deref() == Some(&m.replicas[..]) {
            println!("Reassignment of partition {at} is completed.");
        } else {
            println!("There is no active reassignment of partition {at}, but replicas are {replicas:?}.");
        }
    }
    if complete {
        // As Kafka's tool: a throttle set by --execute goes once nothing moves.
        let topics = plan.partitions.iter().map(|m| m.topic.as_str()).collect();
        throttle::clear(cluster, &topics)?;
    }
    Ok(())
}

/// Partition `p` of `topic`'s replicas, as the last metadata read says.
fn replicas_now(cluster: &Cluster, topic: &str, p: i32) -> Option<Vec<i32>> {
    let t = cluster.meta.topics.iter().find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic))?;
    let part = t.partitions.iter().find(|q| q.partition_index == p)?;
    Some(part.replica_nodes.iter().map(|n| n.0).collect())
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}
