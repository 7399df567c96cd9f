//! One partition's log, owned by one shard: appends assign offsets and queue
//! bytes; a flusher task writes whole aligned pages with direct I/O and
//! fdatasyncs, so every produce request that arrives while a sync is in
//! flight shares the next one (group commit). Only durable batches are
//! visible to readers. Consumers read up to the high watermark; a log with
//! one replica moves it with its durable end, a replicated one (issue 24)
//! only where its replicas say (see `high_watermark.rs`).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use glommio::channels::local_channel;
use glommio::io::DmaFile;
use glommio::sync::Semaphore;
use thiserror::Error;

use super::cache::BatchCache;
use super::cache_budget::CacheBudget;
use super::chunk::Chunk;
use super::epoch_cache::EpochCache;
use super::io_failure::IoFailure;
use super::producer_state::{ProducerState, SequenceError};
use super::segment::Segment;
use crate::broker::notify::Notify;

mod compact;
mod epochs;
#[cfg(test)]
mod fault_tests;
mod high_watermark;
mod invariants;
mod lifecycle;
mod open;
mod read;
#[cfg(test)]
mod replica_tests;
mod start;
#[cfg(test)]
mod tests;
mod truncate;
mod write;

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
    Io(IoFailure),
    #[error("the partition was closed")]
    Closed,
    /// Offsets waited for are gone: a failed write (or a truncation) cut
    /// the log back below them before anyone waited.
    #[error("offsets below {end} were cut off: the log ends at {log_end}")]
    CutOff { end: i64, log_end: i64 },
    /// The log is being cut back (a follower's truncation): no appends.
    #[error("the partition log is being truncated")]
    Truncating,
    /// A leader's epoch older than one the log already holds: another
    /// replica leads now.
    #[error("leader epoch {epoch} is older than the log's {latest}")]
    StaleEpoch { epoch: i32, latest: i32 },
    #[error("{0}")]
    Sequence(#[from] SequenceError),
    /// The replica stopped leading while the request waited for its
    /// followers: the records it waited for may never be committed.
    #[error("this replica no longer leads the partition")]
    LeaderMoved,
    /// A follower append's batches do not fit the log.
    #[error("batches refused: {0}")]
    Invalid(String),
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
    Io(IoFailure),
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
    /// The log end: the offset the next batch gets, pending ones included.
    next_offset: i64,
    /// The end of what is on disk and fdatasynced (published): replicas
    /// read up to here.
    durable_end: i64,
    /// The end of what consumers may read: the durable end itself unless
    /// `replicated`, else what every in-sync replica holds.
    high_watermark: i64,
    /// The high watermark is set by replication, not by the durable end.
    replicated: bool,
    /// A replicated log's high watermark may move up to here (and never
    /// past the durable end): on a leader the lowest end its in-sync
    /// followers hold (`i64::MAX` when it is alone in sync), on a follower
    /// the leader's high watermark.
    hw_bound: i64,
    log_start_offset: i64,
    /// Which leader epoch began writing at which offset, as of everything
    /// appended (pending included); persisted before the first write of an
    /// epoch's batches (see `epochs.rs`).
    epochs: EpochCache,
    /// The epoch on disk in `leader-epoch-checkpoint` is behind `epochs`.
    epochs_dirty: bool,
    /// The leader epoch a leader's appends are stamped with.
    leader_epoch: i32,
    /// A truncation is cutting the log: appends are refused until it ends.
    truncating: bool,
    /// The replica follows another (`become_follower`): it takes only its
    /// leader's batches, never a producer's, until `become_leader`.
    following: bool,
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
    /// acks=all produce requests waiting for the high watermark to reach
    /// their end, ordered by that end.
    hw_waiters: VecDeque<(i64, Waiter)>,
    cache: BatchCache,
    closed: bool,
    /// Messages written but not yet fdatasynced (relaxed flush policy only).
    unsynced_messages: i64,
    last_sync: std::time::Instant,
    /// A delayed fdatasync is scheduled.
    sync_timer: bool,
    /// The last write failed and none has succeeded since: the log's disk
    /// is full or failing (a leader then gives its partition up, see
    /// `replication::isr`).
    write_failing: bool,
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
    file_changes: Semaphore,
    /// One write of `leader-epoch-checkpoint` at a time.
    epoch_file: Semaphore,
    /// Truncations so far: a producer snapshot taken before one (a sealed
    /// segment's, written in the background) describes a history that is
    /// gone, and is not written.
    truncations: Cell<u64>,
    /// A truncation whose file changes failed part-way (see `truncate.rs`).
    unfinished_cut: Cell<Option<truncate::Unfinished>>,
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
    /// The partition's directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
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

    /// Takes the topic's altered settings (IncrementalAlterConfigs): each
    /// applies from the next point that reads it, e.g. `segment.bytes` at
    /// the next append's roll check, `flush.ms` at the next sync decision.
    pub fn set_limits(&self, limits: Limits) {
        self.limits.set(limits);
    }
}

/// Bytes in the sealed segments of `segments` (all but the last, active one).
fn sealed_sum(segments: &[Segment]) -> u64 {
    segments[..segments.len() - 1].iter().map(|s| s.size).sum()
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
