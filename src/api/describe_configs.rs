//! DescribeConfigs for topics, brokers (a node, or `""`: the dynamic
//! cluster-wide defaults) and groups, as Kafka reports them: value, source,
//! Kafka's config type, read-only flag, and on request the synonyms (every
//! layer that sets the key) and documentation.

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

use super::config_resource::{self, Refusal, Resource};
use super::describe_log_dirs::log_dir;
use super::str_bytes;
use crate::broker::context::ShardCtx;
use crate::config::keys::IDENTITY_KEYS;
use crate::config::{ConfigEntry, ConfigSource, Synonym};
use crate::protocol::ErrorCode;

/// Answers DescribeConfigs.
pub fn handle(ctx: &ShardCtx, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let results = req
        .resources
        .iter()
        .map(|r| {
            let base = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            match entries(ctx, r) {
                Ok(entries) => base.with_configs(
                    entries
                        .into_iter()
                        .filter(|c| wanted(r.configuration_keys.as_deref(), c.key))
                        .map(|c| encode(c, req.include_synonyms, req.include_documentation))
                        .collect(),
                ),
                Err((code, msg)) => base.with_error_code(code.code()).with_error_message(Some(str_bytes(msg))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// Whether `key` was asked for: a null or empty key list asks for all, as
/// in Kafka.
fn wanted(keys: Option<&[kafka_protocol::protocol::StrBytes]>, key: &str) -> bool {
    keys.is_none_or(|keys| keys.is_empty() || keys.iter().any(|k| &**k == key))
}

/// The entries of one resource.
fn entries(ctx: &ShardCtx, r: &DescribeConfigsResource) -> Result<Vec<ConfigEntry>, Refusal> {
    let settings = ctx.setup.settings.load();
    Ok(match config_resource::resolve(ctx, r.resource_type, &r.resource_name)? {
        Resource::Topic(name) => match ctx.setup.snapshot.load().topic(&name) {
            Some(t) => settings.topic_entries(&t.configs),
            None => {
                return Err((ErrorCode::UnknownTopicOrPartition, format!("topic {name:?} does not exist")));
            }
        },
        Resource::Broker(None) => settings.cluster_default_entries(),
        Resource::Broker(Some(node)) => {
            // A node answers for its broker's nodes, which share its static
            // settings (each one's dynamic layers are in the metadata);
            // another broker's are that broker's to tell, as in Kafka.
            let meta = ctx.setup.snapshot.load();
            let mine = meta.node(ctx.setup.node_id).map(|at| at.broker.id);
            if let Some(at) = meta.node(node).filter(|at| Some(at.broker.id) != mine) {
                let (id, host, port) = (at.broker.id, &at.broker.host, at.port());
                let why = format!("node {node} is a shard of broker {id}: ask it ({host}:{port}) for its configs");
                return Err((ErrorCode::InvalidRequest, why));
            }
            let empty = Default::default();
            let cluster = meta.broker_configs.get("").unwrap_or(&empty);
            let own = meta.broker_configs.get(&node.to_string()).unwrap_or(&empty);
            let mut all = identity(ctx, node);
            all.extend(settings.with_dynamic(cluster, own).entries());
            all
        }
        // No group config applies to classic groups (see config_resource).
        Resource::Group(_) => Vec::new(),
    })
}

/// Node `node`'s read-only identity: ids, listeners, the log directory.
fn identity(ctx: &ShardCtx, node: i32) -> Vec<ConfigEntry> {
    let e = &ctx.setup.endpoints;
    let meta = ctx.setup.snapshot.load();
    let (host, port, broker) = meta
        .node(node)
        .map_or((e.advertised_host.clone(), -1, -1), |at| (at.broker.host.clone(), at.port(), at.broker.id));
    let values = [
        node.to_string(),
        broker.to_string(),
        format!("PLAINTEXT://{}:{port}", e.bind_host),
        format!("PLAINTEXT://{host}:{port}"),
        log_dir(&ctx.setup.data_dir),
    ];
    debug_assert_eq!(values.len(), IDENTITY_KEYS.len());
    IDENTITY_KEYS
        .iter()
        .zip(values)
        .map(|(k, value)| {
            let set = vec![Synonym { key: k.name, value, source: ConfigSource::StaticBroker }];
            ConfigEntry::from_layers(k.name, set, k.ty, k.doc, true)
        })
        .collect()
}

fn encode(c: ConfigEntry, synonyms: bool, documentation: bool) -> DescribeConfigsResourceResult {
    let synonyms = if synonyms {
        c.synonyms
            .into_iter()
            .map(|s| {
                DescribeConfigsSynonym::default()
                    .with_name(str_bytes(s.key))
                    .with_value(Some(str_bytes(s.value)))
                    .with_source(s.source as i8)
            })
            .collect()
    } else {
        Vec::new()
    };
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(c.key))
        .with_value(Some(str_bytes(c.value)))
        .with_read_only(c.read_only)
        .with_config_source(c.source as i8)
        .with_is_sensitive(false)
        .with_synonyms(synonyms)
        .with_config_type(c.ty as i8)
        .with_documentation(documentation.then(|| str_bytes(c.doc)))
}
