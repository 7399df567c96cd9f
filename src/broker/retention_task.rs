//! The shard's background cleanup pass: every
//! `log.retention.check.interval.ms`, each owned partition of a `delete`
//! topic drops the oldest segments its `retention.ms` / `retention.bytes` no
//! longer keep, each partition of a `compact` topic is compacted, and
//! idempotent producers silent for `producer.id.expiration.ms` are forgotten.
//! Retention also runs whenever a partition rolls a segment, and whenever
//! its `retention.bytes` stops keeping its oldest segment: a segment it
//! deletes then is kept as the spare the next roll writes into
//! (`storage::recycle`), instead of waiting for the next check, which by
//! Kafka's default comes every five minutes. It runs in its own
//! low-priority task queue, so request handling comes first.

use std::rc::Rc;
use std::time::{Duration, Instant};

use tracing::error;

use crate::broker::context::ShardCtx;
use crate::clock::now_ms;

/// Runs cleanup passes forever.
pub async fn run(ctx: Rc<ShardCtx>) {
    let interval = Duration::from_millis(ctx.setup.settings.load().retention_check_interval_ms().max(10));
    let mut next_full = Instant::now() + interval;
    let mut due = ctx.retention_due.notified();
    loop {
        let wait = next_full.saturating_duration_since(Instant::now());
        let full = futures_lite::future::or(
            async {
                glommio::timer::sleep(wait).await;
                true
            },
            async move {
                due.await;
                false
            },
        )
        .await;
        // Signals during the pass below wake the next wait.
        due = ctx.retention_due.notified();
        if full {
            next_full = Instant::now() + interval;
        }
        pass(&ctx, full).await;
    }
}

/// One pass over the shard's partitions: retention always; compaction and
/// producer expiry only on the `full` (timed) pass.
async fn pass(ctx: &ShardCtx, full: bool) {
    let meta = ctx.setup.snapshot.load_full();
    let settings = ctx.setup.settings.load_full();
    let producer_expiry = settings.typed().producer_id_expiration_ms;
    for topic in meta.topics.values() {
        let t = settings.topic(&topic.overrides);
        let (delete, compact) = (t.cleanup.delete, t.cleanup.compact);
        let (retention_ms, retention_bytes) = (t.retention_ms, t.retention_bytes);
        let tombstones_until = now_ms().saturating_sub(t.delete_retention_ms);
        for p in 0..topic.leaders.len() as i32 {
            let Some(log) = ctx.partition(topic, p) else {
                continue;
            };
            if full {
                log.expire_producers(now_ms(), producer_expiry);
                if compact && let Err(e) = log.compact(tombstones_until).await {
                    error!(topic = %topic.name, partition = p, "compaction failed: {e}");
                }
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
