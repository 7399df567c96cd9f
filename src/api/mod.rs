//! Request handlers, one module per API, and dispatch by API key.

pub mod api_versions;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod fetch;
pub mod init_producer_id;
pub mod list_offsets;
pub mod metadata;
pub mod produce;

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::messages::{RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use crate::broker::context::ShardCtx;
use crate::protocol::frame::{self, Request};

/// A response on its way: an encoded frame, or nothing (acks=0 produce).
pub type Pending = Pin<Box<dyn Future<Output = Option<Bytes>>>>;

/// Starts handling `req`. Work whose order matters (appends) happens now,
/// before this returns; the rest happens when the result is polled.
pub fn dispatch(ctx: &Rc<ShardCtx>, req: Request) -> Pending {
    let (key, version, correlation_id) = (req.api_key, req.version, req.header.correlation_id);
    let ctx = ctx.clone();
    let respond = move |body: ResponseKind| frame::encode_response(key, version, correlation_id, &body);
    match req.body {
        RequestKind::Produce(r) => {
            let pending = produce::handle(&ctx, r);
            Box::pin(async move { pending.await.and_then(|r| respond(r.into())) })
        }
        RequestKind::Fetch(r) => Box::pin(async move { respond(fetch::handle(&ctx, r, version).await.into()) }),
        RequestKind::ListOffsets(r) => Box::pin(async move { respond(list_offsets::handle(&ctx, r).await.into()) }),
        RequestKind::Metadata(r) => Box::pin(async move { respond(metadata::handle(&ctx, r, version).await.into()) }),
        RequestKind::ApiVersions(_) => Box::pin(async move { respond(api_versions::response().into()) }),
        RequestKind::CreateTopics(r) => Box::pin(async move { respond(create_topics::handle(&ctx, r).await.into()) }),
        RequestKind::DeleteTopics(r) => Box::pin(async move { respond(delete_topics::handle(&ctx, r).await.into()) }),
        RequestKind::CreatePartitions(r) => {
            Box::pin(async move { respond(create_partitions::handle(&ctx, r).await.into()) })
        }
        RequestKind::DescribeCluster(r) => Box::pin(async move { respond(describe_cluster::handle(&ctx, r).into()) }),
        RequestKind::DescribeConfigs(r) => Box::pin(async move { respond(describe_configs::handle(&ctx, r).into()) }),
        RequestKind::DeleteRecords(r) => Box::pin(async move { respond(delete_records::handle(&ctx, r).await.into()) }),
        RequestKind::InitProducerId(r) => {
            Box::pin(async move { respond(init_producer_id::handle(&ctx, r).await.into()) })
        }
        other => {
            // The version table only admits the APIs above; anything else is a
            // bug in that table, answered by closing the connection.
            tracing::error!(?key, "request decoded for an API without a handler: {:?}", std::mem::discriminant(&other));
            Box::pin(async { None })
        }
    }
}

/// A `StrBytes` from any string.
pub fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}
