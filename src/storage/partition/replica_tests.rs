//! In-process tests of what replication needs from the log: a high
//! watermark held apart from the durable end, leader epochs (stamped,
//! followed, persisted, rebuilt) and truncation with idempotent producers.

use std::rc::Rc;

use super::tests::{open, raw_batches, run, temp_dir};
use super::{Appended, PartitionLog, ReadError, StorageError};
use crate::protocol::batch::{self, testing::make_batch};
use crate::storage::epoch_cache::{self, EpochEntry};

/// Appends `n` one-record-per-offset batches of `records` records; returns
/// each batch's base offset.
async fn append_batches(log: &Rc<PartitionLog>, n: usize, records: i32) -> Vec<i64> {
    let mut bases = Vec::new();
    for _ in 0..n {
        let b = make_batch(records, 1_000);
        let headers = batch::validate_all(&b).unwrap();
        let Appended::New { base, end } = log.append(&b, &headers).unwrap() else { panic!("not a duplicate") };
        log.durable(end).await.unwrap();
        bases.push(base);
    }
    bases
}

/// Base offsets of what `read` returns from `offset`.
fn bases_of(bytes: &[u8]) -> Vec<i64> {
    batch::validate_all(bytes).unwrap().iter().map(|h| h.base_offset).collect()
}

fn entries(pairs: &[(i32, i64)]) -> Vec<EpochEntry> {
    pairs.iter().map(|&(epoch, start_offset)| EpochEntry { epoch, start_offset }).collect()
}

#[test]
fn consumers_stop_at_a_held_high_watermark_replicas_at_the_durable_end() {
    let dir = temp_dir("partition-hw");
    let d = dir.join("log");
    run(&dir, async move {
        let log = open(&d, false).await;
        let bases = append_batches(&log, 4, 5).await;
        assert_eq!((log.high_watermark(), log.durable_end(), log.log_end()), (20, 20, 20), "one replica: all equal");
        log.hold_high_watermark(7);
        assert_eq!(log.high_watermark(), 7);
        // From the cache, then (evicted) from the segment: the batch holding
        // offset 5 is below the high watermark, the next is not.
        for evicted in [false, true] {
            if evicted {
                bases.iter().for_each(|b| log.evict_cached(*b));
            }
            let read = log.read(0, 1 << 20, true).await.unwrap();
            assert_eq!(read.high_watermark, 7);
            assert_eq!(bases_of(&read.into_bytes()), [0, 5], "evicted: {evicted}");
            let replica = log.read_as_replica(0, 1 << 20, true).await.unwrap().into_bytes();
            assert_eq!(bases_of(&replica), bases, "evicted: {evicted}");
        }
        // Past the high watermark but inside the log: nothing, not an error.
        assert!(log.read(12, 1 << 20, true).await.unwrap().pieces.is_empty());
        assert!(matches!(log.read(21, 1 << 20, true).await, Err(ReadError::OutOfRange { .. })));
        assert_eq!(log.bound_high_watermark(15), 15);
        assert_eq!(log.bound_high_watermark(9), 15, "never back");
        assert_eq!(log.bound_high_watermark(99), 20, "never past the durable end");
        // With the bound ahead, it follows the durable end as appends land.
        append_batches(&log, 1, 5).await;
        assert_eq!(log.high_watermark(), 25);
        // DeleteRecords may go up to the high watermark only.
        log.hold_high_watermark(10);
        assert!(log.delete_records(12).await.is_err());
        assert_eq!(log.delete_records(10).await.unwrap(), 10);
        log.shutdown().await.unwrap();
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

/// acks=all waiters are answered in order as the bound lets the high
/// watermark pass their ends, and fail when the log closes.
#[test]
fn committed_waits_for_the_high_watermark() {
    let dir = temp_dir("partition-committed");
    let d = dir.join("log");
    run(&dir, async move {
        let log = open(&d, false).await;
        log.hold_high_watermark(0);
        append_batches(&log, 3, 5).await;
        assert_eq!(log.high_watermark(), 0, "held: no bound yet");
        let done = Rc::new(std::cell::RefCell::new(Vec::new()));
        for end in [15, 5, 10] {
            let (wait, done) = (log.committed(end), done.clone());
            glommio::spawn_local(async move {
                if wait.await.is_ok() {
                    done.borrow_mut().push(end);
                }
            })
            .detach();
        }
        glommio::yield_if_needed().await;
        glommio::executor().yield_task_queue_now().await;
        assert!(done.borrow().is_empty());
        log.bound_high_watermark(10);
        glommio::executor().yield_task_queue_now().await;
        assert_eq!(*done.borrow(), [5, 10]);
        // A leader turned follower: its waiters learn it at once, and
        // producers' appends are refused until it leads again.
        let moved = log.committed(15);
        log.become_follower();
        assert!(matches!(moved.await, Err(StorageError::LeaderMoved)));
        let b = make_batch(1, 1_000);
        let headers = batch::validate_all(&b).unwrap();
        assert!(matches!(log.append(&b, &headers), Err(StorageError::LeaderMoved)));
        log.become_leader(1).await.unwrap();
        assert!(log.append(&b, &headers).is_ok());
        let last = log.committed(15);
        log.close().await;
        assert!(matches!(last.await, Err(StorageError::Closed)));
        assert!(log.committed(5).await.is_ok(), "already reached");
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn leader_epochs_are_stamped_persisted_and_rebuilt() {
    let dir = temp_dir("partition-epochs");
    let (d, f) = (dir.join("leader"), dir.join("follower"));
    run(&dir, async move {
        let log = open(&d, false).await;
        append_batches(&log, 2, 5).await;
        assert_eq!(log.epoch_entries(), entries(&[(0, 0)]), "a new log leads at epoch 0");
        log.become_leader(3).await.unwrap();
        append_batches(&log, 2, 5).await;
        assert_eq!(log.epoch_entries(), entries(&[(0, 0), (3, 10)]));
        let stamped: Vec<i32> =
            raw_batches(&log, 0).await.iter().map(|b| batch::peek(b).unwrap().leader_epoch).collect();
        assert_eq!(stamped, [0, 0, 3, 3]);
        assert_eq!(log.end_offset_for_epoch(0), (0, 10));
        assert_eq!(log.end_offset_for_epoch(2), (0, 10), "an epoch never seen: the one below it");
        assert_eq!(log.end_offset_for_epoch(3), (3, 20));
        assert_eq!(log.end_offset_for_epoch(4), (-1, -1));
        assert!(matches!(log.become_leader(2).await, Err(StorageError::StaleEpoch { epoch: 2, latest: 3 })));

        // The checkpoint is Kafka's file, and an open reads it back ...
        let text = std::fs::read_to_string(d.join(epoch_cache::FILE_NAME)).unwrap();
        assert_eq!(text, "0\n2\n0 0\n3 10\n");
        log.close().await;
        drop(log);
        let log = open(&d, false).await;
        assert_eq!(log.epoch_entries(), entries(&[(0, 0), (3, 10)]));
        // ... or, without one (a log from before it existed), rebuilds it
        // from the batches' headers.
        log.shutdown().await.unwrap();
        drop(log);
        std::fs::remove_file(d.join(epoch_cache::FILE_NAME)).unwrap();
        let log = open(&d, true).await;
        assert_eq!(log.epoch_entries(), entries(&[(0, 0), (3, 10)]));

        // A follower copying the log learns the same epochs; one going back
        // is refused.
        let follower = open(&f, false).await;
        let copied: Vec<u8> = raw_batches(&log, 0).await.concat();
        let (_, end) = follower.append_as_follower(&copied).unwrap();
        follower.durable(end).await.unwrap();
        assert_eq!(follower.epoch_entries(), log.epoch_entries());
        let mut older = make_batch(2, 5);
        batch::assign_offset(&mut older, end, 1);
        batch::reseal(&mut older);
        assert!(matches!(follower.append_as_follower(&older), Err(StorageError::Invalid(_))));

        // A truncation drops the epochs that began at or after the cut,
        // on disk too.
        assert_eq!(follower.truncate_to(12).await.unwrap(), 10, "the straddled batch goes whole");
        assert_eq!(follower.epoch_entries(), entries(&[(0, 0)]));
        let text = std::fs::read_to_string(f.join(epoch_cache::FILE_NAME)).unwrap();
        assert_eq!(text, "0\n1\n0 0\n");
        follower.shutdown().await.unwrap();
        log.shutdown().await.unwrap();
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An idempotent producer's batch: `records` records from sequence `seq`.
fn idempotent(records: i32, seq: i32) -> Vec<u8> {
    let mut b = make_batch(records, 1_000);
    b[43..51].copy_from_slice(&7i64.to_be_bytes());
    b[51..53].copy_from_slice(&0i16.to_be_bytes());
    b[53..57].copy_from_slice(&seq.to_be_bytes());
    batch::reseal(&mut b);
    b
}

async fn produce(log: &Rc<PartitionLog>, b: &[u8]) -> Appended {
    let headers = batch::validate_all(b).unwrap();
    let appended = log.append(b, &headers).unwrap();
    if let Appended::New { end, .. } = appended {
        log.durable(end).await.unwrap();
    }
    appended
}

#[test]
fn a_truncation_forgets_the_producers_batches_it_cuts() {
    let dir = temp_dir("partition-truncate-producers");
    let d = dir.join("log");
    run(&dir, async move {
        let log = open(&d, false).await;
        let (a, b, c) = (idempotent(5, 0), idempotent(5, 5), idempotent(5, 10));
        for x in [&a, &b, &c] {
            produce(&log, x).await;
        }
        assert_eq!(produce(&log, &b).await, Appended::Duplicate { base: 5, end: 10 });
        assert_eq!(log.truncate_to(5).await.unwrap(), 5);
        assert_eq!((log.high_watermark(), log.log_end()), (5, 5));
        // The first batch is still known; the cut ones come again as new.
        assert_eq!(produce(&log, &a).await, Appended::Duplicate { base: 0, end: 5 });
        assert_eq!(produce(&log, &b).await, Appended::New { base: 5, end: 10 });
        // And so after a crash: the snapshot written at the cut fits.
        log.close().await;
        drop(log);
        let log = open(&d, false).await;
        assert_eq!(produce(&log, &b).await, Appended::Duplicate { base: 5, end: 10 });
        assert_eq!(produce(&log, &c).await, Appended::New { base: 10, end: 15 });
        assert_eq!(log.truncate_to(log.log_end()).await.unwrap(), 15, "at the log end: nothing to do");
        assert!(matches!(log.truncate_to(-1).await, Err(StorageError::Invalid(_))));
        // A truncation refused before it cut anything does not stop appends.
        append_batches(&log, 1, 3).await;
        log.shutdown().await.unwrap();
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn retention_stops_at_a_held_high_watermark() {
    let dir = temp_dir("partition-retention-hw");
    let d = dir.join("log");
    run(&dir, async move {
        let log = open(&d, false).await;
        append_batches(&log, 300, 9).await;
        assert!(log.state.borrow().segments.len() > 3);
        log.hold_high_watermark(20);
        // Size retention would drop every sealed segment; none may go past
        // what consumers can read, and the start stays below the mark.
        log.enforce_retention(0, -1, 1).await.unwrap();
        assert!(log.log_start_offset() <= log.high_watermark(), "{} > 20", log.log_start_offset());
        log.bound_high_watermark(i64::MAX);
        assert!(log.enforce_retention(0, -1, 1).await.unwrap() > 0, "and all of them once it moves");
        log.shutdown().await.unwrap();
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A copy wholly below its leader's log start is replaced by an empty log
/// beginning there: it opens at that offset, takes the leader's batches
/// from it, and keeps them across a reopen.
#[test]
fn a_copy_reset_at_an_offset_opens_there_and_takes_batches_from_it() {
    let dir = temp_dir("partition-reset");
    let (d, f) = (dir.join("leader"), dir.join("follower"));
    run(&dir, async move {
        let leader = open(&d, false).await;
        append_batches(&leader, 6, 5).await;
        assert_eq!(leader.delete_records(20).await.unwrap(), 20);
        let follower = open(&f, false).await;
        append_batches(&follower, 1, 5).await;
        follower.close().await;
        drop(follower);
        let g = f.clone();
        glommio::executor()
            .spawn_blocking(move || crate::storage::partition_dir::reset_at(&g, uuid::Uuid::from_u128(7), 20))
            .await
            .unwrap();
        let follower = open(&f, false).await;
        assert_eq!((follower.log_start_offset(), follower.log_end(), follower.high_watermark()), (20, 20, 20));
        let copied: Vec<u8> = raw_batches(&leader, 20).await.concat();
        let (base, end) = follower.append_as_follower(&copied).unwrap();
        follower.durable(end).await.unwrap();
        assert_eq!((base, end), (20, 30));
        follower.close().await;
        drop(follower);
        let follower = open(&f, false).await;
        assert_eq!((follower.log_start_offset(), follower.log_end()), (20, 30));
        assert_eq!(raw_batches(&follower, 20).await.concat(), copied);
        follower.shutdown().await.unwrap();
        leader.shutdown().await.unwrap();
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A follower whose last epoch the leader cannot place (newer than any it
/// knows) is sent back to the leader's high watermark, and one whose epoch
/// it knows to where that epoch ended.
#[test]
fn a_follower_epoch_the_leader_cannot_place_goes_back_to_its_high_watermark() {
    use crate::replication::leader::{Position, position};
    let dir = temp_dir("partition-position");
    let d = dir.join("log");
    run(&dir, async move {
        let log = open(&d, false).await;
        log.become_leader(1).await.unwrap();
        append_batches(&log, 2, 5).await;
        log.become_leader(3).await.unwrap();
        append_batches(&log, 2, 5).await;
        log.hold_high_watermark(15);
        assert_eq!(position(&log, 20, 3), Position::Consistent);
        assert_eq!(position(&log, 12, 1), Position::Diverging { epoch: 1, end_offset: 10 });
        assert_eq!(position(&log, 25, 7), Position::Diverging { epoch: -1, end_offset: 15 });
        log.shutdown().await.unwrap();
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A pipelining follower (`replication::unsynced`): right after appending
/// what its leader sent it may fetch on while the append syncs, if more
/// waits at the leader, but only one round deep: the round before must be
/// durable first. Otherwise it waits for every sync first, so that the
/// fetch that may park at the leader reports everything as durable. A
/// failed sync stalls it; a copy closed with appends pending (moved away,
/// started afresh) neither stalls it nor is waited for forever.
#[test]
fn a_follower_fetches_on_one_round_deep_while_its_appends_sync_and_stalls_when_a_sync_fails() {
    use crate::replication::unsynced::{Next, Unsynced};
    let dir = temp_dir("partition-unsynced");
    let (l, f) = (dir.join("leader"), dir.join("follower"));
    run(&dir, async move {
        let leader = open(&l, false).await;
        append_batches(&leader, 6, 5).await;
        let copied = raw_batches(&leader, 0).await;
        let follower = open(&f, false).await;
        let mut unsynced = Unsynced::default();
        assert_eq!(unsynced.settle(true).await, Next::Parked, "nothing appended: nothing to wait for");

        let (_, first) = follower.append_as_follower(&copied[0]).unwrap();
        unsynced.add(follower.clone(), first);
        assert!(follower.durable_end() < first, "the sync has not run yet");
        assert_eq!(unsynced.settle(true).await, Next::Pipelined, "more at the leader: fetch on");
        assert!(follower.durable_end() < first, "without waiting for the sync");
        let (_, second) = follower.append_as_follower(&copied[1]).unwrap();
        unsynced.add(follower.clone(), second);
        assert_eq!(unsynced.settle(true).await, Next::Pipelined);
        assert!(follower.durable_end() >= first, "one round deep: the round before is durable first");
        assert_eq!(unsynced.settle(false).await, Next::Parked);
        assert_eq!(follower.durable_end(), second, "nothing more at the leader: every sync was waited for");

        let (_, end) = follower.append_as_follower(&copied[2]).unwrap();
        unsynced.add(follower.clone(), end);
        {
            fail::cfg("append::fsync", "return").expect("a valid fail point action");
            let next = unsynced.settle(false).await;
            fail::remove("append::fsync");
            assert_eq!(next, Next::Stalled, "a failed sync stalls the follower");
        }
        assert!(follower.log_end() < end, "the failed append was cut off");
        let (_, end) = follower.append_as_follower(&copied[2]).unwrap();
        unsynced.add(follower.clone(), end);
        follower.durable(end).await.unwrap();
        assert_eq!(unsynced.settle(true).await, Next::Parked, "written again: durable, nothing to wait for");

        let (_, end) = follower.append_as_follower(&copied[3]).unwrap();
        unsynced.add(follower.clone(), end);
        follower.close().await;
        assert_eq!(within_10s(unsynced.settle(false)).await, Next::Parked);
        let waited = within_10s(follower.durable(end)).await;
        assert!(matches!(waited, Err(StorageError::Closed)), "{waited:?}");
        leader.close().await;
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `f`'s output; a panic if it takes 10 s (it would wait forever).
async fn within_10s<T>(f: impl std::future::Future<Output = T>) -> T {
    let timeout = async {
        glommio::timer::sleep(std::time::Duration::from_secs(10)).await;
        panic!("waited for a closed log's appends");
    };
    futures_lite::future::or(f, timeout).await
}
