//! IncrementalAlterConfigs: set or delete topic config overrides (what
//! `kafka-configs.sh --alter` and `sluice topics alter --config` send).
//! Settings read per request or per cleanup pass (retention, cleanup policy,
//! compression, timestamp type, message size) apply at once; the controller
//! hands the partition logs the rest (segment size and age, index interval,
//! preallocation, flush policy), each applying from the next point that
//! reads it (the next roll check, sync decision, index entry or new
//! segment), as in Kafka. Broker configs are static (server.properties /
//! --override).

use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use super::str_bytes;
use crate::broker::context::ShardCtx;
use crate::protocol::ErrorCode;

const TOPIC: i8 = 2;
const SET: i8 = 0;
const DELETE: i8 = 1;

/// Answers IncrementalAlterConfigs.
pub async fn handle(ctx: &ShardCtx, req: IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        let base = AlterConfigsResourceResponse::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name.clone());
        let fail = |code: ErrorCode, msg: String| {
            base.clone().with_error_code(code.code()).with_error_message(Some(str_bytes(msg)))
        };
        if r.resource_type != TOPIC {
            responses.push(fail(
                ErrorCode::InvalidRequest,
                "only topic configs can be altered; broker configs are static".into(),
            ));
            continue;
        }
        let mut changes = Vec::with_capacity(r.configs.len());
        let mut bad = None;
        for c in &r.configs {
            match c.config_operation {
                SET => changes.push((c.name.to_string(), Some(c.value.as_deref().unwrap_or_default().to_string()))),
                DELETE => changes.push((c.name.to_string(), None)),
                op => bad = Some(format!("operation {op} (APPEND/SUBTRACT) is not supported for {}", c.name)),
            }
        }
        if let Some(msg) = bad {
            responses.push(fail(ErrorCode::InvalidConfig, msg));
            continue;
        }
        match ctx.cfg.controller.alter_topic_configs(r.resource_name.to_string(), changes, req.validate_only).await {
            Ok(()) => responses.push(base),
            Err(e) => responses.push(fail(e.code, e.message)),
        }
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
