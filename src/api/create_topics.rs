//! CreateTopics, including `validate_only` and topic configs.

use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};

use super::str_bytes;
use crate::broker::context::ShardCtx;
use crate::metadata::controller::NewTopic;

/// Answers CreateTopics.
pub async fn handle(ctx: &ShardCtx, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let names: Vec<_> = req.topics.iter().map(|t| t.name.clone()).collect();
    let topics = req
        .topics
        .into_iter()
        .map(|t| NewTopic {
            name: t.name.to_string(),
            partitions: t.num_partitions,
            replication_factor: t.replication_factor,
            assignment: (!t.assignments.is_empty()).then(|| {
                let mut a: Vec<_> = t
                    .assignments
                    .iter()
                    .map(|a| (a.partition_index, a.broker_ids.iter().map(|b| b.0).collect()))
                    .collect();
                a.sort_unstable();
                a
            }),
            configs: t
                .configs
                .iter()
                .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
                .collect(),
        })
        .collect();
    let results = ctx.setup.controller.create_topics(topics, req.validate_only).await;
    let topics = names
        .into_iter()
        .zip(results)
        .map(|(name, r)| match r {
            Ok(t) => {
                let configs = ctx
                    .setup
                    .settings
                    .load()
                    .topic_entries(&t.configs)
                    .into_iter()
                    .map(|c| {
                        CreatableTopicConfigs::default()
                            .with_name(str_bytes(c.key))
                            .with_value(Some(str_bytes(c.value)))
                            .with_config_source(c.source as i8)
                    })
                    .collect();
                CreatableTopicResult::default()
                    .with_name(name)
                    .with_topic_id(t.id)
                    .with_num_partitions(t.leaders.len() as i32)
                    .with_replication_factor(t.replication_factor() as i16)
                    .with_configs(Some(configs))
            }
            Err(e) => CreatableTopicResult::default()
                .with_name(name)
                .with_error_code(e.code.code())
                .with_error_message(Some(str_bytes(e.message)))
                .with_num_partitions(-1)
                .with_replication_factor(-1),
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}
