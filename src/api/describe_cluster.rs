//! DescribeCluster: every live shard of every registered broker, as a
//! broker; from v2 (KIP-1073), on request, the fenced brokers' shards too,
//! marked fenced.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::str_bytes;
use crate::broker::context::ShardCtx;

/// Answers DescribeCluster.
pub fn handle(ctx: &ShardCtx, req: DescribeClusterRequest) -> DescribeClusterResponse {
    let meta = ctx.setup.snapshot.load();
    let nodes = if req.include_fenced_brokers { meta.registered_nodes() } else { meta.live_nodes() };
    let brokers = nodes
        .into_iter()
        .map(|(n, at)| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(n))
                .with_host(str_bytes(at.broker.host.clone()))
                .with_port(at.port())
                .with_rack(at.broker.rack.clone().map(str_bytes))
                .with_is_fenced(at.broker.fenced)
        })
        .collect();
    // KRaft's DescribeCluster names a broker as the controller (clients
    // cannot reach controllers): this shard.
    DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(meta.cluster_id.clone()))
        .with_controller_id(BrokerId(ctx.setup.node_id))
        .with_brokers(brokers)
}
