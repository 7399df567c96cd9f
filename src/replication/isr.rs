//! The leader's ISR upkeep: a task per shard that, a few times per
//! `replica.lag.time.max.ms`, looks at every partition the shard leads with
//! followers and asks the controller (Kafka's AlterPartition) to drop the
//! followers that have not caught up for that long and to take back those
//! that reached the high watermark. The quorum commits the change only if
//! this leader's epoch is still the partition's; the shard then gets the
//! new ISR like any other metadata, and the high watermark's bound follows.

use std::rc::Rc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::broker::context::ShardCtx;
use crate::metadata::TopicMeta;

use super::PartitionKey;

/// Fastest and slowest pace of the checks.
const MIN_TICK: Duration = Duration::from_millis(20);
const MAX_TICK: Duration = Duration::from_millis(250);

/// How long a refused hand-over waits before it is asked again.
const RESIGN_RETRY: Duration = Duration::from_secs(5);

/// Runs the checks until the process ends.
pub async fn run(ctx: Rc<ShardCtx>) {
    loop {
        let lag = ctx.setup.settings.load().replica_lag_time_max();
        glommio::timer::sleep((lag / 4).clamp(MIN_TICK, MAX_TICK)).await;
        check(&ctx, lag);
    }
}

/// One pass over the partitions this shard leads.
fn check(ctx: &Rc<ShardCtx>, lag: Duration) {
    let meta = ctx.setup.snapshot.load_full();
    let me = ctx.setup.node_id;
    for key in ctx.replication.led() {
        // The shard takes a partition's lead before the metadata that
        // gives it is published to it, and gives it up (or drops the
        // topic) when told: a partition the metadata does not show it
        // leading is left alone here.
        let Some(topic) = meta.topic_by_id(&key.0) else { continue };
        let p = key.1 as usize;
        if topic.leaders.get(p) != Some(&me) {
            continue;
        }
        let Some(log) = ctx.partition(topic, key.1) else { continue };
        let isr = &topic.isr[p];
        if log.write_failing() && isr.len() > 1 {
            resign(ctx, topic, key);
            continue;
        }
        let epoch = topic.epochs[p];
        // Where this leader's epoch began: a follower must hold at least
        // that much of its log to be in sync with it.
        let epoch_start = log.end_offset_for_epoch(epoch - 1).1.max(0);
        let hw = log.high_watermark();
        let now = Instant::now();
        let Some((out, back)) = ctx.replication.with_progress(key, |pr| {
            if pr.epoch != epoch {
                return (Vec::new(), Vec::new());
            }
            (pr.out_of_sync(isr, now, lag), pr.caught_up(isr, hw, epoch_start, now, lag))
        }) else {
            continue;
        };
        if out.is_empty() && back.is_empty() {
            continue;
        }
        let mut next: Vec<i32> = isr.iter().copied().filter(|n| !out.contains(n)).collect();
        next.extend(back.iter().copied());
        alter(ctx, topic, key, next, (out, back));
    }
}

/// Asks the controller for partition `key`'s ISR to become `isr`, unless
/// a change of it is already on its way.
fn alter(ctx: &Rc<ShardCtx>, topic: &TopicMeta, key: PartitionKey, isr: Vec<i32>, why: (Vec<i32>, Vec<i32>)) {
    if !ctx.replication.altering.borrow_mut().insert(key) {
        return;
    }
    let p = key.1 as usize;
    let (name, epoch, base) = (topic.name.clone(), topic.epochs[p], topic.isr[p].clone());
    info!(topic = %name, partition = key.1, out = ?why.0, back = ?why.1, ?isr, "asking for an ISR change");
    // From now on those coming back bound the high watermark: they hold
    // everything acknowledged once they are in.
    ctx.replication.set_joining(key, why.1);
    let ctx = ctx.clone();
    let me = ctx.setup.node_id;
    glommio::spawn_local(async move {
        let result = ctx.setup.controller.alter_partition(name.clone(), key, me, epoch, base, isr).await;
        ctx.replication.altering.borrow_mut().remove(&key);
        ctx.replication.set_joining(key, Vec::new());
        if let Err(e) = result {
            warn!(topic = %name, partition = key.1, "ISR change refused: {}", e.message);
        }
    })
    .detach();
}

/// Asks the controller to give partition `key`, whose log this leader
/// cannot write (a full or failing disk), to another member of its ISR,
/// unless a change of it is already on its way. Its producers then go to
/// the new leader; this copy follows, and rejoins the ISR once it can
/// write again.
fn resign(ctx: &Rc<ShardCtx>, topic: &TopicMeta, key: PartitionKey) {
    if !ctx.replication.altering.borrow_mut().insert(key) {
        return;
    }
    let (name, epoch) = (topic.name.clone(), topic.epochs[key.1 as usize]);
    let ctx = ctx.clone();
    let me = ctx.setup.node_id;
    glommio::spawn_local(async move {
        let result = ctx.setup.controller.resign(name.clone(), key, me, epoch).await;
        if let Err(e) = result {
            warn!(topic = %name, partition = key.1, "handing over a partition whose log cannot be written was refused: {}", e.message);
            // Not asked again at every check: no one may be able to take it.
            glommio::timer::sleep(RESIGN_RETRY).await;
        }
        ctx.replication.altering.borrow_mut().remove(&key);
    })
    .detach();
}
