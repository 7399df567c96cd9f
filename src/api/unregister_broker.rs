//! UnregisterBroker (KIP-631, `kafka-cluster.sh unregister`): decommissions a
//! stopped broker, named by its broker id (`node.id`), through the metadata
//! quorum. A running broker is refused: it would go on serving, unlisted.

use kafka_protocol::messages::{UnregisterBrokerRequest, UnregisterBrokerResponse};

use super::str_bytes;
use crate::broker::context::ShardCtx;

/// Answers UnregisterBroker.
pub async fn handle(ctx: &ShardCtx, req: UnregisterBrokerRequest) -> UnregisterBrokerResponse {
    match ctx.setup.controller.unregister_broker(req.broker_id.0).await {
        Ok(()) => UnregisterBrokerResponse::default(),
        Err(e) => UnregisterBrokerResponse::default()
            .with_error_code(e.code.code())
            .with_error_message(Some(str_bytes(e.message))),
    }
}
