//! `sluice configs`: describe and alter topic, broker and cluster-default
//! configs, as `kafka-configs.sh` does (IncrementalAlterConfigs, so each
//! change touches only the keys it names).

use clap::{Args, Subcommand, ValueEnum};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::{DescribeConfigsRequest, IncrementalAlterConfigsRequest};
use kafka_protocol::protocol::StrBytes;

use super::client::{Cluster, Conn};
use super::error::{CliError, check};

/// What the configs belong to.
#[derive(Clone, Copy, ValueEnum)]
pub enum EntityType {
    Topics,
    Brokers,
    Groups,
}

impl EntityType {
    fn wire(self) -> i8 {
        match self {
            Self::Topics => 2,
            Self::Brokers => 4,
            Self::Groups => 32,
        }
    }
    fn singular(self) -> &'static str {
        match self {
            Self::Topics => "topic",
            Self::Brokers => "broker",
            Self::Groups => "group",
        }
    }
}

/// Which entity: a name, or the cluster-wide broker default.
#[derive(Args)]
pub struct Entity {
    /// topics, brokers or groups.
    #[arg(long, value_enum)]
    pub entity_type: EntityType,
    /// The topic, the broker (node id) or the group.
    #[arg(long, conflicts_with = "entity_default")]
    pub entity_name: Option<String>,
    /// The cluster-wide default of every broker.
    #[arg(long)]
    pub entity_default: bool,
}

/// Config commands.
#[derive(Subcommand)]
pub enum ConfigsCommand {
    /// Show the configs set on an entity (--all: every config, with its source).
    ///
    /// Example: sluice configs describe --entity-type brokers --entity-default
    Describe {
        #[command(flatten)]
        entity: Entity,
        /// Every config, not only those set on the entity.
        #[arg(long)]
        all: bool,
    },
    /// Set, delete, append to or subtract from configs.
    ///
    /// Example: sluice configs alter --entity-type brokers --entity-default --add-config log.retention.ms=3600000
    Alter {
        #[command(flatten)]
        entity: Entity,
        /// key=value[,key=value...]; a list value in brackets: cleanup.policy=[compact,delete].
        #[arg(long)]
        add_config: Option<String>,
        /// key[,key...] to remove (they inherit again).
        #[arg(long)]
        delete_config: Option<String>,
        /// key=value[,...]: add items to list configs.
        #[arg(long)]
        append_config: Option<String>,
        /// key=value[,...]: remove items from list configs.
        #[arg(long)]
        subtract_config: Option<String>,
    },
}

/// `--bootstrap-server` and the command.
#[derive(Args)]
pub struct ConfigsArgs {
    /// Broker(s) to connect to, host:port[,host:port...].
    #[arg(long, default_value = "localhost:9092", global = true)]
    pub bootstrap_server: String,
    #[command(subcommand)]
    pub command: ConfigsCommand,
}

/// Runs a configs command, printing to stdout.
pub fn run(args: ConfigsArgs) -> Result<(), CliError> {
    let mut cluster = Cluster::connect(&args.bootstrap_server)?;
    match args.command {
        ConfigsCommand::Describe { entity, all } => describe(&mut cluster, &entity, all),
        ConfigsCommand::Alter { entity, add_config, delete_config, append_config, subtract_config } => {
            let mut ops = Vec::new();
            for (text, op) in [(&add_config, 0), (&append_config, 2), (&subtract_config, 3)] {
                for (k, v) in pairs(text.as_deref().unwrap_or(""))? {
                    ops.push(op_entry(k, op, Some(v)));
                }
            }
            for k in delete_config.as_deref().unwrap_or("").split(',').map(str::trim).filter(|k| !k.is_empty()) {
                ops.push(op_entry(k.to_string(), 1, None));
            }
            if ops.is_empty() {
                return Err(CliError::Usage(
                    "nothing to alter: give --add-config, --delete-config, --append-config or --subtract-config".into(),
                ));
            }
            alter(&mut cluster, &entity, ops)
        }
    }
}

/// The resource name and the connection to ask: a broker's own node for
/// its configs, any node otherwise.
fn target<'a>(cluster: &'a mut Cluster, entity: &Entity) -> Result<(String, &'a mut Conn), CliError> {
    match (&entity.entity_name, entity.entity_default, entity.entity_type) {
        (None, true, EntityType::Brokers) => Ok((String::new(), cluster.any())),
        (None, true, _) => Err(CliError::Usage("--entity-default is only for --entity-type brokers".into())),
        (None, false, _) => Err(CliError::Usage("give --entity-name (or --entity-default for brokers)".into())),
        (Some(n), _, EntityType::Brokers) => {
            let id: i32 =
                n.parse().map_err(|_| CliError::Usage(format!("a broker is named by its node id, not {n:?}")))?;
            Ok((n.clone(), cluster.node(id)?))
        }
        (Some(n), _, _) => Ok((n.clone(), cluster.any())),
    }
}

fn describe(cluster: &mut Cluster, entity: &Entity, all: bool) -> Result<(), CliError> {
    let (name, conn) = target(cluster, entity)?;
    let req = DescribeConfigsRequest::default().with_include_synonyms(true).with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(entity.entity_type.wire())
            .with_resource_name(StrBytes::from_string(name.clone())),
    ]);
    let resp = conn.send(req)?;
    for r in resp.results {
        let detail = r.error_message.as_ref().map(|m| format!(" ({m})")).unwrap_or_default();
        check(r.error_code, || format!("cannot describe the configs of {name:?}{detail}"))?;
        let what = if name.is_empty() {
            "Default configs for brokers in the cluster are:".to_string()
        } else {
            let scope = if all { "All" } else { "Dynamic" };
            format!("{scope} configs for {} {name} are:", entity.entity_type.singular())
        };
        println!("{what}");
        // Without --all, only what is set on the entity itself, as Kafka shows.
        let own_source = match (entity.entity_type, name.is_empty()) {
            (EntityType::Topics, _) => 1,
            (EntityType::Brokers, false) => 2,
            (EntityType::Brokers, true) => 3,
            (EntityType::Groups, _) => 8,
        };
        let own = |c: &DescribeConfigsResourceResult| c.config_source == own_source;
        for c in r.configs.iter().filter(|c| all || own(c)) {
            println!("  {}", line(c));
        }
    }
    Ok(())
}

/// `key=value sensitive=false synonyms={SOURCE:key=value, ...}`, Kafka's layout.
fn line(c: &DescribeConfigsResourceResult) -> String {
    let synonyms: Vec<String> = c
        .synonyms
        .iter()
        .map(|s| format!("{}:{}={}", source_name(s.source), s.name, s.value.as_deref().unwrap_or("")))
        .collect();
    format!(
        "{}={} sensitive={} synonyms={{{}}}",
        c.name,
        c.value.as_deref().unwrap_or(""),
        c.is_sensitive,
        synonyms.join(", ")
    )
}

fn source_name(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        _ => "UNKNOWN",
    }
}

fn alter(cluster: &mut Cluster, entity: &Entity, ops: Vec<AlterableConfig>) -> Result<(), CliError> {
    let (name, conn) = target(cluster, entity)?;
    apply(conn, entity.entity_type, &name, ops)?;
    let shown = if name.is_empty() {
        "the default of every broker".to_string()
    } else {
        format!("{} {name}", entity.entity_type.singular())
    };
    println!("Completed updating config for {shown}.");
    Ok(())
}

/// Sends one IncrementalAlterConfigs for resource `name` of type `kind`
/// over `conn`; a refusal is an error.
pub fn apply(conn: &mut Conn, kind: EntityType, name: &str, ops: Vec<AlterableConfig>) -> Result<(), CliError> {
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(kind.wire())
            .with_resource_name(StrBytes::from_string(name.to_string()))
            .with_configs(ops),
    ]);
    for r in conn.send(req)?.responses {
        let detail = r.error_message.as_ref().map(|m| format!(" ({m})")).unwrap_or_default();
        check(r.error_code, || format!("cannot alter the configs of {name:?}{detail}"))?;
    }
    Ok(())
}

/// One IncrementalAlterConfigs operation (0 SET, 1 DELETE, 2 APPEND, 3 SUBTRACT).
pub fn op_entry(key: String, op: i8, value: Option<String>) -> AlterableConfig {
    AlterableConfig::default()
        .with_name(StrBytes::from_string(key))
        .with_config_operation(op)
        .with_value(value.map(StrBytes::from_string))
}

/// Splits `k1=v1,k2=[a,b]` into pairs; brackets keep a list value's commas.
pub fn pairs(text: &str) -> Result<Vec<(String, String)>, CliError> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    let bytes = text.as_bytes();
    for i in 0..=bytes.len() {
        match bytes.get(i) {
            Some(b'[') => depth += 1,
            Some(b']') => depth = depth.saturating_sub(1),
            Some(b',') if depth > 0 => {}
            Some(b',') | None => {
                let item = text[start..i].trim();
                start = i + 1;
                if item.is_empty() {
                    continue;
                }
                let (k, v) = super::topics::key_value(item)?;
                let v = v.trim();
                let v = v.strip_prefix('[').and_then(|v| v.strip_suffix(']')).unwrap_or(v);
                out.push((k, v.to_string()));
            }
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_keep_bracketed_lists_whole() {
        let p = pairs("retention.ms=5, cleanup.policy=[compact,delete],segment.bytes=4096").unwrap();
        assert_eq!(
            p,
            [
                ("retention.ms".to_string(), "5".to_string()),
                ("cleanup.policy".to_string(), "compact,delete".to_string()),
                ("segment.bytes".to_string(), "4096".to_string())
            ]
        );
        assert!(pairs("novalue").is_err());
        assert!(pairs("").unwrap().is_empty());
    }
}
