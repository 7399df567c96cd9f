//! `sluice topics`: create, list, describe, delete and alter topics, as
//! `kafka-topics.sh` does.

use clap::{Args, Subcommand};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest,
    IncrementalAlterConfigsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::client::Cluster;
use super::error::{CliError, check};
use crate::protocol::ErrorCode;

/// Topic commands.
#[derive(Subcommand)]
pub enum TopicsCommand {
    /// Create a topic.
    ///
    /// Example: sluice topics create orders --partitions 6 --config retention.ms=86400000
    Create {
        /// Topic name.
        topic: String,
        /// Partitions (default: the broker's num.partitions).
        #[arg(long, default_value_t = -1)]
        partitions: i32,
        /// Replication factor, up to the node count (followers do not copy
        /// their leader yet: replication is issue 24).
        #[arg(long, default_value_t = -1)]
        replication_factor: i16,
        /// A topic setting, key=value (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
        /// Do nothing if the topic exists.
        #[arg(long)]
        if_not_exists: bool,
    },
    /// List topic names, one per line.
    ///
    /// Example: sluice topics list
    List,
    /// Show partitions, leaders, replicas, ISR and non-default configs.
    ///
    /// Example: sluice topics describe orders
    Describe {
        /// Topics (default: all).
        topics: Vec<String>,
        /// Only partitions with replicas out of sync (Kafka's flag).
        #[arg(long)]
        under_replicated_partitions: bool,
    },
    /// Delete topics.
    ///
    /// Example: sluice topics delete orders
    Delete {
        /// Topic names.
        #[arg(required = true)]
        topics: Vec<String>,
    },
    /// Grow a topic's partition count, and set or delete its configs.
    ///
    /// Example: sluice topics alter orders --partitions 12 --config retention.ms=3600000 --delete-config segment.ms
    Alter {
        /// Topic name.
        topic: String,
        /// New partition count.
        #[arg(long)]
        partitions: Option<i32>,
        /// A topic setting to set, key=value (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
        /// A topic setting to remove (back to the broker default; repeatable).
        #[arg(long = "delete-config", value_name = "KEY")]
        delete_configs: Vec<String>,
    },
}

/// `--bootstrap-server` and the command.
#[derive(Args)]
pub struct TopicsArgs {
    /// Broker(s) to connect to, host:port[,host:port...].
    #[arg(long, default_value = "localhost:9092", global = true)]
    pub bootstrap_server: String,
    #[command(subcommand)]
    pub command: TopicsCommand,
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// Parses `key=value`.
pub fn key_value(s: &str) -> Result<(String, String), CliError> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| CliError::Usage(format!("expected key=value, got {s:?}")))
}

/// Runs a topics command, printing to stdout.
pub fn run(args: TopicsArgs) -> Result<(), CliError> {
    let mut cluster = Cluster::connect(&args.bootstrap_server)?;
    match args.command {
        TopicsCommand::Create { topic, partitions, replication_factor, configs, if_not_exists } => {
            let configs = configs
                .iter()
                .map(|c| {
                    key_value(c).map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(k))
                            .with_value(Some(StrBytes::from_string(v)))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let req = CreateTopicsRequest::default().with_timeout_ms(30_000).with_topics(vec![
                CreatableTopic::default()
                    .with_name(name(&topic))
                    .with_num_partitions(partitions)
                    .with_replication_factor(replication_factor)
                    .with_configs(configs),
            ]);
            let resp = cluster.any().send(req)?;
            let r = resp.topics.first().ok_or_else(|| CliError::Codec("empty CreateTopics response".into()))?;
            if if_not_exists && r.error_code == ErrorCode::TopicAlreadyExists.code() {
                return Ok(());
            }
            let detail = r.error_message.as_ref().map(|m| format!(" ({m})")).unwrap_or_default();
            check(r.error_code, || format!("cannot create topic {topic:?}{detail}"))?;
            println!("Created topic {topic}.");
        }
        TopicsCommand::List => {
            let mut names: Vec<String> =
                cluster.meta.topics.iter().filter_map(|t| t.name.as_ref().map(|n| n.to_string())).collect();
            names.sort();
            for n in names {
                println!("{n}");
            }
        }
        TopicsCommand::Describe { topics, under_replicated_partitions } => {
            describe(&mut cluster, topics, under_replicated_partitions)?
        }
        TopicsCommand::Delete { topics } => {
            let v = cluster.any().version::<DeleteTopicsRequest>()?;
            let mut req = DeleteTopicsRequest::default().with_timeout_ms(30_000);
            if v >= 6 {
                req.topics = topics.iter().map(|t| DeleteTopicState::default().with_name(Some(name(t)))).collect();
            } else {
                req.topic_names = topics.iter().map(|t| name(t)).collect();
            }
            let resp = cluster.any().send(req)?;
            for r in resp.responses {
                let t = r.name.map(|n| n.to_string()).unwrap_or_default();
                if r.error_code == ErrorCode::UnknownTopicOrPartition.code() {
                    return Err(CliError::UnknownTopic(t));
                }
                check(r.error_code, || format!("cannot delete topic {t:?}"))?;
                println!("Deleted topic {t}.");
            }
        }
        TopicsCommand::Alter { topic, partitions, configs, delete_configs } => {
            cluster.leaders(&topic)?;
            if partitions.is_none() && configs.is_empty() && delete_configs.is_empty() {
                return Err(CliError::Usage("nothing to alter: give --partitions, --config or --delete-config".into()));
            }
            if let Some(partitions) = partitions {
                let req = CreatePartitionsRequest::default()
                    .with_timeout_ms(30_000)
                    .with_topics(vec![CreatePartitionsTopic::default().with_name(name(&topic)).with_count(partitions)]);
                let resp = cluster.any().send(req)?;
                for r in resp.results {
                    let detail = r.error_message.as_ref().map(|m| format!(" ({m})")).unwrap_or_default();
                    check(r.error_code, || format!("cannot alter topic {topic:?}{detail}"))?;
                }
                println!("Topic {topic} now has {partitions} partitions.");
            }
            if !configs.is_empty() || !delete_configs.is_empty() {
                let mut ops = Vec::new();
                for c in &configs {
                    let (k, v) = key_value(c)?;
                    ops.push(
                        AlterableConfig::default()
                            .with_name(StrBytes::from_string(k))
                            .with_config_operation(0)
                            .with_value(Some(StrBytes::from_string(v))),
                    );
                }
                for k in &delete_configs {
                    ops.push(
                        AlterableConfig::default().with_name(StrBytes::from_string(k.clone())).with_config_operation(1),
                    );
                }
                let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
                    AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(StrBytes::from_string(topic.clone()))
                        .with_configs(ops),
                ]);
                let resp = cluster.any().send(req)?;
                for r in resp.responses {
                    let detail = r.error_message.as_ref().map(|m| format!(" ({m})")).unwrap_or_default();
                    check(r.error_code, || format!("cannot alter the configs of topic {topic:?}{detail}"))?;
                }
                println!("Updated the configs of topic {topic}.");
            }
        }
    }
    Ok(())
}

/// The topic line of `describe`: id, partition count, replication factor
/// and the topic's own configs.
fn print_topic(
    cluster: &mut Cluster,
    tname: &str,
    id: &uuid::Uuid,
    parts: &[kafka_protocol::messages::metadata_response::MetadataResponsePartition],
) -> Result<(), CliError> {
    let req = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(tname.to_string()))
            .with_configuration_keys(None),
    ]);
    let resp = cluster.any().send(req)?;
    let mut configs: Vec<String> = resp
        .results
        .iter()
        .flat_map(|r| r.configs.iter())
        .filter(|c| c.config_source == 1)
        .map(|c| format!("{}={}", c.name, c.value.as_deref().unwrap_or("")))
        .collect();
    configs.sort();
    let rf = parts.first().map_or(0, |p| p.replica_nodes.len());
    println!(
        "Topic: {tname}\tTopicId: {id}\tPartitionCount: {}\tReplicationFactor: {rf}\tConfigs: {}",
        parts.len(),
        configs.join(",")
    );
    Ok(())
}

fn describe(cluster: &mut Cluster, wanted: Vec<String>, under_replicated_only: bool) -> Result<(), CliError> {
    let mut topics: Vec<_> =
        cluster.meta.topics.iter().filter(|t| t.error_code == ErrorCode::None.code()).cloned().collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    for w in &wanted {
        if !topics.iter().any(|t| t.name.as_ref().is_some_and(|n| n.as_str() == w)) {
            return Err(CliError::UnknownTopic(w.clone()));
        }
    }
    for t in topics {
        let tname = t.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
        if !wanted.is_empty() && !wanted.contains(&tname) {
            continue;
        }
        let mut parts = t.partitions.clone();
        parts.sort_by_key(|p| p.partition_index);
        // As Kafka's tool: reporting under-replicated partitions lists
        // partitions only, no topic lines.
        if !under_replicated_only {
            print_topic(cluster, &tname, &t.topic_id, &parts)?;
        }
        for p in parts {
            if under_replicated_only && p.isr_nodes.len() >= p.replica_nodes.len() {
                continue;
            }
            let ids = |v: &[kafka_protocol::messages::BrokerId]| {
                v.iter().map(|b| b.0.to_string()).collect::<Vec<_>>().join(",")
            };
            // Several replicas on nodes of one host (shards of one broker):
            // losing the machine loses them all.
            let one_host = p.replica_nodes.len() > 1 && {
                let host = |id: i32| cluster.meta.brokers.iter().find(|b| b.node_id.0 == id).map(|b| b.host.clone());
                let hosts: Vec<_> = p.replica_nodes.iter().map(|b| host(b.0)).collect();
                hosts.iter().all(|h| h.is_some() && *h == hosts[0])
            };
            println!(
                "\tTopic: {tname}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}{}",
                p.partition_index,
                p.leader_id.0,
                ids(&p.replica_nodes),
                ids(&p.isr_nodes),
                if one_host { "\tNotMachineSafe: replicas on one host" } else { "" }
            );
        }
    }
    Ok(())
}
