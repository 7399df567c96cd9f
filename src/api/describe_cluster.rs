//! DescribeCluster: every shard as a broker.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::str_bytes;
use crate::broker::context::ShardCtx;

/// Answers DescribeCluster.
pub fn handle(ctx: &ShardCtx, _req: DescribeClusterRequest) -> DescribeClusterResponse {
    let meta = ctx.setup.snapshot.load();
    let rack = ctx.setup.settings.load().rack().map(|r| str_bytes(r.to_string()));
    let brokers = (0..meta.nodes)
        .map(|n| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(n))
                .with_host(str_bytes(ctx.setup.endpoints.advertised_host.clone()))
                .with_port(ctx.setup.endpoints.port(n))
                .with_rack(rack.clone())
        })
        .collect();
    DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(meta.cluster_id.clone()))
        .with_controller_id(BrokerId(0))
        .with_brokers(brokers)
}
