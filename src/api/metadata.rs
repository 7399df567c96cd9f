//! Metadata: brokers (one per shard), topics, partition leaders. Creates
//! missing topics when the client allows it and `auto.create.topics.enable`.

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};

use super::str_bytes;
use crate::broker::context::ShardCtx;
use crate::metadata::TopicMeta;
use crate::metadata::controller::NewTopic;
use crate::metadata::model::ClusterMeta;
use crate::metadata::topic_name;
use crate::protocol::ErrorCode;

/// Builds the Metadata entry of one topic.
pub fn topic_entry(meta: &ClusterMeta, t: &TopicMeta) -> MetadataResponseTopic {
    let partitions = t
        .leaders
        .iter()
        .enumerate()
        .map(|(p, &leader)| {
            let entry = MetadataResponsePartition::default()
                .with_partition_index(p as i32)
                .with_leader_epoch(t.epochs[p])
                .with_replica_nodes(t.replicas[p].iter().map(|n| BrokerId(*n)).collect());
            let entry = entry.with_isr_nodes(t.isr[p].iter().map(|n| BrokerId(*n)).collect());
            if !meta.is_live(leader) {
                // Its broker is fenced, and no live replica in sync took
                // over: no leader until that broker is back.
                return entry.with_error_code(ErrorCode::LeaderNotAvailable.code()).with_leader_id(BrokerId(-1));
            }
            entry.with_leader_id(BrokerId(leader))
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(t.name.clone()))))
        .with_topic_id(t.id)
        .with_is_internal(t.name == crate::group::OFFSETS_TOPIC)
        .with_partitions(partitions)
}

fn error_entry(name: Option<TopicName>, id: uuid::Uuid, code: ErrorCode) -> MetadataResponseTopic {
    MetadataResponseTopic::default().with_name(name).with_topic_id(id).with_error_code(code.code())
}

/// A topic auto-created with broker defaults.
pub fn default_topic(name: &str) -> NewTopic {
    NewTopic {
        name: name.to_string(),
        partitions: -1,
        replication_factor: -1,
        assignment: None,
        configs: Default::default(),
    }
}

/// Answers Metadata.
pub async fn handle(ctx: &ShardCtx, req: MetadataRequest, version: i16) -> MetadataResponse {
    let all = match &req.topics {
        None => true,
        Some(t) => version == 0 && t.is_empty(),
    };
    let allow_auto = (version < 4 || req.allow_auto_topic_creation) && ctx.setup.settings.load().auto_create_topics();
    if !all && allow_auto {
        let meta = ctx.setup.snapshot.load();
        let missing: Vec<NewTopic> = req
            .topics
            .iter()
            .flatten()
            .filter_map(|t| t.name.as_ref())
            .filter(|n| meta.topic(n).is_none() && topic_name::validate(n).is_ok())
            .map(|n| default_topic(n))
            .collect();
        if !missing.is_empty() {
            // Races with a concurrent creator end in TOPIC_ALREADY_EXISTS,
            // which is fine: the topic exists either way.
            let _ = ctx.setup.controller.create_topics(missing, false).await;
        }
    }
    let meta = ctx.setup.snapshot.load();
    let brokers = meta
        .live_nodes()
        .into_iter()
        .map(|(n, at)| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(n))
                .with_host(str_bytes(at.broker.host.clone()))
                .with_port(at.port())
                .with_rack(at.broker.rack.clone().map(str_bytes))
        })
        .collect();
    let topics = if all {
        meta.topics.values().map(|t| topic_entry(&meta, t)).collect()
    } else {
        req.topics
            .iter()
            .flatten()
            .map(|t| match &t.name {
                Some(name) => {
                    if topic_name::validate(name).is_err() {
                        error_entry(Some(name.clone()), t.topic_id, ErrorCode::InvalidTopic)
                    } else if let Some(topic) = meta.topic(name) {
                        topic_entry(&meta, topic)
                    } else {
                        error_entry(Some(name.clone()), t.topic_id, ErrorCode::UnknownTopicOrPartition)
                    }
                }
                None => match meta.topic_by_id(&t.topic_id) {
                    Some(topic) => topic_entry(&meta, topic),
                    None => error_entry(None, t.topic_id, ErrorCode::UnknownTopicId),
                },
            })
            .collect()
    };
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(str_bytes(meta.cluster_id.clone())))
        // Any broker takes admin requests (one that does not lead the
        // quorum forwards them): the shard asked names itself, so clients
        // never wait on a controller node that may be fenced.
        .with_controller_id(BrokerId(ctx.setup.node_id))
        .with_topics(topics)
}
