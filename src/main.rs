//! `sluice`: a Kafka-compatible streaming broker, thread-per-core on io_uring.

use sluice::crc;
mod api;
mod broker;
mod cli;
mod clock;
mod config;
mod group;
mod metadata;
mod protocol;
mod replication;
mod storage;

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use broker::{BrokerOptions, default_shards};
use config::BrokerSettings;
use config::kraft::KafkaProperties;

#[derive(Parser)]
#[command(name = "sluice", version, about = "A Kafka-compatible streaming broker")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker: one shard (and Kafka node) per core.
    Broker(BrokerArgs),
    /// Create, list, describe, delete or alter topics.
    ///
    /// Example: sluice topics --bootstrap-server localhost:9092 create orders --partitions 3
    Topics(cli::topics::TopicsArgs),
    /// Describe or alter topic, broker and cluster-default configs.
    ///
    /// Example: sluice configs --bootstrap-server localhost:9092 alter --entity-type brokers --entity-default --add-config log.retention.ms=3600000
    Configs(cli::configs::ConfigsArgs),
    /// Produce lines from stdin or a file as records.
    ///
    /// Example: printf 'k1:hello\nk2:world\n' | sluice produce --topic demo --key-separator :
    Produce(cli::produce::ProduceArgs),
    /// Print records from partitions or as a group member.
    ///
    /// Example: sluice consume --topic demo --from-beginning --group readers --print-key
    Consume(cli::consume::ConsumeArgs),
    /// List, describe (lag), delete consumer groups or reset their offsets.
    ///
    /// Example: sluice groups --bootstrap-server localhost:9092 describe readers
    Groups(cli::groups::GroupsArgs),
    /// Show the nodes, the controller and (with --api-versions) the APIs each serves.
    ///
    /// Example: sluice cluster --bootstrap-server localhost:9092 --api-versions
    Cluster(cli::cluster::ClusterArgs),
    /// Move partitions' leadership to their preferred replicas (or, unclean, to any live one).
    ///
    /// Example: sluice elect-leaders --bootstrap-server localhost:9092 --election-type preferred --all-topic-partitions
    ElectLeaders(cli::elect_leaders::ElectArgs),
    /// Move partitions' replicas from Kafka's reassignment JSON (--execute, --verify, --cancel).
    ///
    /// Example: sluice reassign --bootstrap-server localhost:9092 --reassignment-json-file move.json --execute
    Reassign(cli::reassign::ReassignArgs),
    /// Show the metadata quorum, as kafka-metadata-quorum.sh describe does.
    ///
    /// Example: sluice quorum --bootstrap-server localhost:9092 --status
    Quorum(cli::quorum::QuorumArgs),
}

#[derive(Parser)]
struct BrokerArgs {
    /// Data directory (segments, metadata log, meta.properties) [default:
    /// log.dirs from --config, else ./sluice-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address to bind [default: the client listener's from --config, else
    /// 0.0.0.0].
    #[arg(long)]
    host: Option<IpAddr>,
    /// Base port: shard k listens on port + k [default: the client
    /// listener's from --config, else 9092].
    #[arg(long)]
    port: Option<u16>,
    /// Host name advertised to clients in Metadata (default: the bind
    /// address, or 127.0.0.1 when binding all interfaces).
    #[arg(long)]
    advertised_host: Option<String>,
    /// Number of shards (default: one per available core).
    #[arg(long)]
    shards: Option<usize>,
    /// Bytes of recent batches each shard keeps in memory for tailing
    /// consumers (the oldest are evicted first, across partitions).
    #[arg(long, default_value_t = 128 << 20)]
    cache_bytes: usize,
    /// A server.properties file of Kafka broker settings; a Kafka KRaft
    /// node's own works (listeners, log.dirs and the one-voter quorum are read
    /// from it).
    #[arg(long)]
    config: Option<PathBuf>,
    /// A Kafka broker setting, `key=value` (repeatable; wins over --config).
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

fn broker(args: BrokerArgs) -> Result<(), String> {
    let mut settings = BrokerSettings::default();
    let mut props = KafkaProperties::default();
    if let Some(path) = &args.config {
        settings.load_file(path, &mut props).map_err(|e| e.to_string())?;
    }
    for o in &args.overrides {
        let (k, v) = o.split_once('=').ok_or_else(|| format!("malformed setting {o:?}: expected key=value"))?;
        props.apply(&mut settings, k, v).map_err(|e| e.to_string())?;
    }
    if !props.inapplicable.is_empty() {
        let keys: Vec<String> = props.inapplicable.iter().map(|(k, why)| format!("{k} ({why})")).collect();
        tracing::warn!("these Kafka settings do not apply to sluice and are ignored: {}", keys.join("; "));
    }
    let process = props.finish(&mut settings).map_err(|e| e.to_string())?;
    if let (Some(id), None) = (process.node_id, &process.cluster) {
        tracing::info!(node.id = id, "a single broker (one voter): its shards are nodes 0..n-1");
    }
    if let Some(c) = process.cluster.clone().filter(|c| !c.serves_clients) {
        let data_dir = args.data_dir.or(process.data_dir).unwrap_or_else(|| PathBuf::from("./sluice-data"));
        return broker::controller_only::run(data_dir, c, &settings).map_err(|e| e.to_string());
    }
    let host = args.host.or(process.host).unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let shards = args.shards.unwrap_or_else(default_shards);
    if shards == 0 {
        return Err("--shards must be at least 1".into());
    }
    let advertised_host = args
        .advertised_host
        .or(process.advertised_host)
        .unwrap_or_else(|| if host.is_unspecified() { "127.0.0.1".to_string() } else { host.to_string() });
    let opts = BrokerOptions {
        data_dir: args.data_dir.or(process.data_dir).unwrap_or_else(|| PathBuf::from("./sluice-data")),
        host,
        port: args.port.or(process.port).unwrap_or(9092),
        advertised_host,
        shards,
        cache_bytes: args.cache_bytes,
        settings,
        cluster: process.cluster,
    };
    broker::run(opts).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal: a log file or a pipe
        // to grep gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // A log that cannot be written (stderr on a full disk, a closed pipe)
        // must not stop the broker: tracing-subscriber would report the
        // failure with eprintln!, which panics when stderr fails, and a panic
        // aborts the process. Lost log lines are the lesser harm.
        .log_internal_errors(false)
        // openraft reports every heartbeat to an unreachable voter; its
        // errors are kept, the quorum's state changes are logged by sluice.
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG").unwrap_or_else(|_| "info,openraft=error".into()),
        )
        .init();
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Broker(_)) {
        // The tools end quietly when their reader goes (`| head`), as Unix
        // tools do, instead of panicking on EPIPE. The broker keeps Rust's
        // default (SIGPIPE ignored, EPIPE as an error on that one socket).
        // SAFETY: restoring a default disposition before any thread exists.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let result = match cli.command {
        Command::Broker(args) => broker(args),
        Command::Topics(args) => cli::topics::run(args).map_err(|e| e.to_string()),
        Command::Configs(args) => cli::configs::run(args).map_err(|e| e.to_string()),
        Command::Produce(args) => cli::produce::run(args).map_err(|e| e.to_string()),
        Command::Consume(args) => cli::consume::run(args).map_err(|e| e.to_string()),
        Command::Groups(args) => cli::groups::run(args).map_err(|e| e.to_string()),
        Command::Cluster(args) => cli::cluster::run(args).map_err(|e| e.to_string()),
        Command::Quorum(args) => cli::quorum::run(args).map_err(|e| e.to_string()),
        Command::ElectLeaders(args) => cli::elect_leaders::run(args).map_err(|e| e.to_string()),
        Command::Reassign(args) => cli::reassign::run(args).map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice: error: {e}");
            ExitCode::FAILURE
        }
    }
}
