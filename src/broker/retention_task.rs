//! The shard's background cleanup pass: every
//! `log.retention.check.interval.ms`, each owned partition of a `delete`
//! topic drops the oldest segments its `retention.ms` / `retention.bytes` no
//! longer keep, each partition of a `compact` topic is compacted, and
//! idempotent producers silent for `producer.id.expiration.ms` are forgotten.
//! It runs in its own low-priority task queue, so request handling comes
//! first.

use std::rc::Rc;
use std::time::Duration;

use tracing::error;

use crate::broker::context::ShardCtx;
use crate::clock::now_ms;

/// Runs retention passes forever.
pub async fn run(ctx: Rc<ShardCtx>) {
    let interval = Duration::from_millis(ctx.cfg.settings.retention_check_interval_ms().max(10));
    let producer_expiry = ctx.cfg.settings.broker_int("producer.id.expiration.ms");
    loop {
        glommio::timer::sleep(interval).await;
        let meta = ctx.cfg.snapshot.load_full();
        for topic in meta.topics.values() {
            let policy = ctx.cfg.settings.topic_text(&topic.configs, "cleanup.policy");
            let (delete, compact) = (policy.contains("delete"), policy.contains("compact"));
            let retention_ms = ctx.cfg.settings.topic_value(&topic.configs, "retention.ms");
            let retention_bytes = ctx.cfg.settings.topic_value(&topic.configs, "retention.bytes");
            let tombstones_until = now_ms() - ctx.cfg.settings.topic_value(&topic.configs, "delete.retention.ms");
            for p in 0..topic.leaders.len() as i32 {
                let Some(log) = ctx.partition(topic, p) else {
                    continue;
                };
                log.expire_producers(now_ms(), producer_expiry);
                if compact && let Err(e) = log.compact(tombstones_until).await {
                    error!(topic = %topic.name, partition = p, "compaction failed: {e}");
                }
                if delete
                    && (retention_ms >= 0 || retention_bytes >= 0)
                    && let Err(e) = log.enforce_retention(now_ms(), retention_ms, retention_bytes).await
                {
                    error!(topic = %topic.name, partition = p, "retention pass failed: {e}");
                }
            }
        }
    }
}
