//! In-process fault tests: a chosen step of an append, a roll, retention
//! or a truncation fails (an injected I/O error, or a write cut short), and
//! then either the log carries on or the process "crashes" there: nothing
//! cleans up (the discard after a failed write is skipped too), the log is
//! dropped and opened again by recovery. A kill -9 leaves the same disk, the
//! page cache included. After each, every acknowledged batch is intact at
//! its offset, byte for byte, nothing torn is served, and the log takes
//! appends again.

use std::path::Path;
use std::rc::Rc;

use super::tests::{open, raw_batches, run, temp_dir};
use super::{Appended, PartitionLog, StorageError};
use crate::protocol::batch::{self, testing::make_batch};

/// Arms the named fail points for the life of the value; disarms them all
/// when dropped, even when the test fails.
struct Armed(Vec<&'static str>);

impl Armed {
    fn new(points: &[&'static str]) -> Self {
        for p in points {
            fail::cfg(*p, "return").expect("a valid fail point action");
        }
        Self(points.to_vec())
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        for p in &self.0 {
            fail::remove(p);
        }
    }
}

/// Appends one batch of `n` records; returns its bytes as the log stores
/// them (offset assigned) if it became durable.
async fn append_one(log: &Rc<PartitionLog>, n: i32) -> Result<Vec<u8>, StorageError> {
    let mut b = make_batch(n, 1_000);
    let headers = batch::validate_all(&b).unwrap();
    let Appended::New { base, end } = log.append(&b, &headers)? else { panic!("not a duplicate") };
    log.durable(end).await?;
    batch::assign_offset(&mut b, base, 0);
    Ok(b)
}

/// Appends `count` batches at once, so that they share chunks and pages
/// (a torn write then cuts through them), and waits for them all; returns
/// their bytes as stored if they became durable.
async fn append_group(log: &Rc<PartitionLog>, count: usize) -> Result<Vec<Vec<u8>>, StorageError> {
    let mut out = Vec::new();
    let mut last_end = 0;
    for i in 0..count {
        let mut b = make_batch(20 + (i % 40) as i32, 1_000);
        let headers = batch::validate_all(&b).unwrap();
        let Appended::New { base, end } = log.append(&b, &headers)? else { panic!("not a duplicate") };
        batch::assign_offset(&mut b, base, 0);
        out.push(b);
        last_end = end;
    }
    log.durable(last_end).await?;
    Ok(out)
}

/// Appends until `count` batches are acknowledged; returns their bytes.
async fn append_acked(log: &Rc<PartitionLog>, count: usize) -> Vec<Vec<u8>> {
    let mut acked = Vec::new();
    for i in 0..count {
        acked.push(append_one(log, 5 + (i % 7) as i32).await.expect("no fault armed"));
    }
    acked
}

/// Drops the log as a crash would (no shutdown: no index, snapshot or cut
/// of the active segment) and opens it again by recovery.
async fn crash_and_reopen(log: Rc<PartitionLog>, dir: &Path) -> Rc<PartitionLog> {
    log.close().await;
    drop(log);
    open(dir, false).await
}

/// The log holds `acked` from its start, byte for byte, and after them
/// only whole batches (ones never acknowledged may survive a crash, as in
/// Kafka); returns how many came after.
async fn check_acked(log: &PartitionLog, acked: &[Vec<u8>], context: &str) -> usize {
    let stored = raw_batches(log, 0).await;
    assert!(stored.len() >= acked.len(), "{context}: {} batches stored, {} acknowledged", stored.len(), acked.len());
    for (i, (s, a)) in stored.iter().zip(acked).enumerate() {
        assert_eq!(s, a, "{context}: acknowledged batch {i} differs");
    }
    stored.len() - acked.len()
}

/// One fault during an append, carried on from and crashed at.
fn append_fault(point: &'static str, before: usize) {
    for crash in [false, true] {
        let dir = temp_dir(&format!("partition-fault-{}-{crash}", point.replace("::", "-")));
        let d = dir.join("log");
        run(&dir, async move {
            let context = format!("{point}, crash {crash}");
            let mut log = open(&d, false).await;
            let mut acked = append_acked(&log, before).await;
            {
                let mut points = vec![point];
                if crash {
                    points.push("append::discard");
                }
                let _armed = Armed::new(&points);
                // A roll comes only when a segment fills: append until the
                // armed step is reached and the append fails.
                let mut failed = false;
                for _ in 0..200 {
                    match append_group(&log, 12).await {
                        Ok(group) => acked.extend(group),
                        Err(StorageError::Io(_)) => {
                            failed = true;
                            break;
                        }
                        Err(e) => panic!("{context}: {e}"),
                    }
                }
                assert!(failed, "{context}: the fault was never reached");
            }
            if crash {
                log = crash_and_reopen(log, &d).await;
                // Of the failed group, a whole prefix may have survived.
                let extra = check_acked(&log, &acked, &context).await;
                assert!(extra <= 12, "{context}: {extra} unacknowledged batches");
                acked = raw_batches(&log, 0).await;
            } else {
                // A failed write or sync is cut off whole; a failed roll
                // leaves the group's batches that fit before it.
                let extra = check_acked(&log, &acked, &context).await;
                let allowed = if point == "append::roll" { 12 } else { 0 };
                assert!(extra <= allowed, "{context}: {extra} unacknowledged batches");
                acked = raw_batches(&log, 0).await;
            }
            acked.extend(append_acked(&log, 3).await);
            let log = crash_and_reopen(log, &d).await;
            assert_eq!(check_acked(&log, &acked, &context).await, 0, "{context}: after appending again");
            log.shutdown().await.unwrap();
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn a_torn_write_loses_nothing_acknowledged() {
    append_fault("append::write", 20);
}

#[test]
fn a_failed_fsync_loses_nothing_acknowledged() {
    append_fault("append::fsync", 20);
}

#[test]
fn a_failed_roll_loses_nothing_acknowledged() {
    append_fault("append::roll", 0);
}

/// Retention fails before recording the new start, or after deleting the
/// first of the segments below it.
#[test]
fn interrupted_retention_keeps_a_suffix_of_the_log() {
    for point in ["retention::start", "retention::delete"] {
        let dir = temp_dir(&format!("partition-fault-{}", point.replace("::", "-")));
        let d = dir.join("log");
        run(&dir, async move {
            let log = open(&d, false).await;
            let acked = append_acked(&log, 400).await;
            let segments = log.state.borrow().segments.len();
            assert!(segments > 4, "{point}: {segments} segments");
            {
                let _armed = Armed::new(&[point]);
                assert!(log.enforce_retention(0, -1, 8 << 10).await.is_err(), "{point}: the fault is reported");
            }
            let log = crash_and_reopen(log, &d).await;
            // What is left is the acknowledged log from some batch on: all
            // of it when the start was never recorded.
            let stored = raw_batches(&log, 0).await;
            assert!(acked.ends_with(&stored), "{point}: a suffix of the log, whole");
            if point == "retention::start" {
                assert_eq!(stored.len(), acked.len(), "{point}: nothing went");
            }
            // And retention finishes the job.
            log.enforce_retention(0, -1, 8 << 10).await.unwrap();
            let kept = raw_batches(&log, 0).await;
            assert!(
                acked.ends_with(&kept) && kept.len() < acked.len() / 2,
                "{point}: {} of {} kept",
                kept.len(),
                acked.len()
            );
            log.shutdown().await.unwrap();
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

const TRUNCATE_STEPS: [&str; 5] = [
    "truncate::snapshot",
    "truncate::remove_segment",
    "truncate::remove_index",
    "truncate::cut_segment",
    "truncate::epochs",
];

/// After a truncation fails at a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    /// The log goes on: it refuses appends until a retry succeeds.
    CarryOn,
    /// The process dies there.
    Crash,
    /// A clean shutdown, which must finish the cut first.
    Shutdown,
}

/// A truncation fails at each step: the log refuses appends until one
/// succeeds, or, crashed there, opens as a prefix of the old log that
/// still reaches the cut, or, shut down, finishes the cut; a second
/// truncation then gives the same log.
#[test]
fn an_interrupted_truncation_is_finished_by_the_next() {
    for point in TRUNCATE_STEPS {
        for then in [Then::CarryOn, Then::Crash, Then::Shutdown] {
            let dir = temp_dir(&format!("partition-fault-{}-{then:?}", point.replace("::", "-")));
            let d = dir.join("log");
            run(&dir, async move {
                let context = format!("{point}, then {then:?}");
                let mut log = open(&d, false).await;
                let acked = append_acked(&log, 300).await;
                // Cut a few segments back, inside a batch.
                let cut_batch = acked.len() / 3;
                let at = batch::peek(&acked[cut_batch]).unwrap();
                let target = at.base_offset + 1;
                {
                    let _armed = Armed::new(&[point]);
                    assert!(matches!(log.truncate_to(target).await, Err(StorageError::Io(_))), "{context}");
                }
                match then {
                    Then::Crash => {
                        log = crash_and_reopen(log, &d).await;
                        let stored = raw_batches(&log, 0).await;
                        assert!(acked.starts_with(&stored), "{context}: a prefix of the old log");
                        assert!(stored.len() >= cut_batch, "{context}: still reaching the cut");
                    }
                    Then::CarryOn => {
                        let refused = append_one(&log, 3).await;
                        assert!(matches!(refused, Err(StorageError::Truncating)), "{context}: {refused:?}");
                    }
                    Then::Shutdown => {
                        log.shutdown().await.expect("a shutdown finishes the cut");
                        drop(log);
                        log = open(&d, true).await;
                        assert_eq!(raw_batches(&log, 0).await, acked[..cut_batch], "{context}: cut on disk");
                    }
                }
                assert_eq!(log.truncate_to(target).await.unwrap(), at.base_offset, "{context}");
                assert_eq!(raw_batches(&log, 0).await, acked[..cut_batch], "{context}: cut at the batch");
                let mut expected = acked[..cut_batch].to_vec();
                expected.extend(append_acked(&log, 3).await);
                let log = crash_and_reopen(log, &d).await;
                assert_eq!(raw_batches(&log, 0).await, expected, "{context}: after a crash");
                log.shutdown().await.unwrap();
            });
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
}

/// A failed write rolls the epochs back to the durable end, but a leader's
/// epoch still begins there (OffsetForLeaderEpoch must know it).
#[test]
fn a_failed_write_keeps_the_leaders_epoch() {
    let dir = temp_dir("partition-fault-epoch");
    let d = dir.join("log");
    run(&dir, async move {
        let log = open(&d, false).await;
        append_acked(&log, 5).await;
        log.become_leader(5).await.unwrap();
        let durable = log.durable_end();
        {
            let _armed = Armed::new(&["append::write"]);
            assert!(append_group(&log, 12).await.is_err());
        }
        assert_eq!(log.end_offset_for_epoch(5), (5, durable));
        log.shutdown().await.unwrap();
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every (offset, key, value) of the log's records.
async fn records_of(log: &PartitionLog) -> Vec<(i64, Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    for b in raw_batches(log, 0).await {
        let h = batch::validate(&b).expect("a whole batch");
        let decoded = crate::storage::compaction::records(&b, &h).expect("records that read");
        for r in &decoded.records {
            let value = r.value.clone().map(|v| decoded.bytes[v].to_vec()).unwrap_or_default();
            out.push((r.offset, r.key.clone().unwrap_or_default(), value));
        }
    }
    out
}

/// Compaction fails between the renames of a cleaned segment's log and
/// index files, or after both before the new file is taken into the log;
/// crashed there, the log opens with every key's latest record and only
/// records it had, and compaction then finishes.
#[test]
fn interrupted_compaction_keeps_every_keys_latest_record() {
    for point in ["atomic_file::between_renames", "compact::swap_in"] {
        let dir = temp_dir(&format!("partition-fault-{}", point.replace("::", "-")));
        let d = dir.join("log");
        run(&dir, async move {
            let log = open(&d, false).await;
            for i in 0..300u32 {
                let (k1, k2, v) = (format!("k{}", i % 7), format!("k{}", (i + 3) % 11), format!("v{i}"));
                let b = batch::testing::keyed_batch(
                    0,
                    1_000,
                    &[(k1.as_bytes(), Some(v.as_bytes())), (k2.as_bytes(), Some(b"x"))],
                );
                let headers = batch::validate_all(&b).unwrap();
                let Appended::New { end, .. } = log.append(&b, &headers).unwrap() else { panic!("not a duplicate") };
                log.durable(end).await.unwrap();
            }
            let before = records_of(&log).await;
            let latest = |recs: &[(i64, Vec<u8>, Vec<u8>)]| {
                let mut by_key = std::collections::BTreeMap::new();
                for (o, k, v) in recs {
                    by_key.insert(k.clone(), (*o, v.clone()));
                }
                by_key
            };
            let check = |after: &[(i64, Vec<u8>, Vec<u8>)], context: &str| {
                assert!(after.iter().all(|r| before.contains(r)), "{point} {context}: only records the log had");
                assert_eq!(latest(after), latest(&before), "{point} {context}: every key's latest record");
            };
            {
                let _armed = Armed::new(&[point]);
                assert!(log.compact(i64::MIN).await.is_err(), "{point}: the fault is reported");
            }
            let log = crash_and_reopen(log, &d).await;
            check(&records_of(&log).await, "after the crash");
            assert!(log.compact(i64::MIN).await.unwrap() > 0, "{point}: compaction runs again");
            let after = records_of(&log).await;
            check(&after, "compacted");
            assert!(after.len() * 2 < before.len(), "{point}: {} of {} records kept", after.len(), before.len());
            log.shutdown().await.unwrap();
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
