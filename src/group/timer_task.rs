//! The coordinator's clock, one task per shard: session expiry and
//! rebalance deadlines every 100 ms, offsets retention every
//! `offsets.retention.check.interval.ms`.

use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::broker::context::ShardCtx;

/// How often sessions and rebalance deadlines are checked.
const TICK: Duration = Duration::from_millis(100);

/// Runs until the process ends.
pub async fn run(ctx: Rc<ShardCtx>) {
    let check =
        Duration::from_millis(ctx.setup.settings.load().typed().offsets_retention_check_interval_ms.max(1) as u64);
    let mut next_retention = Instant::now() + check;
    loop {
        glommio::timer::sleep(TICK).await;
        let now = Instant::now();
        let expire = now >= next_retention;
        if expire {
            next_retention = now + check;
        }
        ctx.groups.tick(&ctx, expire);
    }
}
