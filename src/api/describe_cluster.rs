//! DescribeCluster: every live shard of every registered broker, as a
//! broker.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::str_bytes;
use crate::broker::context::ShardCtx;

/// Answers DescribeCluster.
pub fn handle(ctx: &ShardCtx, _req: DescribeClusterRequest) -> DescribeClusterResponse {
    let meta = ctx.setup.snapshot.load();
    let brokers = meta
        .live_nodes()
        .into_iter()
        .map(|(n, at)| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(n))
                .with_host(str_bytes(at.broker.host.clone()))
                .with_port(at.port())
                .with_rack(at.broker.rack.clone().map(str_bytes))
        })
        .collect();
    // KRaft's DescribeCluster names a broker as the controller (clients
    // cannot reach controllers): this shard.
    DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(meta.cluster_id.clone()))
        .with_controller_id(BrokerId(ctx.setup.node_id))
        .with_brokers(brokers)
}
