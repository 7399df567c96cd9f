//! `sluice elect-leaders`: ElectLeaders, as `kafka-leader-election.sh`
//! runs it: the preferred replica (or, unclean, any live one where none
//! leads) of one partition, a topic's, or every partition.

use clap::{Args, ValueEnum};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{ElectLeadersRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::client::Cluster;
use super::error::{CliError, check};

/// Kafka's election types.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ElectionType {
    /// The first assigned replica, if live and in sync.
    Preferred,
    /// Any live replica, where no live replica leads (may lose records).
    Unclean,
}

/// `sluice elect-leaders` arguments.
///
/// Example: sluice elect-leaders --bootstrap-server localhost:9092 --election-type preferred --all-topic-partitions
#[derive(Args)]
pub struct ElectArgs {
    /// Broker(s) to connect to, host:port[,host:port...].
    #[arg(long, default_value = "localhost:9092")]
    pub bootstrap_server: String,
    /// preferred or unclean.
    #[arg(long, value_enum, ignore_case = true)]
    pub election_type: ElectionType,
    /// The topic (all its partitions unless --partition).
    #[arg(long, conflicts_with = "all_topic_partitions")]
    pub topic: Option<String>,
    /// One partition of --topic.
    #[arg(long, requires = "topic")]
    pub partition: Option<i32>,
    /// Every partition of every topic.
    #[arg(long)]
    pub all_topic_partitions: bool,
}

/// Runs the election and prints each partition's outcome.
pub fn run(args: ElectArgs) -> Result<(), CliError> {
    let mut cluster = Cluster::connect(&args.bootstrap_server)?;
    let parts = match (&args.topic, args.all_topic_partitions) {
        (None, false) => return Err(CliError::Usage("name --topic or --all-topic-partitions".into())),
        (None, true) => None,
        (Some(topic), _) => {
            let partitions = match args.partition {
                Some(p) => vec![p],
                None => {
                    let meta = cluster.meta.clone();
                    let t = meta.topics.iter().find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic));
                    let t = t.ok_or_else(|| CliError::UnknownTopic(topic.clone()))?;
                    t.partitions.iter().map(|p| p.partition_index).collect()
                }
            };
            let name = TopicName(StrBytes::from_string(topic.clone()));
            Some(vec![TopicPartitions::default().with_topic(name).with_partitions(partitions)])
        }
    };
    let election_type = i8::from(args.election_type == ElectionType::Unclean);
    let req = ElectLeadersRequest::default()
        .with_election_type(election_type)
        .with_topic_partitions(parts)
        .with_timeout_ms(30_000);
    let resp = cluster.any().send(req)?;
    check(resp.error_code, || "ElectLeaders".to_string())?;
    let mut elected = 0;
    for t in &resp.replica_election_results {
        for p in &t.partition_result {
            let at = format!("{}-{}", t.topic.as_str(), p.partition_id);
            if p.error_code == 0 {
                elected += 1;
                println!("Successfully completed leader election for partition {at}");
            } else {
                let why = p.error_message.as_ref().map_or("", |m| m.as_str());
                println!("Error completing leader election for partition {at} (error code {}): {why}", p.error_code);
            }
        }
    }
    if elected == 0 && resp.replica_election_results.is_empty() {
        println!("Valid replica already elected for every partition");
    }
    Ok(())
}
