//! In-process tests of one partition log on a glommio executor inside
//! `cargo test`: the log's invariants are checked after every change (see
//! `invariants.rs`), and a model test drives random appends, DeleteRecords,
//! size retention and reopens (clean and after a close without shutdown)
//! and truncations against a plain model of the log, comparing every batch after each
//! step. The seed is fixed in CI; `SLUICE_MODEL_SEED=N` runs another,
//! `SLUICE_MODEL_SEED=random` a new one (printed, to replay a failure), and
//! `SLUICE_MODEL_STEPS=N` a longer walk.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::{Limits, PartitionLog};
use crate::broker::notify::Notify;
use crate::protocol::batch::{self, testing::make_batch};
use crate::storage::cache_budget::CacheBudget;

/// A small xorshift generator: the test needs repeatable choices, not quality.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

pub(super) fn limits() -> Limits {
    Limits {
        segment_bytes: 8 << 10,
        index_interval: 1024,
        segment_ms: i64::MAX,
        preallocate: false,
        flush_messages: 1,
        flush_ms: i64::MAX,
        recycle: true,
        retention_bytes: -1,
    }
}

pub(super) async fn open(dir: &Path, clean: bool) -> Rc<PartitionLog> {
    let id = uuid::Uuid::from_u128(7);
    let (notify, due) = (Rc::new(Notify::default()), Rc::new(Notify::default()));
    let budget = Rc::new(CacheBudget::new(1 << 20));
    PartitionLog::open(dir.to_path_buf(), id, limits(), notify, due, budget, clean).await.expect("the log opens")
}

/// Every batch from the log start on, as (base offset, record count).
pub(super) async fn batches(log: &PartitionLog) -> Vec<(i64, i64)> {
    let (start, end) = (log.log_start_offset(), log.high_watermark());
    let mut out = Vec::new();
    let mut at = start;
    while at < end {
        let fetched = log.read(at, 64 << 10, true).await.expect("a read inside the log");
        let bytes = fetched.into_bytes();
        let headers = batch::validate_all(&bytes).expect("whole, valid batches");
        assert!(!headers.is_empty(), "a read below the high watermark returns a batch");
        for h in headers {
            out.push((h.base_offset, i64::from(h.last_offset_delta) + 1));
            at = h.base_offset + i64::from(h.last_offset_delta) + 1;
        }
    }
    out
}

/// The model: every appended batch, and the log start.
#[derive(Default)]
pub(super) struct Model {
    pub(super) batches: Vec<(i64, i64)>,
    pub(super) start: i64,
}

impl Model {
    pub(super) fn end(&self) -> i64 {
        self.batches.last().map_or(0, |(b, n)| b + n)
    }
    /// A truncation to `offset`: batches reaching it go whole.
    fn truncate(&mut self, offset: i64) {
        self.batches.retain(|(b, n)| b + n <= offset);
        self.start = self.start.min(self.end());
    }

    /// The batches a read from the start returns: those ending after it.
    pub(super) fn visible(&self) -> Vec<(i64, i64)> {
        self.batches.iter().copied().filter(|(b, n)| b + n > self.start).collect()
    }
}

pub(super) async fn append(log: &Rc<PartitionLog>, model: &mut Model, rng: &mut Rng) {
    let count = 1 + rng.below(3) as usize;
    let mut records = Vec::new();
    let mut sizes = Vec::new();
    for _ in 0..count {
        let n = 1 + rng.below(40) as i32;
        records.extend(make_batch(n, 1_000 + model.end()));
        sizes.push(i64::from(n));
    }
    let headers = batch::validate_all(&records).expect("valid batches");
    let super::Appended::New { base, end } = log.append(&records, &headers).expect("append") else {
        panic!("plain batches are never duplicates");
    };
    assert_eq!(base, model.end(), "offsets continue the log");
    log.durable(end).await.expect("durable");
    let mut at = base;
    for n in sizes {
        model.batches.push((at, n));
        at += n;
    }
    assert_eq!(at, end);
}

pub(super) async fn step(log: Rc<PartitionLog>, dir: &Path, model: &mut Model, rng: &mut Rng) -> Rc<PartitionLog> {
    match rng.below(11) {
        0..=5 => append(&log, model, rng).await,
        6 => {
            let target = model.start + rng.below((model.end() - model.start + 1) as u64) as i64;
            let start = log.delete_records(target).await.expect("DeleteRecords inside the log");
            model.start = model.start.max(target);
            assert_eq!(start, model.start);
        }
        7 => {
            // Size retention drops whole old segments: the model learns the
            // new start from the log, which must be a batch boundary.
            log.enforce_retention(0, -1, 16 << 10).await.expect("retention");
            let start = log.log_start_offset();
            assert!(start >= model.start && start <= model.end());
            assert!(start == model.end() || model.batches.iter().any(|(b, _)| *b == start) || start == model.start);
            model.start = start;
        }
        10 => {
            // A follower cuts a divergent tail: up to a few batches, now and
            // then more than a segment.
            let back = rng.below(1 + (model.end() - model.start).min(1_000) as u64) as i64;
            let target = model.end() - back;
            let end = log.truncate_to(target).await.expect("a truncation inside the log");
            model.truncate(target);
            assert_eq!(end, model.end(), "the log ends where the model's kept batches end");
        }
        8 => {
            log.shutdown().await.expect("clean shutdown");
            drop(log);
            return open(dir, true).await;
        }
        _ => {
            // Closed without a shutdown: the next open recovers by scanning.
            log.close().await;
            drop(log);
            return open(dir, false).await;
        }
    }
    log
}

pub(super) fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::current_dir().unwrap().join(format!("target/{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `test` on a fresh executor that first reads a non-empty file in
/// `dir`, as every shard does (`iopoll_probe`): glommio picks its read path
/// from the first file a thread opens.
pub(super) fn run(dir: &Path, test: impl std::future::Future<Output = ()> + 'static) {
    // One log test at a time: fail points are armed process-wide, and an
    // armed one must not fire in another test's log.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    crate::storage::iopoll_probe::prepare(dir).expect("the probe file");
    let dir = dir.to_path_buf();
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(crate::broker::io_memory::MIN_IO_MEMORY)
        .make()
        .expect("an executor")
        .run(async move {
            crate::storage::iopoll_probe::prime(&dir).await.expect("the probe read");
            test.await
        });
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
fn random_operations_match_the_model() {
    let seed = match std::env::var("SLUICE_MODEL_SEED").as_deref() {
        Ok("random") => {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos());
            let seed = nanos as u64;
            eprintln!("SLUICE_MODEL_SEED={seed}");
            seed
        }
        _ => env("SLUICE_MODEL_SEED", 0x5eed_1234_abcd_0021),
    };
    let steps = env("SLUICE_MODEL_STEPS", 150);
    let dir = temp_dir("partition-model");
    let d = dir.join("log");
    run(&dir, async move {
        let mut rng = Rng(seed | 1);
        let mut model = Model::default();
        let mut log = open(&d, false).await;
        let (mut starts_moved, mut most_segments, mut cuts) = (0, 0, 0);
        for i in 0..steps {
            let before = (model.start, model.end());
            log = step(log, &d, &mut model, &mut rng).await;
            starts_moved += usize::from(model.start > before.0);
            cuts += usize::from(model.end() < before.1);
            most_segments = most_segments.max(log.state.borrow().segments.len());
            assert_eq!(log.high_watermark(), model.end(), "seed {seed:#x}, step {i}: log end");
            assert_eq!(log.log_start_offset(), model.start, "seed {seed:#x}, step {i}: log start");
            assert_eq!(batches(&log).await, model.visible(), "seed {seed:#x}, step {i}: batches");
        }
        // The walk did more than append: the start moved, segments rolled.
        assert!(starts_moved > 5 && model.start > 0, "seed {seed:#x}: the start moved {starts_moved} times");
        assert!(most_segments >= 2, "seed {seed:#x}: segments rolled to at most {most_segments}");
        assert!(cuts > 3, "seed {seed:#x}: the log was cut back {cuts} times");
        log.shutdown().await.unwrap();
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[should_panic(expected = "invariant `spare moves along its edges`")]
fn a_broken_invariant_fails_with_its_name() {
    let dir = temp_dir("partition-invariant");
    let d = dir.join("log");
    run(&dir, async move {
        let log = open(&d, false).await;
        let mut st = log.state.borrow_mut();
        st.move_spare(super::Spare::Absent);
        st.move_spare(super::Spare::Absent);
    });
}

/// Every batch's bytes from `from` on, each checked whole (CRC included;
/// a compacted batch may hold fewer records than its offset span).
pub(super) async fn raw_batches(log: &PartitionLog, from: i64) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = from.max(log.log_start_offset());
    while at < log.high_watermark() {
        let bytes = log.read(at, 64 << 10, true).await.expect("a read inside the log").into_bytes();
        let mut rest = &bytes[..];
        assert!(!rest.is_empty(), "a read below the high watermark returns a batch");
        while !rest.is_empty() {
            let h = batch::validate(rest).expect("a valid batch");
            out.push(rest[..h.total_len].to_vec());
            rest = &rest[h.total_len..];
            at = h.last_offset() + 1;
        }
    }
    out
}

#[test]
fn a_follower_keeps_the_leaders_offsets_and_bytes() {
    let dir = temp_dir("partition-follower");
    let (leader_dir, follower_dir) = (dir.join("leader"), dir.join("follower"));
    run(&dir, async move {
        let mut rng = Rng(0xf011_0e55);
        let mut model = Model::default();
        let mut leader = open(&leader_dir, false).await;
        for _ in 0..60 {
            leader = step(leader, &leader_dir, &mut model, &mut rng).await;
        }
        // The follower starts where the leader's log starts (a gap from 0 on
        // a leader whose start moved) and copies it in pieces.
        let from_leader = raw_batches(&leader, 0).await;
        assert!(from_leader.len() > 10);
        let follower = open(&follower_dir, false).await;
        for piece in from_leader.chunks(3) {
            let bytes: Vec<u8> = piece.concat();
            let (_, end) = follower.append_as_follower(&bytes).expect("the leader's batches");
            follower.durable(end).await.expect("durable");
        }
        assert_eq!(follower.high_watermark(), leader.high_watermark());
        assert_eq!(raw_batches(&follower, 0).await, from_leader, "byte for byte, offsets and epochs kept");

        // Batches at or below the log end, and damaged ones, are refused.
        let again = follower.append_as_follower(&from_leader[from_leader.len() - 1]);
        assert!(matches!(again, Err(super::StorageError::Invalid(_))), "{again:?}");
        let mut damaged = make_batch(3, 5);
        batch::assign_offset(&mut damaged, follower.high_watermark(), 0);
        let last = damaged.len() - 1;
        damaged[last] ^= 0xff;
        assert!(matches!(follower.append_as_follower(&damaged), Err(super::StorageError::Invalid(_))));

        // And it recovers to the same log.
        follower.close().await;
        drop(follower);
        let follower = open(&follower_dir, false).await;
        assert_eq!(raw_batches(&follower, 0).await, from_leader);
        follower.shutdown().await.unwrap();
        leader.shutdown().await.unwrap();
    });
    std::fs::remove_dir_all(&dir).unwrap();
}
