//! IncrementalAlterConfigs: SET, DELETE, APPEND and SUBTRACT on topic
//! overrides and on dynamic broker configs (the cluster default `""` or one
//! node), what `kafka-configs.sh --alter` sends. Each resource's operations
//! apply together or not at all. Settings read per request or per cleanup
//! pass (retention, cleanup policy, compression, timestamp type, message
//! size) apply at once; the controller hands the partition logs the rest
//! (segment size and age, index interval, preallocation, flush policy), each
//! applying from the next point that reads it (the next roll check, sync
//! decision, index entry or new segment), as in Kafka.

use kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use super::config_resource::{self, Refusal};
use super::str_bytes;
use crate::broker::context::ShardCtx;
use crate::config::edit::{ConfigEdit, ConfigOp};
use crate::protocol::ErrorCode;

/// IncrementalAlterConfigs' DELETE operation code.
const DELETE: i8 = 1;

/// Answers IncrementalAlterConfigs.
pub async fn handle(ctx: &ShardCtx, req: IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        let base = AlterConfigsResourceResponse::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name.clone());
        let ops = operations(&r.configs);
        let done = match (ops, config_resource::resolve(ctx, r.resource_type, &r.resource_name)) {
            (Ok(ops), Ok(resource)) => {
                config_resource::alter(ctx, resource, ConfigEdit::Incremental(ops), req.validate_only).await
            }
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        responses.push(match done {
            Ok(()) => base,
            Err((code, msg)) => base.with_error_code(code.code()).with_error_message(Some(str_bytes(msg))),
        });
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// The request's operations for one resource, refused as Kafka refuses
/// them: an unknown operation, a null value to set, append or subtract, or
/// a key named twice is `INVALID_REQUEST`.
fn operations(configs: &[AlterableConfig]) -> Result<Vec<ConfigOp>, Refusal> {
    let invalid = |msg: String| (ErrorCode::InvalidRequest, msg);
    let mut seen = std::collections::BTreeSet::new();
    configs
        .iter()
        .map(|c| {
            if !seen.insert(c.name.as_str()) {
                return Err(invalid(format!("Error due to duplicate config keys: {}", c.name)));
            }
            if c.value.is_none() && c.config_operation != DELETE {
                return Err(invalid(format!("Null value not supported for: {}", c.name)));
            }
            let value = c.value.as_ref().map(|v| v.to_string());
            ConfigOp::from_wire(c.config_operation, c.name.to_string(), value)
                .ok_or_else(|| invalid(format!("unknown config operation {} for {}", c.config_operation, c.name)))
        })
        .collect()
}
