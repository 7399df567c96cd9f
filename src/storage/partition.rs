//! One partition's log, owned by one shard: appends assign offsets and queue
//! bytes; a flusher task writes whole aligned pages with direct I/O and
//! fdatasyncs, so every produce request that arrives while a sync is in
//! flight shares the next one (group commit). Only durable batches are
//! visible to readers: the high watermark is the durable end of the log.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use glommio::channels::local_channel;
use glommio::io::DmaFile;
use glommio::sync::Semaphore;
use thiserror::Error;
use tracing::{error, info, warn};
use uuid::Uuid;

use super::atomic_file::{self, Replacement};
use super::cache::BatchCache;
use super::cache_budget::CacheBudget;
use super::chunk::{Chunk, PAGE};
use super::compaction;
use super::index::{BatchEntry, SegmentIndex};
use super::index_file;
use super::partition_dir;
use super::producer_state::{Check, ProducerBatch, ProducerEntry, ProducerState, SequenceError};
use super::recovery;
use super::recycle;
use super::retention::{self, SegmentInfo};
use super::segment::{self, Segment};
use super::start_offset;
use super::walk;
use crate::broker::notify::Notify;
use crate::clock::now_ms;
use crate::protocol::batch::{self, BatchHeader, HEADER_LEN};
use crate::protocol::batch_walk;

/// Most chunks written together under one fdatasync. Groups of up to ~8 MiB
/// keep the disk streaming: the next group is written while this one syncs,
/// and acknowledgements come sooner than after one huge group (measured side
/// by side: 8 gave 16-23% more than 64 at 64 requests in flight, 4 and 16
/// less than 8; docs/BENCHMARKS.md).
const MAX_GROUP: usize = 8;

/// The active segment's file is extended ahead of its writes by at least
/// this much ...
const MIN_AHEAD: u64 = 1 << 20;
/// ... and at most this much (it grows with what the segment has taken, so a
/// quiet partition reserves little).
const MAX_AHEAD: u64 = 64 << 20;

/// Sizes that bound a partition's files and memory.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Roll to a new segment past this many bytes (`segment.bytes`).
    pub segment_bytes: u64,
    /// Log bytes between sparse index entries (`index.interval.bytes`).
    pub index_interval: u64,
    /// Roll a segment once its first batch is this old (`segment.ms`).
    pub segment_ms: i64,
    /// Reserve `segment.bytes` on disk when a segment is created
    /// (`preallocate`), so a full disk shows at roll time, not mid-segment.
    pub preallocate: bool,
    /// fdatasync once this many messages are unsynced (`flush.messages`).
    pub flush_messages: i64,
    /// ... or once the last sync is this old (`flush.ms`).
    pub flush_ms: i64,
    /// Keep one segment file that retention deletes for the next segment
    /// (`log.segment.recycle`; see [`recycle`]).
    pub recycle: bool,
    /// `retention.bytes` of a `delete` topic, else -1: the log signals
    /// retention as soon as this no longer keeps its oldest segment.
    pub retention_bytes: i64,
}

/// What moves a log start (see `PartitionLog::advance_start`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mover {
    /// `retention.ms` / `retention.bytes`: always to a segment's base.
    Retention,
    /// DeleteRecords: anywhere; answered only once the start is durable.
    DeleteRecords,
}

/// Why an append could not be made durable.
#[derive(Debug, Clone, Error)]
pub enum StorageError {
    #[error("I/O error on the partition log: {0}")]
    Io(String),
    #[error("the partition was closed")]
    Closed,
    #[error("{0}")]
    Sequence(#[from] SequenceError),
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// The batches got offsets `base..end`.
    New { base: i64, end: i64 },
    /// An idempotent producer's retry of a batch already at `base..end`.
    Duplicate { base: i64, end: i64 },
}

/// Why a read was refused.
#[derive(Debug, Clone, Error)]
pub enum ReadError {
    #[error("offset {offset} is outside {start}..={end}")]
    OutOfRange { offset: i64, start: i64, end: i64 },
    #[error("I/O error reading the partition log: {0}")]
    Io(String),
}

/// Batches read from the log.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Whole batches, verbatim, in order: the buffers they are held in
    /// (cached chunks or a disk read), not copied together.
    pub pieces: Vec<Bytes>,
    /// High watermark when the read started.
    pub high_watermark: i64,
    /// First offset still in the log.
    pub log_start_offset: i64,
}

/// Where the next write of the active segment starts.
struct Cursor {
    segment_base: i64,
    pos: u64,
    /// The bytes of the page `pos` falls in that lie before it.
    tail: Vec<u8>,
}

/// A group written, not yet durable.
struct Written {
    cursor: Cursor,
    file: Rc<DmaFile>,
    /// Messages in it, for the flush policy.
    messages: i64,
}

/// The partition's spare segment file. One state, changed only on the
/// reactor thread, so that keeping a file as the spare and taking the spare
/// for a new segment (each a rename off the reactor) never overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spare {
    Absent,
    /// Marked as recycled, durably; this many bytes long.
    Ready(u64),
    /// Being made or being taken.
    Busy,
}

/// A produce request waiting for its batches to be durable. A single-thread
/// channel: no atomics or locks on the produce path.
type Waiter = local_channel::LocalSender<Result<(), StorageError>>;

struct State {
    segments: Vec<Segment>,
    /// Bytes in the sealed segments (all but the active one), for the
    /// retention check at every publish (see `PartitionLog::oldest_outgrown`):
    /// kept where the segment list or a sealed size changes, not summed.
    sealed_bytes: u64,
    /// The oldest segment's base offset when retention was last signalled
    /// for it: one signal per oldest segment, so that a pass that cannot
    /// delete it (an I/O error, segments left below the log start by a
    /// crash) is retried by the next roll or timed check, not by every
    /// publish.
    retention_signalled_for: i64,
    next_offset: i64,
    high_watermark: i64,
    log_start_offset: i64,
    /// Segment receiving appends; ahead of `segments` when a roll is queued.
    write_segment: i64,
    /// Logical end of `write_segment`, pending bytes included.
    write_pos: u64,
    /// When `write_segment` got its first batch (wall clock, ms): it rolls
    /// once this is `segment.ms` old.
    write_segment_since_ms: i64,
    /// Durable bytes of the active segment's last partial page, rewritten
    /// with the next write because direct I/O writes whole pages.
    tail: Vec<u8>,
    pending: VecDeque<Chunk>,
    /// Size of the active segment's file. It runs ahead of the logical end
    /// (zeros, see [`PartitionLog::extend_ahead`]) so that writes need not
    /// grow the file: ext4 serializes size-changing direct writes and
    /// completes them in a worker thread, which halved append throughput.
    file_len: u64,
    flushing: bool,
    waiters: VecDeque<(i64, Waiter)>,
    cache: BatchCache,
    closed: bool,
    /// Messages written but not yet fdatasynced (relaxed flush policy only).
    unsynced_messages: i64,
    last_sync: std::time::Instant,
    /// A delayed fdatasync is scheduled.
    sync_timer: bool,
    /// The zeroed file retention left for the next segment (see [`recycle`]).
    spare: Spare,
    /// Idempotent producers, as of everything appended (pending included).
    producers: ProducerState,
    /// ... and as of the durable log only: what `producers` returns to when
    /// a write fails.
    durable_producers: ProducerState,
}

/// A partition's log.
pub struct PartitionLog {
    dir: PathBuf,
    /// The topic's settings: replaced when its configs are altered, and read
    /// where each applies (a roll, a sync decision, an index entry), so a
    /// change takes effect from the next such point, as in Kafka.
    limits: Cell<Limits>,
    /// The shard's "data arrived" signal, for long-polling fetches.
    notify: Rc<Notify>,
    /// The shard's "retention may have work" signal, given at each roll and
    /// as soon as `retention.bytes` no longer keeps the oldest segment:
    /// retention runs at once, so that a segment it deletes is ready to
    /// recycle for the next roll. (At a roll alone that came too late: by
    /// Kafka's rule a segment goes only if the log stays at the limit
    /// without it, which the new, empty segment often does not yet make
    /// true. The deletion then waited for the next roll, which found no
    /// spare and wrote a new file: ~1 roll in 4 with four partitions.)
    retention_due: Rc<Notify>,
    /// Signalled when the flusher stops (nothing left to write).
    idle: Rc<Notify>,
    /// Serializes changes to the segment files outside the flush loop:
    /// retention, DeleteRecords, compaction, sealing a rolled segment's
    /// index files, close and shutdown.
    start_moves: Semaphore,
    /// The log start moved in memory, but the directory fsync that makes
    /// the move durable failed: a repeat of the move (a retried
    /// DeleteRecords) answers only once one succeeds.
    start_unsynced: Cell<bool>,
    /// End offset of the producer snapshot on disk (the last this run
    /// wrote, or the one it opened with): a later one never gives way to an
    /// earlier one.
    snapshot_end: Cell<i64>,
    /// A clean shutdown has begun: compaction stops at its next window so
    /// that the shutdown does not wait for a whole pass.
    stopping: Cell<bool>,
    /// The shard's bound on cached batches.
    cache_budget: Rc<CacheBudget>,
    /// Active segment when compaction last ran, and whether it left
    /// tombstones that are not old enough to go yet.
    compacted_at: Cell<Option<i64>>,
    young_tombstones: Cell<bool>,
    state: RefCell<State>,
}

impl Fetched {
    /// Bytes of batches.
    pub fn len(&self) -> usize {
        self.pieces.iter().map(Bytes::len).sum()
    }

    /// The batches as one buffer (a copy when there are several pieces).
    pub fn into_bytes(self) -> Bytes {
        concat(self.pieces)
    }
}

impl PartitionLog {
    /// Opens a partition directory, recovering its segments: every batch is
    /// validated and a torn or corrupt tail is cut off and logged.
    /// After a clean shutdown (`clean`), index files are trusted and the
    /// active segment's tail is only walked, not checksummed.
    pub async fn open(
        dir: PathBuf,
        topic_id: Uuid,
        limits: Limits,
        notify: Rc<Notify>,
        retention_due: Rc<Notify>,
        cache_budget: Rc<CacheBudget>,
        clean: bool,
    ) -> io::Result<Rc<Self>> {
        let d = dir.clone();
        let mut bases = glommio::executor().spawn_blocking(move || partition_dir::prepare(&d, topic_id)).await?;
        if bases.is_empty() {
            bases.push(0);
        }
        let mut segments = Vec::new();
        let mut expected = bases[0];
        let mut cut_at = None;
        for (i, &base) in bases.iter().enumerate() {
            if base < expected {
                // A segment whose name overlaps the log before it cannot be
                // appended to under that name: it and all later ones go.
                // (A gap is fine: compaction can empty a segment's tail.)
                warn!(dir = %dir.display(), segment = base, expected, "segment does not continue the log");
                cut_at = Some(i);
                break;
            }
            let file = segment::open_file(&segment::log_path(&dir, base)).await?;
            let next_base = bases.get(i + 1).copied();
            let scan = recover_segment(&dir, &file, base, next_base, clean, limits.index_interval).await?;
            if let Some(why) = &scan.torn {
                let lost_from = scan.index.next_offset.unwrap_or(expected);
                warn!(
                    dir = %dir.display(), segment = base, at = scan.valid_len,
                    bytes = scan.file_len - scan.valid_len, offsets_from = lost_from,
                    "truncating torn or corrupt log tail: {why}"
                );
            } else if scan.stale_tail {
                info!(
                    dir = %dir.display(), segment = base, at = scan.valid_len, bytes = scan.file_len - scan.valid_len,
                    "the log ends here in a recycled segment file; cutting the deleted segment's bytes after it"
                );
            }
            if scan.valid_len < scan.file_len {
                file.truncate(scan.valid_len).await.map_err(io::Error::from)?;
                file.fdatasync().await.map_err(io::Error::from)?;
            }
            expected = scan.index.next_offset.unwrap_or(expected);
            segments.push(Segment { base_offset: base, file: Rc::new(file), size: scan.valid_len, index: scan.index });
            if scan.torn.is_some() && i + 1 < bases.len() {
                cut_at = Some(i + 1);
                break;
            }
        }
        if let Some(from) = cut_at {
            for &base in &bases[from..] {
                warn!(dir = %dir.display(), segment = base, "removing segment after a corrupt one");
                let d = dir.clone();
                glommio::executor().spawn_blocking(move || segment::remove(&d, base)).await?;
            }
        }
        let active = segments.last().expect("at least one segment");
        let mut file_len = active.size;
        if active.size == 0 && limits.preallocate {
            active.file.pre_allocate(limits.segment_bytes, false).await.map_err(io::Error::from)?;
            file_len = limits.segment_bytes;
        }
        let tail_start = active.size / PAGE * PAGE;
        let tail = if active.size > tail_start {
            active
                .file
                .read_at(tail_start, (active.size - tail_start) as usize)
                .await
                .map_err(io::Error::from)?
                .to_vec()
        } else {
            Vec::new()
        };
        // DeleteRecords or retention may have moved the start into a segment.
        let d = dir.clone();
        let recorded = glommio::executor().spawn_blocking(move || start_offset::read(&d)).await?;
        let log_start_offset = recorded.unwrap_or(i64::MIN).clamp(segments[0].base_offset, expected);
        if expected > segments[0].base_offset {
            info!(dir = %dir.display(), segments = segments.len(), start = log_start_offset, end = expected, "recovered partition");
        }
        let (producers, snapshot_end) = rebuild_producers(&dir, &segments, expected).await?;
        Self::remove_below_start(&dir, &mut segments, log_start_offset).await;
        let spare = Self::open_spare(&dir, limits.recycle).await;
        let active = segments.last().expect("at least one segment");
        let state = State {
            spare,
            producers: producers.clone(),
            durable_producers: producers,
            write_segment: active.base_offset,
            write_segment_since_ms: active.index.times.first().map_or_else(now_ms, |t| t.timestamp.min(now_ms())),
            write_pos: active.size,
            sealed_bytes: sealed_sum(&segments),
            retention_signalled_for: i64::MIN,
            segments,
            next_offset: expected,
            high_watermark: expected,
            log_start_offset,
            tail,
            pending: VecDeque::new(),
            file_len,
            flushing: false,
            waiters: VecDeque::new(),
            cache: BatchCache::new(cache_budget.limit()),
            closed: false,
            unsynced_messages: 0,
            last_sync: std::time::Instant::now(),
            sync_timer: false,
        };
        Ok(Rc::new(Self {
            dir,
            limits: Cell::new(limits),
            notify,
            retention_due,
            idle: Rc::new(Notify::default()),
            start_moves: Semaphore::new(1),
            start_unsynced: Cell::new(false),
            snapshot_end: Cell::new(snapshot_end.unwrap_or(i64::MIN)),
            stopping: Cell::new(false),
            cache_budget,
            compacted_at: Cell::new(None),
            young_tombstones: Cell::new(false),
            state: RefCell::new(state),
        }))
    }

    /// The durable end of the log: readers see offsets below it.
    pub fn high_watermark(&self) -> i64 {
        self.state.borrow().high_watermark
    }

    /// The first offset in the log.
    pub fn log_start_offset(&self) -> i64 {
        self.state.borrow().log_start_offset
    }

    /// Bytes of batches in the log's segments (DescribeLogDirs' partition
    /// size, as Kafka counts it: segment bytes, indexes not included).
    pub fn size_bytes(&self) -> u64 {
        self.state.borrow().segments.iter().map(|s| s.size).sum()
    }

    /// Appends validated batches (`headers` describe `records` in order),
    /// assigning offsets. Returns the first offset and the end offset
    /// (exclusive); durability follows through [`PartitionLog::durable`].
    pub fn append(self: &Rc<Self>, records: &[u8], headers: &[BatchHeader]) -> Result<Appended, StorageError> {
        let mut st = self.state.borrow_mut();
        if st.closed {
            return Err(StorageError::Closed);
        }
        let base = st.next_offset;
        // Idempotent producers: check every batch before appending any.
        let mut appends: Vec<(i64, ProducerEntry, ProducerBatch, i16)> = Vec::new();
        let mut offset = base;
        for h in headers {
            if h.is_idempotent() {
                let entry = st.producers.producers.get(&h.producer_id).cloned().unwrap_or_default();
                let mut entry = appends
                    .iter()
                    .rev()
                    .find(|(pid, ..)| *pid == h.producer_id)
                    .map(|(_, e, _, _)| e.clone())
                    .unwrap_or(entry);
                match entry.check(h.producer_id, h.producer_epoch, h.base_sequence, h.last_sequence())? {
                    Check::Duplicate(b) if headers.len() == 1 => {
                        info!(
                            dir = %self.dir.display(), producer = h.producer_id, sequence = h.base_sequence,
                            offset = b.first_offset, "duplicate batch from an idempotent producer: answered with its original offset"
                        );
                        return Ok(Appended::Duplicate { base: b.first_offset, end: b.last_offset + 1 });
                    }
                    Check::Duplicate(_) => {
                        return Err(SequenceError::OutOfOrder {
                            producer_id: h.producer_id,
                            epoch: h.producer_epoch,
                            seq: h.base_sequence,
                            last: -1,
                        }
                        .into());
                    }
                    Check::Fresh => {}
                }
                let batch = ProducerBatch {
                    first_seq: h.base_sequence,
                    last_seq: h.last_sequence(),
                    first_offset: offset,
                    last_offset: offset + i64::from(h.last_offset_delta),
                };
                entry.record(h.producer_epoch, batch, h.max_timestamp);
                appends.push((h.producer_id, entry, batch, h.producer_epoch));
            }
            offset += i64::from(h.last_offset_delta) + 1;
        }
        for (pid, entry, _, _) in &appends {
            st.producers.producers.insert(*pid, entry.clone());
        }
        let mut appends = appends.into_iter().map(|(pid, _, batch, epoch)| (pid, epoch, batch)).peekable();
        let mut at = 0;
        let now = now_ms();
        for h in headers {
            let bytes = &records[at..at + h.total_len];
            at += h.total_len;
            let len = h.total_len as u64;
            if st.write_pos == 0 {
                st.write_segment_since_ms = now;
            }
            let limits = self.limits.get();
            let too_big = st.write_pos + len > limits.segment_bytes;
            let too_old = now.saturating_sub(st.write_segment_since_ms) >= limits.segment_ms;
            if st.write_pos > 0 && (too_big || too_old) {
                st.write_segment = st.next_offset;
                st.write_pos = 0;
                st.write_segment_since_ms = now;
            }
            let (segment_base, position, offset) = (st.write_segment, st.write_pos, st.next_offset);
            let fits = st.pending.back().is_some_and(|c| c.segment_base == segment_base && c.room() >= h.total_len);
            if !fits {
                let file = st.segments.last().expect("a segment").file.clone();
                st.pending.push_back(Chunk::new(&file, segment_base, position, offset, h.total_len));
            }
            let chunk = st.pending.back_mut().expect("just ensured");
            batch::assign_offset(chunk.push(bytes), offset, 0);
            if appends.peek().is_some_and(|(_, _, b)| b.first_offset == offset) {
                let (pid, epoch, b) = appends.next().expect("peeked");
                chunk.producers.push((pid, epoch, b, h.max_timestamp));
            }
            let entry = BatchEntry {
                base_offset: offset,
                last_offset: offset + i64::from(h.last_offset_delta),
                max_timestamp: h.max_timestamp,
                segment_base,
                position,
                len: h.total_len as u32,
            };
            chunk.entries.push(entry);
            chunk.end_offset = entry.last_offset + 1;
            st.write_pos += len;
            st.next_offset = entry.last_offset + 1;
        }
        debug_assert_eq!(at, records.len(), "headers must cover the records");
        let end = st.next_offset;
        let start_flusher = !st.flushing;
        st.flushing = true;
        // glommio may run a spawned task at once: release the state first.
        drop(st);
        if start_flusher {
            glommio::spawn_local(self.clone().flush_loop()).detach();
        }
        Ok(Appended::New { base, end })
    }

    /// Resolves once every offset below `end` is durable (or failed).
    pub fn durable(&self, end: i64) -> impl std::future::Future<Output = Result<(), StorageError>> + use<> {
        let rx = {
            let mut st = self.state.borrow_mut();
            if st.high_watermark >= end {
                None
            } else {
                let (tx, rx) = local_channel::new_bounded(1);
                st.waiters.push_back((end, tx));
                Some(rx)
            }
        };
        async move {
            match rx {
                None => Ok(()),
                Some(rx) => rx.recv().await.unwrap_or(Err(StorageError::Closed)),
            }
        }
    }

    async fn flush_loop(self: Rc<Self>) {
        // The previous group's fdatasync, which publishes it when done; it
        // runs while the next group is written, so the disk is not left idle
        // during the sync. At most one is in flight, and groups are
        // published in log order.
        let mut syncing: Option<glommio::Task<bool>> = None;
        // Where the next write goes, once a group has been written but is not
        // durable yet (None: at the durable end).
        let mut cursor: Option<Cursor> = None;
        loop {
            let mut group = self.take_group();
            if group.is_empty() {
                if syncing.is_some() {
                    if !self.settle(syncing.take()).await {
                        cursor = None;
                    }
                    // Appends may have arrived while it ran.
                    continue;
                }
                self.state.borrow_mut().flushing = false;
                self.idle.notify_all();
                return;
            }
            let active_base = self.state.borrow().segments.last().expect("a segment").base_offset;
            if group[0].segment_base != active_base {
                // A roll seals the old segment at its durable end: wait for it.
                cursor = None;
                if !self.settle(syncing.take()).await {
                    // The group's producers were failed with the rest.
                    continue;
                }
            }
            let written = self.write_group(&mut group, cursor.take()).await;
            if !self.settle(syncing.take()).await {
                // That failure failed every waiter, this group's included,
                // and its bytes were cut off with the rest.
                continue;
            }
            match written {
                Err(e) => {
                    self.fail(&e);
                    self.discard_failed_write().await;
                }
                Ok(Written { cursor: next, file, messages }) => {
                    cursor = Some(next);
                    if self.sync_due(messages) {
                        syncing = Some(glommio::spawn_local(self.clone().sync_and_publish(file, group)));
                    } else {
                        for chunk in group {
                            self.publish(chunk);
                        }
                        self.schedule_sync();
                    }
                }
            }
        }
    }

    /// Waits for the previous group's sync, if one is in flight. If it
    /// failed (and failed every waiter), cuts off whatever was written past
    /// the durable end; every write has ended by then. Returns whether it
    /// succeeded.
    async fn settle(&self, sync: Option<glommio::Task<bool>>) -> bool {
        let ok = match sync {
            Some(sync) => sync.await,
            None => true,
        };
        if !ok {
            self.discard_failed_write().await;
        }
        ok
    }

    /// fdatasyncs a written group and publishes it; on failure fails every
    /// waiter. Returns whether the group became durable.
    async fn sync_and_publish(self: Rc<Self>, file: Rc<DmaFile>, group: Vec<Chunk>) -> bool {
        match file.fdatasync().await {
            Ok(()) => {
                self.synced();
                for chunk in group {
                    self.publish(chunk);
                }
                true
            }
            Err(e) => {
                self.fail(&io::Error::from(e));
                false
            }
        }
    }

    /// Takes the pending chunks of one segment for the next write (none once
    /// the log is closed).
    fn take_group(&self) -> Vec<Chunk> {
        let mut st = self.state.borrow_mut();
        let mut group = Vec::new();
        if !st.closed {
            while group.len() < MAX_GROUP
                && let Some(c) = st.pending.front()
                && group.first().is_none_or(|g: &Chunk| g.segment_base == c.segment_base)
            {
                group.push(st.pending.pop_front().expect("just seen"));
            }
        }
        group
    }

    /// After a failed write, bytes of it may still have reached the disk past
    /// the durable end. Cut them off before anything else is written, or a
    /// later write ending on a page boundary would leave them readable by
    /// recovery, and never-acknowledged batches could reappear after a crash.
    async fn discard_failed_write(&self) {
        let (file, size) = {
            let st = self.state.borrow();
            let active = st.segments.last().expect("a segment");
            (active.file.clone(), active.size)
        };
        let cut = async {
            file.truncate(size).await?;
            file.fdatasync().await
        };
        match cut.await {
            Ok(()) => self.state.borrow_mut().file_len = size,
            Err(e) => error!(dir = %self.dir.display(), "cannot cut the failed write off the log: {e}"),
        }
    }

    /// Writes chunks of one segment, each at its place, all at once; the
    /// caller fdatasyncs them (as the flush policy asks). `cursor` is where
    /// the previous, not yet durable, group ended (None: the durable end).
    async fn write_group(self: &Rc<Self>, group: &mut [Chunk], cursor: Option<Cursor>) -> io::Result<Written> {
        let segment_base = group[0].segment_base;
        let roll = {
            let st = self.state.borrow();
            let active = st.segments.last().expect("a segment");
            (active.base_offset != segment_base)
                .then(|| (active.file.clone(), active.size, active.base_offset, active.index.clone()))
        };
        if let Some((old, size, old_base, old_index)) = roll {
            // Seal the old segment at its logical size (dropping page padding):
            // recovery trusts a sealed segment's file length.
            old.truncate(size).await.map_err(io::Error::from)?;
            old.fdatasync().await.map_err(io::Error::from)?;
            if self.state.borrow().closed {
                // Deleted meanwhile: its directory may already belong to a
                // re-created topic of the same name.
                return Err(io::Error::other("partition closed"));
            }
            let (file, file_len) = self.new_segment_file(segment_base).await?;
            let mut st = self.state.borrow_mut();
            st.file_len = file_len;
            st.sealed_bytes += size;
            st.segments.push(Segment {
                base_offset: segment_base,
                file: Rc::new(file),
                size: 0,
                index: SegmentIndex::new(),
            });
            st.tail.clear();
            drop(st);
            // Only once the old segment is sealed for good: were the new file
            // not made, it would stay active and grow past this index.
            self.seal_in_background(&old, old_base, old_index, segment_base);
            // For retention.ms: the sealed segment may already have expired.
            self.retention_due.notify_all();
        }
        let (file, mut tail, mut pos) = {
            let st = self.state.borrow();
            let active = st.segments.last().expect("a segment");
            match cursor {
                Some(c) => {
                    assert_eq!(c.segment_base, active.base_offset, "a cursor does not outlive a roll");
                    (active.file.clone(), c.tail, c.pos)
                }
                None => (active.file.clone(), st.tail.clone(), active.size),
            }
        };
        let mut messages = 0;
        for chunk in group.iter_mut() {
            assert_eq!(chunk.segment_base, segment_base, "a group is one segment's");
            assert_eq!(pos, chunk.start_pos, "chunks are written in order, each where the last ended");
            chunk.seal(&tail);
            tail = chunk.page_tail().to_vec();
            pos = chunk.end_pos();
            messages += chunk.end_offset - chunk.entries.first().map_or(chunk.end_offset, |e| e.base_offset);
        }
        self.extend_ahead(&file, group.last().expect("a group is not empty").write_end()).await;
        // Neighbouring chunks share a page where one ends mid-page. Give every
        // writer of such a page the same contents (the log's bytes up to the
        // group's end, zeros after), so the writes may run concurrently and
        // complete in any order.
        for i in 0..group.len() {
            let (head, rest) = group.split_at_mut(i + 1);
            let chunk = &mut head[i];
            for next in rest.iter() {
                if chunk.padding_left() == 0 {
                    break;
                }
                chunk.pad_with(next.data());
            }
        }
        let writes: Vec<_> = group
            .iter()
            .map(|chunk| {
                let (buf, at) = chunk.write_buf();
                let file = file.clone();
                glommio::spawn_local(async move {
                    let total = buf.len();
                    match file.write_rc_at(buf, at).await {
                        Ok(written) if written == total => Ok(()),
                        Ok(written) => Err(io::Error::other(format!("short write: {written} of {total} bytes"))),
                        Err(e) => Err(io::Error::from(e)),
                    }
                })
            })
            .collect();
        // Every write must have ended before an error is handled: the caller
        // then cuts the file back, and a write still in flight could land after.
        let mut result = Ok(());
        for w in writes {
            if let Err(e) = w.await {
                result = result.and(Err(e));
            }
        }
        result?;
        Ok(Written { cursor: Cursor { segment_base, pos, tail }, file, messages })
    }

    /// Writes a sealed segment's index files, and the producer snapshot as
    /// of its end (`end`), in a background task. Neither is needed before
    /// the next segment takes writes: a start after a crash rebuilds a
    /// missing index from the log and replays producers from an older
    /// snapshot. Awaited in the flush loop they held every roll for ~18 ms
    /// (four fsyncs on the shard's blocking thread, queued behind other
    /// partitions' retention), during which the partition wrote nothing.
    fn seal_in_background(self: &Rc<Self>, file: &Rc<DmaFile>, base: i64, index: SegmentIndex, end: i64) {
        let producers = self.state.borrow().durable_producers.clone();
        // Weak: a strong reference would keep retention from recycling the
        // file while this task waits (see `advance_start`).
        let file = Rc::downgrade(file);
        let this = self.clone();
        glommio::spawn_local(async move {
            // Serialized with retention, compaction, close and shutdown, so
            // the index never lands after retention removed the segment or
            // compaction rewrote it, nor in a deleted topic's directory, and
            // snapshots are written in log order.
            let Ok(_serial) = this.start_moves.acquire_permit(1).await else { return };
            let (current, snapshot) = {
                let st = this.state.borrow();
                if st.closed {
                    return;
                }
                let unchanged =
                    |s: &Segment| s.base_offset == base && file.upgrade().is_some_and(|f| Rc::ptr_eq(&f, &s.file));
                (st.segments.iter().any(unchanged), end > this.snapshot_end.get())
            };
            if !current && !snapshot {
                return;
            }
            let dir = this.dir.clone();
            let written = glommio::executor()
                .spawn_blocking(move || {
                    let index = current.then(|| index_file::encode(&dir, base, &index));
                    let files: Vec<Replacement> =
                        index.into_iter().flatten().chain(snapshot.then(|| producers.snapshot(&dir, end))).collect();
                    atomic_file::replace(&dir, &files)
                })
                .await;
            match written {
                Ok(()) if snapshot => this.snapshot_end.set(end),
                Ok(()) => {}
                // Not fatal: the next start rebuilds a missing index and
                // replays producers from an older snapshot.
                Err(e) => warn!(
                    dir = %this.dir.display(), segment = base,
                    "cannot write the sealed segment's index files or the producer snapshot: {e}"
                ),
            }
        })
        .detach();
    }

    /// Creates the file of the segment starting at `base`, returning it with
    /// its length: the spare retention left, renamed, when there is one (it
    /// is marked as recycled), else a new file.
    async fn new_segment_file(&self, base: i64) -> io::Result<(DmaFile, u64)> {
        let path = segment::log_path(&self.dir, base);
        let mut file_len = 0;
        let ready = {
            let mut st = self.state.borrow_mut();
            match st.spare {
                Spare::Ready(len) => {
                    st.spare = Spare::Busy;
                    Some(len)
                }
                Spare::Absent | Spare::Busy => None,
            }
        };
        if let Some(len) = ready {
            let (dir, to) = (self.dir.clone(), path.clone());
            match glommio::executor().spawn_blocking(move || recycle::take_spare(&dir, &to)).await {
                Ok(()) => {
                    info!(dir = %self.dir.display(), segment = base, "writing the new segment into a recycled file");
                    file_len = len;
                }
                Err(e) => {
                    warn!(dir = %self.dir.display(), "cannot recycle the spare segment file, creating a new one: {e}")
                }
            }
            self.state.borrow_mut().spare = Spare::Absent;
        }
        let file = segment::open_file(&path).await?;
        let limits = self.limits.get();
        if limits.preallocate && file_len < limits.segment_bytes {
            // The whole segment at once, as Kafka's `preallocate` does; the
            // zeros past the logical end are cut off when it is sealed.
            file.pre_allocate(limits.segment_bytes, false).await.map_err(io::Error::from)?;
            file_len = limits.segment_bytes;
        }
        Ok((file, file_len))
    }

    /// Deletes the segments wholly below `start` (the recorded log start): a
    /// crash between persisting a moved start and unlinking those segments
    /// (`advance_start`) leaves them. Nothing in them can be read, and
    /// retention would count their bytes as log.
    async fn remove_below_start(dir: &Path, segments: &mut Vec<Segment>, start: i64) {
        let below = segments.iter().skip(1).take_while(|s| s.base_offset <= start).count();
        if below == 0 {
            return;
        }
        let gone: Vec<i64> = segments.drain(..below).map(|s| s.base_offset).collect();
        info!(dir = %dir.display(), start, segments = ?gone, "deleting segments a crash left below the log start");
        let d = dir.to_path_buf();
        let removed = glommio::executor()
            .spawn_blocking(move || {
                for base in gone {
                    segment::remove(&d, base)?;
                }
                partition_dir::sync_dir(&d)
            })
            .await;
        // Not fatal: what is left is found, and removed, at the next open.
        if let Err(e) = removed {
            warn!(dir = %dir.display(), "cannot delete the segments below the log start: {e}");
        }
    }

    /// The spare a previous run left (marked again: a crash may have come
    /// before its marking), or none; removes it when recycling is off.
    async fn open_spare(dir: &Path, recycle: bool) -> Spare {
        let d = dir.to_path_buf();
        let found = glommio::executor()
            .spawn_blocking(move || {
                if recycle { recycle::adopt_leftover(&d) } else { recycle::remove_spare(&d).map(|()| None) }
            })
            .await;
        match found {
            Ok(Some(len)) => Spare::Ready(len),
            Ok(None) => Spare::Absent,
            Err(e) => {
                warn!(dir = %dir.display(), "cannot use the spare segment file: {e}");
                Spare::Absent
            }
        }
    }

    /// Makes the active segment's file at least `end` bytes long before a
    /// write up to `end`, extending it by a step (as much as the segment
    /// already holds, within `MIN_AHEAD..=MAX_AHEAD`, and not past
    /// `segment.bytes` unless a batch needs it) with fallocate. The extra
    /// bytes read as zeros, which recovery takes as the end of the log, and
    /// they are cut off when the segment is sealed or the broker stops. When
    /// fallocate fails (a full disk) the write simply grows the file.
    async fn extend_ahead(&self, file: &DmaFile, end: u64) {
        let file_len = self.state.borrow().file_len;
        if end <= file_len {
            return;
        }
        let step = file_len.clamp(MIN_AHEAD, MAX_AHEAD);
        let target = (end + step).min(self.limits.get().segment_bytes.max(end)).div_ceil(PAGE) * PAGE;
        if file.pre_allocate(target, false).await.is_ok() {
            let mut st = self.state.borrow_mut();
            st.file_len = st.file_len.max(target);
        }
    }

    /// Counts `messages` as written and says whether the flush policy wants
    /// an fdatasync before they are acknowledged. With the default
    /// `flush.messages=1` every write is synced.
    fn sync_due(&self, messages: i64) -> bool {
        let mut st = self.state.borrow_mut();
        st.unsynced_messages += messages;
        let limits = self.limits.get();
        st.unsynced_messages >= limits.flush_messages
            || st.last_sync.elapsed().as_millis() >= limits.flush_ms.max(0) as u128
    }

    fn synced(&self) {
        let mut st = self.state.borrow_mut();
        st.unsynced_messages = 0;
        st.last_sync = std::time::Instant::now();
    }

    /// Under a relaxed flush policy, makes sure unsynced writes get their
    /// fdatasync within `flush.ms`.
    fn schedule_sync(self: &Rc<Self>) {
        let delay = u64::try_from(self.limits.get().flush_ms).unwrap_or(0);
        if delay >= u64::MAX / 4 || std::mem::replace(&mut self.state.borrow_mut().sync_timer, true) {
            return;
        }
        let log = self.clone();
        glommio::spawn_local(async move {
            glommio::timer::sleep(std::time::Duration::from_millis(delay)).await;
            let file = log.state.borrow().segments.last().expect("a segment").file.clone();
            match file.fdatasync().await {
                Ok(()) => log.synced(),
                Err(e) => error!(dir = %log.dir.display(), "scheduled fdatasync failed: {e}"),
            }
            log.state.borrow_mut().sync_timer = false;
        })
        .detach();
    }

    /// Forgets idempotent producers silent for `expiration_ms`
    /// (`producer.id.expiration.ms`).
    pub fn expire_producers(&self, now_ms: i64, expiration_ms: i64) -> usize {
        let mut st = self.state.borrow_mut();
        st.durable_producers.expire(now_ms, expiration_ms);
        st.producers.expire(now_ms, expiration_ms)
    }

    /// Drops a cached batch for the shard's cache budget.
    pub fn evict_cached(&self, base: i64) {
        self.state.borrow_mut().cache.evict_front(base);
    }

    /// Makes a written chunk visible: index, cache, high watermark, waiters.
    fn publish(self: &Rc<Self>, mut chunk: Chunk) {
        let mut st = self.state.borrow_mut();
        st.tail = chunk.page_tail().to_vec();
        st.segments.last_mut().expect("a segment").size = chunk.end_pos();
        let interval = self.limits.get().index_interval;
        let active = st.segments.last_mut().expect("a segment");
        for e in &chunk.entries {
            active.index.append(e, interval);
        }
        for (pid, epoch, batch, ts) in std::mem::take(&mut chunk.producers) {
            st.durable_producers.record(pid, epoch, batch, ts);
        }
        let (start_pos, end_offset, entries) = (chunk.start_pos, chunk.end_offset, std::mem::take(&mut chunk.entries));
        let cached = cache_chunk(&mut st.cache, self.cache_budget.limit(), chunk.into_bytes(), start_pos, &entries);
        st.high_watermark = end_offset;
        let retention_due = self.oldest_outgrown(&st) && st.retention_signalled_for != st.segments[0].base_offset;
        if retention_due {
            st.retention_signalled_for = st.segments[0].base_offset;
        }
        let hw = st.high_watermark;
        while st.waiters.front().is_some_and(|(end, _)| *end <= hw) {
            let (_, w) = st.waiters.pop_front().expect("checked");
            let _ = w.try_send(Ok(()));
        }
        drop(st);
        self.cache_budget.charge(&Rc::downgrade(self), &cached);
        self.notify.notify_all();
        if retention_due {
            self.retention_due.notify_all();
        }
    }

    /// Whether `retention.bytes` no longer keeps the oldest sealed segment:
    /// the log without it is still at the limit (the rule of
    /// [`retention::deletable`]). Once per published group, so O(1).
    fn oldest_outgrown(&self, st: &State) -> bool {
        debug_assert_eq!(st.sealed_bytes, sealed_sum(&st.segments), "sealed_bytes follows every change of them");
        let limit = self.limits.get().retention_bytes;
        if limit < 0 || st.segments.len() < 2 {
            return false;
        }
        let active = st.segments.last().expect("a segment").size;
        st.sealed_bytes + active - st.segments[0].size >= limit as u64
    }

    /// A write failed: nothing pending was made durable. Roll the log end back
    /// to the durable end and fail every waiter; acknowledged data is intact.
    fn fail(&self, e: &io::Error) {
        error!(dir = %self.dir.display(), "partition write failed, failing pending produce requests: {e}");
        let mut st = self.state.borrow_mut();
        st.pending.clear();
        st.next_offset = st.high_watermark;
        st.producers = st.durable_producers.clone();
        let active = st.segments.last().expect("a segment");
        let (base, size) = (active.base_offset, active.size);
        st.write_segment = base;
        st.write_pos = size;
        let err = StorageError::Io(e.to_string());
        for (_, w) in st.waiters.drain(..) {
            let _ = w.try_send(Err(err.clone()));
        }
    }

    /// Takes the topic's altered settings (IncrementalAlterConfigs): each
    /// applies from the next point that reads it, e.g. `segment.bytes` at
    /// the next append's roll check, `flush.ms` at the next sync decision.
    pub fn set_limits(&self, limits: Limits) {
        self.limits.set(limits);
    }

    /// Closes the log (its topic was deleted): pending appends fail, and this
    /// resolves once no write is in flight, so the directory can go.
    pub async fn close(&self) {
        let idle = self.idle.notified();
        let flushing = {
            let mut st = self.state.borrow_mut();
            st.closed = true;
            st.pending.clear();
            st.cache.clear();
            for (_, w) in st.waiters.drain(..) {
                let _ = w.try_send(Err(StorageError::Closed));
            }
            st.flushing
        };
        if flushing {
            idle.await;
        }
        // Whatever holds the segment files (a seal, retention, compaction)
        // ends before the directory can go; those still waiting see `closed`.
        let _serial = self.start_moves.acquire_permit(1).await;
    }

    /// Clean shutdown: lets everything appended so far reach the disk, then
    /// refuses further appends, cuts the active segment to its logical size
    /// and writes its index files, so the next start need not scan it.
    pub async fn shutdown(&self) -> io::Result<()> {
        self.stopping.set(true);
        // Idle, and holding the permit, so that sealed segments' snapshots
        // (written under it) go first: this one is the latest.
        let _serial = loop {
            loop {
                let idle = self.idle.notified();
                if !self.state.borrow().flushing {
                    break;
                }
                idle.await;
            }
            let permit = self.start_moves.acquire_permit(1).await.map_err(io::Error::from)?;
            if !self.state.borrow().flushing {
                break permit;
            }
        };
        let (file, size, base, index) = {
            let mut st = self.state.borrow_mut();
            st.closed = true;
            let active = st.segments.last().expect("a segment");
            (active.file.clone(), active.size, active.base_offset, active.index.clone())
        };
        file.truncate(size).await.map_err(io::Error::from)?;
        file.fdatasync().await.map_err(io::Error::from)?;
        let (dir, producers, end) = {
            let st = self.state.borrow();
            (self.dir.clone(), st.durable_producers.clone(), st.high_watermark)
        };
        glommio::executor()
            .spawn_blocking(move || {
                let mut files = vec![producers.snapshot(&dir, end)];
                if index.next_offset.is_some() {
                    files.extend(index_file::encode(&dir, base, &index));
                }
                atomic_file::replace(&dir, &files)
            })
            .await?;
        self.snapshot_end.set(end);
        Ok(())
    }

    /// Reads whole batches from the one containing `offset`, up to
    /// `max_bytes`; with `min_one`, at least one batch even if it is larger
    /// (KIP-74: only the first partition of a fetch response gets this).
    pub async fn read(&self, offset: i64, max_bytes: usize, min_one: bool) -> Result<Fetched, ReadError> {
        let (segs, hw, start) = {
            let st = self.state.borrow();
            let (hw, start) = (st.high_watermark, st.log_start_offset);
            if offset < start || offset > hw {
                return Err(ReadError::OutOfRange { offset, start, end: hw });
            }
            let empty = Fetched { pieces: Vec::new(), high_watermark: hw, log_start_offset: start };
            if offset == hw {
                return Ok(empty);
            }
            if let Some(pieces) = st.cache.read(offset, max_bytes, min_one) {
                return Ok(Fetched { pieces, ..empty });
            }
            // The segment holding `offset`, where its index says to start, and
            // the segments after it (compaction can leave a segment with no
            // batch at or after `offset`: the read then goes on to the next).
            let i = st.segments.partition_point(|s| s.base_offset <= offset) - 1;
            let segs: Vec<(Rc<DmaFile>, u64, u64)> = st.segments[i..]
                .iter()
                .enumerate()
                .map(|(k, s)| (s.file.clone(), if k == 0 { s.index.floor_position(offset) } else { 0 }, s.size))
                .collect();
            (segs, hw, start)
        };
        let io_err = |e: io::Error| ReadError::Io(e.to_string());
        for (file, pos, end) in segs {
            if let Some((at, first)) = walk::find(&file, pos, end, |p| p.last_offset >= offset).await.map_err(io_err)? {
                let records = walk::read_from(&file, at, &first, end, max_bytes, min_one).await.map_err(io_err)?;
                return Ok(Fetched { pieces: vec![records], high_watermark: hw, log_start_offset: start });
            }
        }
        Ok(Fetched { pieces: Vec::new(), high_watermark: hw, log_start_offset: start })
    }

    /// Deletes the oldest sealed segments that `retention.ms` (against the
    /// segment's largest timestamp) or `retention.bytes` no longer keep.
    /// Returns how many segments went.
    pub async fn enforce_retention(&self, now_ms: i64, retention_ms: i64, retention_bytes: i64) -> io::Result<usize> {
        let new_start = {
            let st = self.state.borrow();
            let sealed = &st.segments[..st.segments.len() - 1];
            let infos: Vec<SegmentInfo> =
                sealed.iter().map(|s| SegmentInfo { size: s.size, max_timestamp: s.index.max_timestamp }).collect();
            let total = st.segments.iter().map(|s| s.size).sum();
            let n = retention::deletable(&infos, total, now_ms, retention_ms, retention_bytes);
            if n == 0 {
                return Ok(0);
            }
            st.segments[n].base_offset.max(st.log_start_offset)
        };
        self.advance_start(new_start, Mover::Retention).await
    }

    /// DeleteRecords: moves the log start offset up to `offset` (-1: the high
    /// watermark) and deletes the segments wholly below it. Returns the new
    /// low watermark.
    pub async fn delete_records(&self, offset: i64) -> Result<i64, ReadError> {
        let (hw, start) = {
            let st = self.state.borrow();
            (st.high_watermark, st.log_start_offset)
        };
        let target = if offset == -1 { hw } else { offset };
        if target < 0 || target > hw {
            return Err(ReadError::OutOfRange { offset, start, end: hw });
        }
        if target > start || self.start_unsynced.get() {
            self.advance_start(target, Mover::DeleteRecords).await.map_err(|e| ReadError::Io(e.to_string()))?;
        }
        Ok(self.log_start_offset())
    }

    /// Compacts the sealed segments (`cleanup.policy=compact`): every record
    /// not the latest of its key, and tombstones older than
    /// `tombstone_cutoff_ms`, go. Each changed segment is rewritten to a new
    /// file that atomically replaces the old one; reads in flight keep the
    /// old file open. The active segment is left alone, as in Kafka. Returns
    /// how many segments were rewritten.
    pub async fn compact(&self, tombstone_cutoff_ms: i64) -> io::Result<usize> {
        // One segment-list change at a time (retention, DeleteRecords).
        let _serial = self.start_moves.acquire_permit(1).await.map_err(io::Error::from)?;
        let segments: Vec<(i64, Rc<DmaFile>, u64)> = {
            let st = self.state.borrow();
            st.segments.iter().map(|s| (s.base_offset, s.file.clone(), s.size)).collect()
        };
        if segments.len() < 2 {
            return Ok(0);
        }
        // Nothing new to clean: no segment sealed since the last pass and no
        // tombstone waiting to expire. (Kafka's dirty-ratio trigger, simplified.)
        let active_base = segments[segments.len() - 1].0;
        if self.compacted_at.get() == Some(active_base) && !self.young_tombstones.get() {
            return Ok(0);
        }
        // Records are decoded (and decompressed) on a blocking thread, a
        // window of ~1 MiB at a time, so the shard goes on serving.
        let mut young_tombstones = false;
        let mut latest = compaction::LatestByKey::new();
        for (_, file, size) in &segments {
            let mut windows = walk::Windows::new(file, 0, *size);
            while let Some((_, window)) = windows.next().await? {
                if self.abandon_compaction() {
                    return Ok(0);
                }
                latest.extend(glommio::executor().spawn_blocking(move || compaction::note_window(&window)).await);
            }
        }
        let latest = Arc::new(latest);
        let mut rewritten = 0;
        for (base, file, size) in &segments[..segments.len() - 1] {
            let mut out = Vec::with_capacity(*size as usize);
            let mut windows = walk::Windows::new(file, 0, *size);
            while let Some((_, window)) = windows.next().await? {
                if self.abandon_compaction() {
                    return Ok(rewritten);
                }
                let latest = latest.clone();
                let (kept, young) = glommio::executor()
                    .spawn_blocking(move || compaction::clean_window(&latest, &window, tombstone_cutoff_ms))
                    .await;
                out.extend_from_slice(&kept);
                young_tombstones |= young;
            }
            if out.len() as u64 == *size {
                continue;
            }
            if self.abandon_compaction() {
                return Ok(rewritten);
            }
            let mut index = SegmentIndex::new();
            let mut pos = 0usize;
            while let Some(p) = batch::peek(&out[pos..]) {
                let e = BatchEntry {
                    base_offset: p.base_offset,
                    last_offset: p.last_offset,
                    max_timestamp: p.max_timestamp,
                    segment_base: *base,
                    position: pos as u64,
                    len: p.total_len as u32,
                };
                index.append(&e, self.limits.get().index_interval);
                pos += p.total_len;
            }
            let (dir, base, len, ix) = (self.dir.clone(), *base, out.len() as u64, index.clone());
            glommio::executor()
                .spawn_blocking(move || {
                    // The log file first: a crash between the renames leaves
                    // the new log with the old index, which recovery rebuilds.
                    let log = Replacement { path: segment::log_path(&dir, base), bytes: out };
                    let files: Vec<Replacement> =
                        std::iter::once(log).chain(index_file::encode(&dir, base, &ix)).collect();
                    atomic_file::replace(&dir, &files)
                })
                .await?;
            let new_file = segment::open_file(&segment::log_path(&self.dir, base)).await?;
            let mut st = self.state.borrow_mut();
            let last = st.segments.len() - 1;
            if let Some(seg) = st.segments[..last].iter_mut().find(|s| s.base_offset == base) {
                let old_size = seg.size;
                seg.file = Rc::new(new_file);
                seg.size = len;
                seg.index = index;
                st.sealed_bytes = st.sealed_bytes - old_size + len;
            }
            rewritten += 1;
        }
        self.compacted_at.set(Some(active_base));
        self.young_tombstones.set(young_tombstones);
        if rewritten > 0 {
            // The cache holds batches as produced; readers now get the
            // compacted ones from the segments.
            self.state.borrow_mut().cache.clear();
            info!(dir = %self.dir.display(), segments = rewritten, keys = latest.len(), "compacted");
        }
        Ok(rewritten)
    }

    /// Whether a compaction pass should stop where it is: the topic is being
    /// deleted (its directory may go, and be made again for a new topic of
    /// the same name, once the pass lets go), or the broker is stopping.
    /// Close and shutdown wait for the pass; what it rewrote is complete.
    fn abandon_compaction(&self) -> bool {
        self.state.borrow().closed || self.stopping.get()
    }

    /// Moves the log start offset to `new_start` (persisted first), then
    /// deletes the sealed segments that lie wholly below it. Returns how many
    /// segments were deleted.
    async fn advance_start(&self, new_start: i64, mover: Mover) -> io::Result<usize> {
        // One advance at a time (retention and DeleteRecords may race), so a
        // smaller start offset is never persisted after a larger one.
        let _serial = self.start_moves.acquire_permit(1).await.map_err(io::Error::from)?;
        if self.state.borrow().closed {
            return Ok(0);
        }
        if new_start <= self.log_start_offset() {
            if self.start_unsynced.get() {
                let dir = self.dir.clone();
                glommio::executor().spawn_blocking(move || partition_dir::sync_dir(&dir)).await?;
                self.start_unsynced.set(false);
            }
            return Ok(0);
        }
        // A start open replays idempotent producers from the snapshot only
        // if the snapshot ends inside the log (see `rebuild_producers`). The
        // segments going may hold the only record of some producers' last
        // batches: when the snapshot on disk ends before the first segment
        // left (its write failed, or the roll's is still queued), one as of
        // now is made durable first, or a crash would forget those producers
        // and store their retried batches twice. (Under a relaxed flush
        // policy the high watermark may be ahead of the synced log, and a
        // power loss then leaves a snapshot that does not fit the log, as it
        // leaves acknowledged records lost.)
        let snapshot = {
            let st = self.state.borrow();
            let first_left =
                st.segments.iter().rev().find(|s| s.base_offset <= new_start).map_or(new_start, |s| s.base_offset);
            (first_left > self.snapshot_end.get())
                .then(|| (st.durable_producers.snapshot(&self.dir, st.high_watermark), st.high_watermark))
        };
        let snapshot_at = snapshot.as_ref().map(|(_, end)| *end);
        // The start is durable with the directory fsync that ends this move,
        // before it returns (and DeleteRecords answers). Retention's order
        // does not matter: on open the recorded start is clamped to the
        // first segment. A snapshot that could not be written comes back.
        let dir = self.dir.clone();
        let (persisted, unwritten) = glommio::executor()
            .spawn_blocking(move || {
                if let Some((file, _)) = snapshot
                    && let Err(e) = atomic_file::replace(&dir, std::slice::from_ref(&file))
                {
                    return (Err(e), Some(file));
                }
                (start_offset::write_unsynced(&dir, new_start), None)
            })
            .await;
        if unwritten.is_none()
            && let Some(end) = snapshot_at
        {
            self.snapshot_end.set(self.snapshot_end.get().max(end));
        }
        let recorded = match persisted {
            Ok(()) => true,
            // On a full disk retention must still free space. A start on a
            // segment boundary (where retention moves it) needs no record:
            // once the segments below are gone, the open derives it from
            // the first segment. (A crash mid-deletion may then leave a
            // start a segment lower, whose records read back again.) Not
            // for DeleteRecords, whose answer promises a durable start.
            Err(e)
                if mover == Mover::Retention
                    && e.raw_os_error() == Some(libc::ENOSPC)
                    && self.state.borrow().segments.iter().any(|s| s.base_offset == new_start) =>
            {
                warn!(dir = %self.dir.display(), start = new_start, "disk full: deleting segments without recording the new log start");
                false
            }
            Err(e) => return Err(e),
        };
        let (removed, recycled): (Vec<i64>, Option<i64>) = {
            let mut st = self.state.borrow_mut();
            if new_start <= st.log_start_offset {
                return Ok(0);
            }
            st.log_start_offset = new_start;
            self.start_unsynced.set(true);
            let mut n = 0;
            while n + 1 < st.segments.len() && st.segments[n + 1].base_offset <= new_start {
                n += 1;
            }
            let gone: Vec<Segment> = st.segments.drain(..n).collect();
            st.sealed_bytes -= gone.iter().map(|s| s.size).sum::<u64>();
            // A file may be recycled only when no read in flight holds it:
            // the next segment's writes would change what that read returns. No new reader
            // can find it once it has left `segments`.
            // Not on a full disk: the space must be freed.
            let recycled = if recorded && self.limits.get().recycle && st.spare == Spare::Absent {
                gone.iter().rev().find(|s| Rc::strong_count(&s.file) == 1).map(|s| s.base_offset)
            } else {
                None
            };
            if recycled.is_some() {
                st.spare = Spare::Busy;
            }
            (gone.iter().map(|s| s.base_offset).collect(), recycled)
        };
        if !removed.is_empty() {
            info!(dir = %self.dir.display(), start = new_start, segments = ?removed, "deleting segments below the log start");
        }
        let dir = self.dir.clone();
        let bases = removed.clone();
        // A snapshot the full disk had no room for is written after the
        // deletions free space. (A crash in between forgets the producers
        // whose last batches they held.)
        let (spare, late_written) = glommio::executor()
            .spawn_blocking(move || -> (io::Result<Option<u64>>, bool) {
                let mut spare = None;
                let deleted = || -> io::Result<()> {
                    for base in bases {
                        if Some(base) == recycled {
                            spare = recycle::keep_or_delete(&dir, &segment::log_path(&dir, base))?;
                            index_file::remove(&dir, base)?;
                        } else {
                            segment::remove(&dir, base)?;
                        }
                    }
                    Ok(())
                };
                let deleted = deleted();
                let late = unwritten.map(|file| atomic_file::replace_unsynced(std::slice::from_ref(&file)));
                // One directory fsync for the start offset's rename, the late
                // snapshot's and every removal, even after a failed one.
                let synced = partition_dir::sync_dir(&dir);
                if let Some(Err(e)) = &late {
                    warn!(dir = %dir.display(), "cannot write the producer snapshot after freeing space: {e}");
                }
                let late_written = synced.is_ok() && matches!(late, Some(Ok(())));
                (synced.and(deleted).map(|()| spare), late_written)
            })
            .await;
        if let Some(end) = snapshot_at.filter(|_| late_written) {
            self.snapshot_end.set(self.snapshot_end.get().max(end));
        }
        if recycled.is_some() {
            self.state.borrow_mut().spare = match spare {
                Ok(Some(len)) => Spare::Ready(len),
                _ => Spare::Absent,
            };
        }
        spare?;
        self.start_unsynced.set(false);
        Ok(removed.len())
    }

    /// The first offset whose record timestamp is at least `ts`, with that
    /// timestamp, for ListOffsets by time; `None` if every record is older.
    /// The time index finds the segment and where to start; the walk reads
    /// batch headers from there.
    /// A compressed batch's records are read up to `max_decompressed` bytes.
    pub async fn offset_for_timestamp(
        &self,
        ts: i64,
        max_decompressed: usize,
    ) -> Result<Option<(i64, i64)>, ReadError> {
        let found = {
            let st = self.state.borrow();
            st.segments.iter().find_map(|s| s.index.time_floor_position(ts).map(|pos| (s.file.clone(), pos, s.size)))
        };
        let Some((file, pos, end)) = found else {
            return Ok(None);
        };
        let io_err = |e: io::Error| ReadError::Io(e.to_string());
        let Some((at, first)) = walk::find(&file, pos, end, |p| p.max_timestamp >= ts).await.map_err(io_err)? else {
            return Ok(None);
        };
        let data = walk::read_from(&file, at, &first, end, first.total_len, true).await.map_err(io_err)?;
        let start = self.log_start_offset();
        let exact = batch::parse_header(&data).ok().and_then(|h| {
            let one = data.get(..h.total_len)?;
            batch_walk::first_at_or_after(one, &h, ts, max_decompressed)
        });
        // A batch whose records do not walk answers with its first offset.
        let answer = exact.unwrap_or((first.base_offset, first.max_timestamp));
        // Records below the log start are gone even if their segment is not.
        Ok(Some((answer.0.max(start), answer.1)))
    }

    /// The first record carrying the log's largest timestamp, with that
    /// timestamp (ListOffsets -3, as Kafka answers it: the earliest segment
    /// holding the maximum, its first batch reaching it, that batch's first
    /// record at it); `None` for a log without records.
    pub async fn offset_of_max_timestamp(&self, max_decompressed: usize) -> Result<Option<(i64, i64)>, ReadError> {
        let max = self.state.borrow().segments.iter().map(|s| s.index.max_timestamp).max().unwrap_or(-1);
        if max < 0 {
            return Ok(None);
        }
        self.offset_for_timestamp(max, max_decompressed).await
    }
}

/// Bytes in the sealed segments of `segments` (all but the last, active one).
fn sealed_sum(segments: &[Segment]) -> u64 {
    segments[..segments.len() - 1].iter().map(|s| s.size).sum()
}

/// Puts a written chunk's batches into the cache. Cache entries are slices
/// of the chunk, which keeps the whole chunk alive; when only the newest
/// batches of a large chunk (a burst) fit in the cache, they are copied out so
/// that the rest of the chunk is freed rather than pinned.
/// Returns the (base offset, bytes) of the batches it cached.
fn cache_chunk(
    cache: &mut BatchCache,
    limit: usize,
    data: Bytes,
    start_pos: u64,
    entries: &[BatchEntry],
) -> Vec<(i64, usize)> {
    let Some(last) = entries.last() else {
        return Vec::new();
    };
    // The newest batches that fit (always at least the last one).
    let mut first = entries.len() - 1;
    let mut kept = last.len as usize;
    while first > 0 && kept + entries[first - 1].len as usize <= limit {
        first -= 1;
        kept += entries[first].len as usize;
    }
    if first == 0 {
        return push_entries(cache, &data, start_pos, entries);
    }
    // Older batches of this chunk are skipped, so older cached ones must go
    // too: the cache holds a contiguous suffix of the log.
    cache.clear();
    let from = entries[first].position;
    let copy = Bytes::copy_from_slice(&data[(from - start_pos) as usize..]);
    push_entries(cache, &copy, from, &entries[first..])
}

fn push_entries(cache: &mut BatchCache, data: &Bytes, start_pos: u64, entries: &[BatchEntry]) -> Vec<(i64, usize)> {
    entries
        .iter()
        .map(|e| {
            let rel = (e.position - start_pos) as usize;
            cache.push(e.base_offset, e.last_offset, data.slice(rel..rel + e.len as usize));
            (e.base_offset, e.len as usize)
        })
        .collect()
}

/// Recovers one segment: from its index files when they check out (a
/// sealed segment then needs no read at all beyond one header, the active
/// one is scanned only from its last index entry), otherwise by a full scan.
/// Rebuilt or resumed indexes are written back so the next start is quick.
async fn recover_segment(
    dir: &Path,
    file: &DmaFile,
    base: i64,
    next_base: Option<i64>,
    clean: bool,
    interval: u64,
) -> io::Result<recovery::ScanResult> {
    let size = file.file_size().await.map_err(io::Error::from)?;
    let d = dir.to_path_buf();
    let loaded = glommio::executor().spawn_blocking(move || index_file::read(&d, base)).await.unwrap_or_else(|e| {
        warn!(dir = %dir.display(), segment = base, "cannot read index files, rebuilding them: {e}");
        None
    });
    // Only the active segment can hold a recycled file's old bytes (a sealed
    // one was cut to its logical size before its successor existed). If the
    // mark cannot be read, the stricter scan of a recycled file is safe for
    // any active segment.
    let recycled = next_base.is_none() && {
        let path = segment::log_path(dir, base);
        glommio::executor().spawn_blocking(move || recycle::is_recycled(&path)).await.unwrap_or_else(|e| {
            warn!(dir = %dir.display(), segment = base, "cannot tell whether the segment file was recycled: {e}");
            true
        })
    };
    let mut from = recovery::ScanFrom::start(base, recycled);
    let mut trusted = false;
    if let Some(mut index) = loaded.and_then(|l| SegmentIndex::from_files(l, size)) {
        let last = *index.offsets.last().expect("loaded indexes are not empty");
        let head = file.read_at(last.position, HEADER_LEN).await.map_err(io::Error::from)?;
        if batch::peek(&head).is_some_and(|p| p.base_offset == last.offset) {
            let entries = index.offsets.len();
            let resume = index.resume_point();
            let resumed = recovery::ScanFrom {
                position: resume.position,
                offset: resume.offset,
                index,
                verify_crc: next_base.is_none() && !clean,
                recycled,
            };
            if let Some(next) = next_base {
                // Sealed: fsynced and cut to size before its successor
                // existed. Its index files, though, are written after the
                // roll, in the background: a crash before they land can
                // leave files from when it was the active segment (written
                // at a start or shutdown), which end early. So walk the
                // batch headers from the last entry to the end (normally one
                // batch) and write the index back if it grew.
                let mut scan = recovery::scan(file, base, resumed, false, interval).await?;
                if scan.torn.is_none() {
                    if scan.index.offsets.len() > entries {
                        info!(dir = %dir.display(), segment = base, "extending the sealed segment's stale index files");
                        write_index(dir, base, &scan.index).await;
                    }
                    scan.index.next_offset = Some(next);
                    return Ok(scan);
                }
                // Not what its index says: scan it whole, as without one.
            } else {
                from = resumed;
                trusted = true;
            }
        }
    }
    if !trusted && size > 0 {
        info!(dir = %dir.display(), segment = base, "rebuilding the segment's indexes from the log");
    }
    let scan = recovery::scan(file, base, from, next_base.is_none(), interval).await?;
    if scan.index.next_offset.is_some() {
        write_index(dir, base, &scan.index).await;
    }
    Ok(scan)
}

/// Writes a recovered segment's index files back, so the next start is quick
/// (not fatal if it cannot: that start rebuilds them again).
async fn write_index(dir: &Path, base: i64, index: &SegmentIndex) {
    let (d, ix) = (dir.to_path_buf(), index.clone());
    if let Err(e) = glommio::executor().spawn_blocking(move || index_file::write(&d, base, &ix)).await {
        warn!(dir = %dir.display(), segment = base, "cannot write index files: {e}");
    }
}

/// Idempotent producers' state on open: the snapshot (if it is valid for
/// this log), then every idempotent batch after it, read from the log.
/// Returns the state and the end of the snapshot it started from.
async fn rebuild_producers(dir: &Path, segments: &[Segment], log_end: i64) -> io::Result<(ProducerState, Option<i64>)> {
    let d = dir.to_path_buf();
    let snapshot = glommio::executor().spawn_blocking(move || ProducerState::read_snapshot(&d)).await;
    let first = segments.first().expect("a segment").base_offset;
    let (mut state, from, used) = match snapshot {
        Some((s, end)) if end <= log_end && end >= first => (s, end, Some(end)),
        // No usable snapshot: what the active segment holds (older state
        // is lost, and such producers may start anywhere, as in Kafka).
        _ => (ProducerState::default(), segments.last().expect("a segment").base_offset, None),
    };
    if from >= log_end {
        return Ok((state, used));
    }
    for (i, seg) in segments.iter().enumerate() {
        if segments.get(i + 1).is_some_and(|next| next.base_offset <= from) {
            continue;
        }
        let start = if seg.base_offset < from { seg.index.floor_position(from) } else { 0 };
        walk::for_each(&seg.file, start, seg.size, |_, b| {
            if let Ok(h) = batch::parse_header(b)
                && h.is_idempotent()
                && h.last_offset() >= from
            {
                let batch = ProducerBatch {
                    first_seq: h.base_sequence,
                    last_seq: h.last_sequence(),
                    first_offset: h.base_offset,
                    last_offset: h.last_offset(),
                };
                state.record(h.producer_id, h.producer_epoch, batch, h.max_timestamp);
            }
        })
        .await?;
    }
    Ok((state, used))
}

fn concat(parts: Vec<Bytes>) -> Bytes {
    match parts.len() {
        0 => Bytes::new(),
        1 => parts.into_iter().next().expect("one"),
        _ => {
            let mut out = BytesMut::with_capacity(parts.iter().map(Bytes::len).sum());
            for p in parts {
                out.extend_from_slice(&p);
            }
            out.freeze()
        }
    }
}
