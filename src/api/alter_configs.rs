//! AlterConfigs (the legacy API): a resource's overrides are replaced
//! whole, so every override the request does not name is removed, as Kafka
//! does. Topics and dynamic broker configs (cluster default `""` or a node).

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};

use super::config_resource;
use super::str_bytes;
use crate::broker::context::ShardCtx;
use crate::config::edit::ConfigEdit;

/// Answers AlterConfigs.
pub async fn handle(ctx: &ShardCtx, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        let base = AlterConfigsResourceResponse::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name.clone());
        let all: BTreeMap<String, String> = r
            .configs
            .iter()
            .map(|c| (c.name.to_string(), c.value.as_deref().unwrap_or_default().to_string()))
            .collect();
        let done = match config_resource::resolve(ctx, r.resource_type, &r.resource_name) {
            Ok(resource) => config_resource::alter(ctx, resource, ConfigEdit::Replace(all), req.validate_only).await,
            Err(e) => Err(e),
        };
        responses.push(match done {
            Ok(()) => base,
            Err((code, msg)) => base.with_error_code(code.code()).with_error_message(Some(str_bytes(msg))),
        });
    }
    AlterConfigsResponse::default().with_responses(responses)
}
