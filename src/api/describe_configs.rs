//! DescribeConfigs for topics and brokers, with Kafka key names and sources.

use kafka_protocol::messages::describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

use super::str_bytes;
use crate::broker::context::ShardCtx;
use crate::config::ConfigEntry;
use crate::protocol::ErrorCode;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;

/// Answers DescribeConfigs.
pub fn handle(ctx: &ShardCtx, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let meta = ctx.cfg.snapshot.load();
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let base = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let entries: Result<Vec<ConfigEntry>, (ErrorCode, String)> = match r.resource_type {
                TOPIC => match meta.topic(&r.resource_name) {
                    Some(t) => Ok(ctx.cfg.settings.topic_entries(&t.configs)),
                    None => Err((
                        ErrorCode::UnknownTopicOrPartition,
                        format!("topic {:?} does not exist", &*r.resource_name),
                    )),
                },
                BROKER => {
                    let known = r.resource_name.is_empty()
                        || r.resource_name.parse::<i32>().is_ok_and(|n| (0..meta.nodes).contains(&n));
                    if known {
                        Ok(ctx.cfg.settings.entries())
                    } else {
                        Err((ErrorCode::InvalidRequest, format!("no broker {:?}", &*r.resource_name)))
                    }
                }
                other => Err((ErrorCode::InvalidRequest, format!("resource type {other} is not supported"))),
            };
            match entries {
                Ok(entries) => {
                    let configs = entries
                        .into_iter()
                        .filter(|c| r.configuration_keys.as_ref().is_none_or(|keys| keys.iter().any(|k| &**k == c.key)))
                        .map(|c| {
                            DescribeConfigsResourceResult::default()
                                .with_name(str_bytes(c.key))
                                .with_value(Some(str_bytes(c.value)))
                                .with_config_source(c.source as i8)
                        })
                        .collect();
                    base.with_configs(configs)
                }
                Err((code, msg)) => base.with_error_code(code.code()).with_error_message(Some(str_bytes(msg))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}
