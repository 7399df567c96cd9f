//! CreatePartitions: grow a topic; new partitions are placed by count.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::str_bytes;
use crate::broker::context::ShardCtx;

/// Answers CreatePartitions.
pub async fn handle(ctx: &ShardCtx, req: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let r = ctx.setup.controller.create_partitions(t.name.to_string(), t.count, req.validate_only).await;
        results.push(match r {
            Ok(()) => CreatePartitionsTopicResult::default().with_name(t.name),
            Err(e) => CreatePartitionsTopicResult::default()
                .with_name(t.name)
                .with_error_code(e.code.code())
                .with_error_message(Some(str_bytes(e.message))),
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}
