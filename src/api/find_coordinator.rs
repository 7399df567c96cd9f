//! FindCoordinator: the node of the shard owning a group's
//! `__consumer_offsets` partition (created on first use, as Kafka does).

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::str_bytes;
use crate::broker::context::ShardCtx;
use crate::group::OFFSETS_TOPIC;
use crate::group::coordinator::partition_for;
use crate::metadata::controller::NewTopic;
use crate::protocol::ErrorCode;

/// Key type of a consumer group (1 is a transactional id).
const GROUP_KEY: i8 = 0;

/// Creates `__consumer_offsets` if it does not exist yet.
async fn ensure_offsets_topic(ctx: &ShardCtx) {
    if ctx.setup.snapshot.load().topic(OFFSETS_TOPIC).is_some() {
        return;
    }
    let s = ctx.setup.settings.load();
    let configs = [
        ("cleanup.policy".to_string(), "compact".to_string()),
        ("segment.bytes".to_string(), s.typed().offsets_topic_segment_bytes.to_string()),
    ]
    .into_iter()
    .collect();
    let topic = NewTopic {
        name: OFFSETS_TOPIC.to_string(),
        partitions: s.typed().offsets_topic_num_partitions.clamp(1, 10_000) as i32,
        // Kafka's default is 3; a smaller cluster (a developer's broker)
        // gets what it can place.
        replication_factor: s
            .typed()
            .offsets_topic_replication_factor
            .clamp(1, ctx.setup.snapshot.load().live_nodes().len().max(1) as i64) as i16,
        assignment: None,
        configs,
    };
    // A concurrent creator wins with TOPIC_ALREADY_EXISTS: fine either way.
    if let Some(Err(e)) = ctx.setup.controller.create_topics(vec![topic], false).await.into_iter().next() {
        tracing::debug!("creating {OFFSETS_TOPIC}: {e:?}");
    }
}

fn locate(ctx: &ShardCtx, key: &str, key_type: i8) -> Coordinator {
    let base = Coordinator::default().with_key(StrBytes::from_string(key.to_string())).with_node_id(BrokerId(-1));
    let fail =
        |code: ErrorCode, msg: &str| base.clone().with_error_code(code.code()).with_error_message(Some(str_bytes(msg)));
    if key_type != GROUP_KEY {
        return fail(ErrorCode::CoordinatorNotAvailable, "transactions are not supported");
    }
    if key.is_empty() {
        return fail(ErrorCode::InvalidRequest, "the group id is empty");
    }
    let meta = ctx.setup.snapshot.load();
    let Some(topic) = meta.topic(OFFSETS_TOPIC).filter(|t| !t.leaders.is_empty()) else {
        return fail(ErrorCode::CoordinatorNotAvailable, "__consumer_offsets is not available");
    };
    let node = topic.leaders[partition_for(key, topic.leaders.len()) as usize];
    let Some(at) = meta.node(node) else {
        return fail(ErrorCode::CoordinatorNotAvailable, "the group's coordinator is not running");
    };
    base.with_node_id(BrokerId(node)).with_host(str_bytes(at.broker.host.clone())).with_port(at.port())
}

/// Answers FindCoordinator (one key before v4, a list from v4).
pub async fn handle(ctx: &ShardCtx, req: FindCoordinatorRequest, version: i16) -> FindCoordinatorResponse {
    ensure_offsets_topic(ctx).await;
    if version >= 4 {
        let coordinators = req.coordinator_keys.iter().map(|k| locate(ctx, k, req.key_type)).collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let c = locate(ctx, &req.key, req.key_type);
    FindCoordinatorResponse::default()
        .with_error_code(c.error_code)
        .with_error_message(c.error_message)
        .with_node_id(c.node_id)
        .with_host(c.host)
        .with_port(c.port)
}
