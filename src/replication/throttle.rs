//! Replication throttles (Kafka's `leader.replication.throttled.rate` and
//! `follower.replication.throttled.rate`, with the topic lists
//! `leader.replication.throttled.replicas` and
//! `follower.replication.throttled.replicas`): so that a reassignment's
//! new copies do not take all of a disk or link from producers.
//!
//! As in Kafka, only replicas out of the ISR are throttled (an in-sync
//! follower must keep up, or acks=all would stall), and only those a topic
//! lists: `partition:node` pairs, or `*` for all (a list set on a broker,
//! or cluster-wide, is the default of topics that set none). A leader whose quota is
//! spent answers a throttled replica's fetch of that partition with no
//! records; a follower whose quota is spent leaves its throttled partitions
//! out of its next fetch, and rotates the order of its partitions so that
//! none is always last. Each shard has its own token bucket (thread-per-core:
//! no shared counter) holding at most one second of its rate: a rate set
//! for the node, or a cluster-wide one split evenly between the broker's
//! shards.

use std::time::Instant;

use crate::config::BrokerSettings;
use crate::metadata::TopicMeta;

/// The broker key of the leader's rate.
pub const LEADER_RATE: &str = "leader.replication.throttled.rate";
/// The broker key of the follower's rate.
pub const FOLLOWER_RATE: &str = "follower.replication.throttled.rate";
/// The topic key listing the replicas a leader throttles.
pub const LEADER_REPLICAS: &str = "leader.replication.throttled.replicas";
/// The topic key listing the replicas a follower throttles.
pub const FOLLOWER_REPLICAS: &str = "follower.replication.throttled.replicas";

/// Whether `list` (a topic's throttled replicas: `*`, or `partition:node`
/// pairs separated by commas) names node `node`'s copy of partition `p`.
pub fn listed(list: &str, p: i32, node: i32) -> bool {
    list.split(',').map(str::trim).any(|item| {
        item == "*"
            || item.split_once(':').is_some_and(|(a, b)| a.trim().parse() == Ok(p) && b.trim().parse() == Ok(node))
    })
}

/// Whether `value` is a valid throttled replicas list: empty, `*`, or
/// `partition:node` pairs of non-negative integers.
pub fn valid_list(value: &str) -> bool {
    let value = value.trim();
    value.is_empty()
        || value == "*"
        || value.split(',').all(|item| {
            item.split_once(':')
                .is_some_and(|(a, b)| a.trim().parse::<u32>().is_ok() && b.trim().parse::<u32>().is_ok())
        })
}

/// The list under `key` that topics setting none follow: the broker's
/// (set on a broker, it throttles that broker's copies of every such
/// topic; Kafka has the key on topics only). Read once per fetch.
pub fn default_list<'a>(settings: &'a BrokerSettings, key: &str) -> &'a str {
    settings.get(key)
}

/// Whether a fetch of partition `p` of `t` is throttled by the list under
/// `key` (the topic's, else `default`, from [`default_list`]): it names
/// `node` (the leader for the leader's list, the follower for the
/// follower's, as in Kafka) and `replica`, the follower, is out of the ISR.
pub fn applies(default: &str, t: &TopicMeta, key: &str, p: i32, node: i32, replica: i32) -> bool {
    let list = t.configs.get(key).map_or(default, String::as_str);
    let listed = !list.is_empty() && listed(list, p, node);
    let in_sync = usize::try_from(p).ok().and_then(|i| t.isr.get(i)).is_some_and(|isr| isr.contains(&replica));
    listed && !in_sync
}

/// One shard's share of the broker's `rate` bytes/s over `shards` shards.
pub fn share(rate: i64, shards: usize) -> i64 {
    if rate == i64::MAX { rate } else { (rate / shards.max(1) as i64).max(1) }
}

/// One shard's share of a throttled rate: a token bucket of bytes.
#[derive(Debug)]
pub struct Quota {
    /// Bytes that may go now (negative once a fetch overdrew it).
    tokens: f64,
    /// When `tokens` was last brought up to date.
    at: Instant,
}

impl Default for Quota {
    fn default() -> Self {
        Self { tokens: 0.0, at: Instant::now() }
    }
}

impl Quota {
    /// Adds what `rate` bytes/s earned since the last call, up to one
    /// second's worth.
    fn refill(&mut self, rate: f64, now: Instant) {
        let earned = now.saturating_duration_since(self.at).as_secs_f64() * rate;
        self.tokens = (self.tokens + earned).min(rate);
        self.at = now;
    }

    /// Whether the quota at `rate` bytes/s is spent now. A rate of
    /// `i64::MAX` (the default) never is.
    pub fn exceeded(&mut self, rate: i64, now: Instant) -> bool {
        if rate == i64::MAX {
            return false;
        }
        self.refill(rate as f64, now);
        self.tokens <= 0.0
    }

    /// Counts `bytes` sent or taken at `rate` bytes/s.
    pub fn record(&mut self, bytes: usize, rate: i64, now: Instant) {
        if rate == i64::MAX {
            return;
        }
        self.refill(rate as f64, now);
        self.tokens -= bytes as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn lists_name_partitions_on_nodes_or_everything() {
        assert!(listed("*", 3, 7));
        assert!(listed("0:1, 3:7", 3, 7));
        assert!(!listed("0:1,3:8", 3, 7));
        assert!(!listed("", 0, 0));
        for ok in ["", "*", "0:1", "0:1,2:3", " 1 : 2 "] {
            assert!(valid_list(ok), "{ok:?}");
        }
        for bad in ["x", "0", "0:", ":1", "0:1,", "-1:2", "*,0:1"] {
            assert!(!valid_list(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_quota_is_spent_by_what_went_and_earned_back_at_its_rate() {
        let t0 = Instant::now();
        let mut q = Quota { tokens: 0.0, at: t0 };
        assert!(!q.exceeded(i64::MAX, t0), "unthrottled");
        assert!(q.exceeded(1000, t0), "nothing earned yet");
        let half = t0 + Duration::from_millis(500);
        assert!(!q.exceeded(1000, half), "500 bytes earned");
        q.record(2000, 1000, half);
        assert!(q.exceeded(1000, t0 + Duration::from_millis(1900)), "1500 overdrawn, 1400 earned back");
        assert!(!q.exceeded(1000, t0 + Duration::from_millis(2100)));
        // Idle time earns at most one second of the rate.
        assert!(!q.exceeded(1000, t0 + Duration::from_secs(60)));
        q.record(1001, 1000, t0 + Duration::from_secs(60));
        assert!(q.exceeded(1000, t0 + Duration::from_secs(60)));
    }
}
