//! What a leader knows of its followers, for one partition: how far each
//! has copied the log (its log end, the offset it fetches from, and its
//! durable end, which may trail it while a sync is in flight) and when it
//! last caught up. From that come the high watermark's bound (the lowest
//! durable end in the ISR) and the ISR changes the leader asks the quorum
//! for: a follower whose log end has not caught up for
//! `replica.lag.time.max.ms` leaves, one whose durable end reached the high
//! watermark (and the leader's epoch) rejoins. Kafka's
//! `Partition.maybeShrinkIsr` / `maybeExpandIsr`, as pure logic, with the
//! durable end added.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One follower, as its fetches showed it.
#[derive(Debug, Clone)]
struct Follower {
    /// Where its last fetch left it: the offset it fetched from (its log
    /// end) and its durable end (the same for a follower that does not
    /// say). `None` until it fetches from this leader.
    end: Option<Ends>,
    /// When it last held everything the leader had (as of its previous
    /// fetch, as Kafka reckons it).
    caught_up_at: Instant,
    /// When it last fetched, and the leader's durable end then.
    last_fetch: Option<(Instant, i64)>,
}

/// A follower's two ends, as its fetch reported them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ends {
    /// The offset it fetches from: its log end. What its lag is judged by,
    /// as in Kafka.
    pub log: i64,
    /// What it holds fdatasynced, at most `log`: what an acknowledgement
    /// may count on, so what bounds the high watermark and lets it into the
    /// ISR.
    pub durable: i64,
}

impl Ends {
    /// The ends of a follower that fetches from `log` and has `durable` on
    /// disk; a durable end past the log end is taken as the log end.
    pub fn new(log: i64, durable: i64) -> Self {
        Self { log, durable: durable.min(log) }
    }
}

/// A leader's view of one partition's followers, for one leader epoch.
#[derive(Debug, Clone)]
pub struct Progress {
    /// The leader epoch this view belongs to: a new one starts afresh.
    pub epoch: i32,
    followers: BTreeMap<i32, Follower>,
    /// The ISR as this shard was last told it (with its role, before the
    /// shard's metadata snapshot shows it), plus the followers an ISR
    /// change under way adds: Kafka's "maximal ISR". The high watermark is
    /// bounded by all of them, so that a follower joining the ISR already
    /// holds everything acknowledged while its join was being committed.
    isr: Vec<i32>,
    joining: Vec<i32>,
}

impl Progress {
    /// A leader's view at the start of `epoch`: every follower is unknown
    /// and counts as caught up now, so none is dropped before it had
    /// `replica.lag.time.max.ms` to fetch (as Kafka resets them).
    pub fn new(epoch: i32, leader: i32, replicas: &[i32], now: Instant) -> Self {
        let followers = replicas
            .iter()
            .filter(|&&n| n != leader)
            .map(|&n| (n, Follower { end: None, caught_up_at: now, last_fetch: None }))
            .collect();
        Self { epoch, followers, isr: replicas.to_vec(), joining: Vec::new() }
    }

    /// The committed ISR, as the shard was told it with its role. What is
    /// known of the followers outside it (and not joining) is forgotten,
    /// to be learnt again from their next fetch: one may have been removed
    /// and added again meanwhile (a reassignment cancelled and restarted)
    /// and now hold an empty copy, which an old end would take for caught
    /// up and bring into the ISR.
    pub fn set_isr(&mut self, isr: &[i32]) {
        self.isr = isr.to_vec();
        self.joining.retain(|n| !isr.contains(n));
        for (n, f) in &mut self.followers {
            if !isr.contains(n) && !self.joining.contains(n) {
                f.end = None;
                f.last_fetch = None;
            }
        }
    }

    /// An ISR change adding `joining` is on its way to the quorum (empty:
    /// it was answered).
    pub fn set_joining(&mut self, joining: Vec<i32>) {
        self.joining = joining;
    }

    /// The members that bound the high watermark: the committed ISR and
    /// those joining it.
    pub fn maximal_isr(&self) -> Vec<i32> {
        let mut all = self.isr.clone();
        all.extend(self.joining.iter().copied().filter(|n| !self.isr.contains(n)));
        all
    }

    /// Follows a change of the partition's replicas within the epoch (a
    /// reassignment): new followers start unknown, as at a new epoch, and
    /// departed ones are forgotten.
    pub fn set_replicas(&mut self, leader: i32, replicas: &[i32], now: Instant) {
        self.followers.retain(|n, _| replicas.contains(n));
        for &n in replicas.iter().filter(|&&n| n != leader) {
            self.followers.entry(n).or_insert(Follower { end: None, caught_up_at: now, last_fetch: None });
        }
    }

    /// Whether `replica` is one of the followers.
    pub fn knows(&self, replica: i32) -> bool {
        self.followers.contains_key(&replica)
    }

    /// Records a fetch by `replica` that left it at `ends` while the
    /// leader's durable end is `leader_end`. It is caught up if its log has
    /// everything the leader had now, or had at its previous fetch.
    pub fn on_fetch(&mut self, replica: i32, ends: Ends, leader_end: i64, now: Instant) {
        debug_assert!(ends.durable <= ends.log, "a follower's durable end is within its log");
        let Some(f) = self.followers.get_mut(&replica) else { return };
        if ends.log >= leader_end {
            f.caught_up_at = now;
        } else if let Some((then, end_then)) = f.last_fetch
            && ends.log >= end_then
        {
            f.caught_up_at = f.caught_up_at.max(then);
        }
        f.end = Some(ends);
        f.last_fetch = Some((now, leader_end));
    }

    /// The furthest the high watermark may go: the lowest durable end among
    /// the followers in `isr` (`i64::MIN` while one of them has not fetched
    /// yet, `i64::MAX` when the leader is alone in sync).
    pub fn bound(&self, isr: &[i32]) -> i64 {
        isr.iter()
            .filter_map(|n| self.followers.get(n))
            .map(|f| f.end.map_or(i64::MIN, |e| e.durable))
            .min()
            .unwrap_or(i64::MAX)
    }

    /// The followers in `isr` that have not caught up for `max_lag`.
    pub fn out_of_sync(&self, isr: &[i32], now: Instant, max_lag: Duration) -> Vec<i32> {
        isr.iter()
            .copied()
            .filter(|n| self.followers.get(n).is_some_and(|f| now.saturating_duration_since(f.caught_up_at) > max_lag))
            .collect()
    }

    /// The followers not in `isr` whose durable end reached both the high
    /// watermark `hw` and `epoch_start`, where the leader's epoch began (so
    /// they hold nothing of an older leader's that this one lacks), and
    /// that caught up within `max_lag` (a follower that stopped fetching
    /// where the high watermark still is has not caught up: it is gone).
    pub fn caught_up(&self, isr: &[i32], hw: i64, epoch_start: i64, now: Instant, max_lag: Duration) -> Vec<i32> {
        let recent = |f: &Follower| now.saturating_duration_since(f.caught_up_at) <= max_lag;
        self.followers
            .iter()
            .filter(|(n, f)| {
                !isr.contains(n) && recent(f) && f.end.is_some_and(|e| e.durable >= hw && e.durable >= epoch_start)
            })
            .map(|(n, _)| *n)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAG: Duration = Duration::from_secs(10);

    /// A follower that holds all it fetched on disk.
    fn at_end(offset: i64) -> Ends {
        Ends::new(offset, offset)
    }

    #[test]
    fn the_bound_is_the_slowest_in_sync_follower() {
        let t0 = Instant::now();
        let mut p = Progress::new(3, 1, &[1, 2, 3], t0);
        assert_eq!(p.bound(&[1, 2, 3]), i64::MIN, "followers not heard from hold it");
        assert_eq!(p.bound(&[1]), i64::MAX, "alone in sync: only the leader's durable end");
        p.on_fetch(2, at_end(40), 50, t0);
        p.on_fetch(3, at_end(30), 50, t0);
        assert_eq!(p.bound(&[1, 2, 3]), 30);
        assert_eq!(p.bound(&[1, 2]), 40, "an out-of-sync follower does not hold it");
        p.on_fetch(9, at_end(0), 50, t0);
        assert!(!p.knows(9), "not a replica: ignored");
    }

    #[test]
    fn a_follower_joining_the_isr_bounds_the_high_watermark_before_its_join_commits() {
        let t0 = Instant::now();
        let mut p = Progress::new(0, 1, &[1, 2, 3], t0);
        p.set_isr(&[1, 2]);
        p.on_fetch(2, at_end(50), 50, t0);
        p.on_fetch(3, at_end(40), 50, t0);
        assert_eq!(p.bound(&p.maximal_isr()), 50);
        p.set_joining(vec![3]);
        assert_eq!(p.bound(&p.maximal_isr()), 40, "3 holds it back from the moment it is asked in");
        p.set_isr(&[1, 2, 3]);
        p.set_joining(Vec::new());
        assert_eq!(p.maximal_isr(), [1, 2, 3]);
    }

    #[test]
    fn a_follower_that_stops_catching_up_leaves_and_one_that_catches_up_returns() {
        let t0 = Instant::now();
        let mut p = Progress::new(0, 1, &[1, 2, 3], t0);
        let at = |s: i64| t0 + Duration::from_secs(s as u64);
        // 2 keeps up; 3 fetches but is always behind the leader's end.
        for s in 1..=12 {
            p.on_fetch(2, at_end(10 * s), 10 * s, at(s));
            p.on_fetch(3, at_end(5), 10 * s, at(s));
        }
        assert_eq!(p.out_of_sync(&[1, 2, 3], at(12), LAG), [3]);
        assert!(p.out_of_sync(&[1, 2, 3], at(10), LAG).is_empty(), "within the lag");
        // Having reached what the leader had at its previous fetch counts.
        p.on_fetch(3, at_end(120), 130, at(13));
        p.on_fetch(3, at_end(130), 140, at(14));
        assert!(p.out_of_sync(&[1, 2, 3], at(20), LAG).is_empty());
        assert_eq!(p.caught_up(&[1, 2], 130, 0, at(14), LAG), [3]);
        assert!(p.caught_up(&[1, 2], 131, 0, at(14), LAG).is_empty(), "below the high watermark");
        assert!(p.caught_up(&[1, 2], 100, 135, at(14), LAG).is_empty(), "before the leader's epoch began");
        assert!(p.caught_up(&[1, 2, 3], 0, 0, at(14), LAG).is_empty(), "already in sync");
        assert!(p.caught_up(&[1, 2], 130, 0, at(30), LAG).is_empty(), "silent since: gone, not caught up");
    }

    #[test]
    fn what_is_known_of_a_follower_out_of_the_isr_is_learnt_again() {
        let t0 = Instant::now();
        let mut p = Progress::new(0, 1, &[1, 2, 3], t0);
        p.on_fetch(3, at_end(50), 50, t0);
        p.set_isr(&[1, 2]);
        // Node 3 was moved away and back (its copy is empty now): the end
        // it had must not bring it back before it fetches again.
        p.set_replicas(1, &[1, 2, 3], t0);
        assert!(p.caught_up(&[1, 2], 50, 0, t0, LAG).is_empty());
        p.on_fetch(3, at_end(0), 50, t0);
        assert!(p.caught_up(&[1, 2], 50, 0, t0, LAG).is_empty(), "it holds nothing");
        p.on_fetch(3, at_end(50), 50, t0);
        assert_eq!(p.caught_up(&[1, 2], 50, 0, t0, LAG), [3]);
    }

    #[test]
    fn a_pipelining_follower_counts_its_durable_end_for_acknowledgements_and_its_log_end_for_lag() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut p = Progress::new(0, 1, &[1, 2, 3], t0);
        p.set_isr(&[1, 2]);
        // 2 fetched everything into its log, but only 60 of it is on disk.
        p.on_fetch(2, Ends::new(100, 60), 100, t0);
        assert_eq!(p.bound(&[1, 2]), 60, "what is not on disk is not acknowledged");
        // It keeps fetching at the leader's end, its sync a round behind:
        // never out of sync for that.
        for s in 1..=20 {
            p.on_fetch(2, Ends::new(100 + 10 * s as i64, 90 + 10 * s as i64), 100 + 10 * s as i64, at(s));
        }
        assert!(p.out_of_sync(&[1, 2], at(20), LAG).is_empty());
        // 3 has the high watermark in its log but not yet on disk: not back
        // in the ISR until it has.
        p.on_fetch(3, Ends::new(300, 250), 300, at(20));
        assert!(p.caught_up(&[1, 2], 290, 0, at(20), LAG).is_empty());
        p.on_fetch(3, Ends::new(300, 300), 300, at(20));
        assert_eq!(p.caught_up(&[1, 2], 290, 0, at(20), LAG), [3]);
        assert_eq!(Ends::new(5, 9), Ends::new(5, 5), "a durable end past the log end is the log end");
    }
}
