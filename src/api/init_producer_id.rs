//! InitProducerId for idempotent (non-transactional) producers: kafka-python
//! 2.1+ and the Java client enable idempotence by default and send this
//! first. Ids come from the controller and are never reused. Per-partition
//! sequence checking (duplicate detection) is not done yet: batches are
//! stored as sent, which is at-least-once on producer retries.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::broker::context::ShardCtx;
use crate::protocol::ErrorCode;

/// Answers InitProducerId.
pub async fn handle(ctx: &ShardCtx, req: InitProducerIdRequest) -> InitProducerIdResponse {
    let fail = |code: ErrorCode| {
        InitProducerIdResponse::default()
            .with_error_code(code.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if req.transactional_id.is_some() {
        // Transactions need a transaction coordinator, which sluice lacks.
        return fail(ErrorCode::TransactionalIdAuthorizationFailed);
    }
    // KIP-360: a producer that already has an id asks for an epoch bump.
    if req.producer_id.0 >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX - 1 {
        return InitProducerIdResponse::default()
            .with_producer_id(req.producer_id)
            .with_producer_epoch(req.producer_epoch + 1);
    }
    match ctx.setup.controller.allocate_producer_id().await {
        Ok(id) => InitProducerIdResponse::default().with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => fail(e.code),
    }
}
