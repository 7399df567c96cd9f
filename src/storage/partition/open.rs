//! Opening a partition log: recovering its segments (from index files
//! when they check out, else by scanning), the idempotent producers' state,
//! the log start, and the spare segment.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use glommio::io::DmaFile;
use glommio::sync::Semaphore;
use tracing::{info, warn};
use uuid::Uuid;

use crate::broker::notify::Notify;
use crate::clock::now_ms;
use crate::protocol::batch::{self, HEADER_LEN};
use crate::storage::cache::BatchCache;
use crate::storage::cache_budget::CacheBudget;
use crate::storage::chunk::PAGE;
use crate::storage::index::SegmentIndex;
use crate::storage::index_file;
use crate::storage::partition_dir;
use crate::storage::producer_state::{ProducerBatch, ProducerState};
use crate::storage::recovery;
use crate::storage::recycle;
use crate::storage::segment::{self, Segment};
use crate::storage::start_offset;
use crate::storage::walk;

use super::*;

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
        let (mut segments, expected) = recover_segments(&dir, &bases, clean, limits.index_interval).await?;
        let (tail, file_len) = active_tail(segments.last().expect("at least one segment"), &limits).await?;
        // DeleteRecords or retention may have moved the start into a segment.
        let d = dir.clone();
        let recorded = glommio::executor().spawn_blocking(move || start_offset::read(&d)).await?;
        let log_start_offset = recorded.unwrap_or(i64::MIN).clamp(segments[0].base_offset, expected);
        if expected > segments[0].base_offset {
            info!(dir = %dir.display(), segments = segments.len(), start = log_start_offset, end = expected, "recovered partition");
        }
        let (producers, snapshot_end) = rebuild_producers(&dir, &segments, expected, Replay::ActiveSegment).await?;
        Self::remove_below_start(&dir, &mut segments, log_start_offset).await;
        let (epochs, epochs_dirty) = super::epochs::load_epochs(&dir, &segments, log_start_offset, expected).await?;
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
            durable_end: expected,
            high_watermark: expected,
            replicated: false,
            hw_bound: i64::MAX,
            log_start_offset,
            leader_epoch: epochs.latest_epoch().unwrap_or(0),
            epochs,
            epochs_dirty,
            truncating: false,
            following: false,
            tail,
            pending: VecDeque::new(),
            file_len,
            flushing: false,
            waiters: VecDeque::new(),
            hw_waiters: VecDeque::new(),
            cache: BatchCache::new(cache_budget.limit()),
            closed: false,
            unsynced_messages: 0,
            last_sync: std::time::Instant::now(),
            sync_timer: false,
            write_failing: false,
        };
        state.check_invariants();
        Ok(Rc::new(Self {
            dir,
            limits: Cell::new(limits),
            notify,
            retention_due,
            idle: Rc::new(Notify::default()),
            file_changes: Semaphore::new(1),
            epoch_file: Semaphore::new(1),
            truncations: Cell::new(0),
            unfinished_cut: Cell::new(None),
            start_unsynced: Cell::new(false),
            snapshot_end: Cell::new(snapshot_end.unwrap_or(i64::MIN)),
            stopping: Cell::new(false),
            cache_budget,
            compacted_at: Cell::new(None),
            young_tombstones: Cell::new(false),
            state: RefCell::new(state),
        }))
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
}

/// Recovers the segments named `bases` in order, each checked (see
/// [`recover_segment`]) and cut where it is torn; a segment that does not
/// continue the log, and every one after a torn one, is removed. Returns
/// them and the log end.
async fn recover_segments(
    dir: &Path,
    bases: &[i64],
    clean: bool,
    index_interval: u64,
) -> io::Result<(Vec<Segment>, i64)> {
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
        let file = segment::open_file(&segment::log_path(dir, base)).await?;
        let scan = recover_segment(dir, &file, base, bases.get(i + 1).copied(), clean, index_interval).await?;
        report_cut(dir, base, expected, &scan);
        if scan.valid_len < scan.file_len {
            file.truncate(scan.valid_len).await.map_err(io::Error::from)?;
            file.fdatasync().await.map_err(io::Error::from)?;
        }
        expected = scan.index.next_offset.unwrap_or(expected);
        let torn = scan.torn.is_some();
        segments.push(Segment { base_offset: base, file: Rc::new(file), size: scan.valid_len, index: scan.index });
        if torn && i + 1 < bases.len() {
            cut_at = Some(i + 1);
            break;
        }
    }
    for &base in cut_at.map_or(&[][..], |from| &bases[from..]) {
        warn!(dir = %dir.display(), segment = base, "removing segment after a corrupt one");
        let d = dir.to_path_buf();
        glommio::executor().spawn_blocking(move || segment::remove(&d, base)).await?;
    }
    Ok((segments, expected))
}

/// Logs what recovery cuts off a segment's end, and why.
fn report_cut(dir: &Path, base: i64, expected: i64, scan: &recovery::ScanResult) {
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
}

/// The active segment's last partial page (rewritten with the next direct
/// write) and its file's length, reserving `segment.bytes` for an empty one
/// when `preallocate` asks.
pub(super) async fn active_tail(active: &Segment, limits: &Limits) -> io::Result<(Vec<u8>, u64)> {
    let mut file_len = active.size;
    if active.size == 0 && limits.preallocate {
        active.file.pre_allocate(limits.segment_bytes, false).await.map_err(io::Error::from)?;
        file_len = limits.segment_bytes;
    }
    let tail_start = active.size / PAGE * PAGE;
    if active.size == tail_start {
        return Ok((Vec::new(), file_len));
    }
    let len = (active.size - tail_start) as usize;
    let tail = active.file.read_at(tail_start, len).await.map_err(io::Error::from)?.to_vec();
    Ok((tail, file_len))
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

/// Where [`rebuild_producers`] replays from when no snapshot fits the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Replay {
    /// The active segment only (an open: older state is lost, and such
    /// producers may start anywhere, as in Kafka).
    ActiveSegment,
    /// Every segment (a truncation, which must not forget producers).
    WholeLog,
}

/// Idempotent producers' state as of `log_end`: the snapshot (if it is
/// valid for this log), then every idempotent batch after it and below
/// `log_end`, read from `segments`. Returns the state and the end of the
/// snapshot it started from.
pub(super) async fn rebuild_producers(
    dir: &Path,
    segments: &[Segment],
    log_end: i64,
    replay: Replay,
) -> io::Result<(ProducerState, Option<i64>)> {
    let d = dir.to_path_buf();
    let snapshot = glommio::executor().spawn_blocking(move || ProducerState::read_snapshot(&d)).await;
    let first = segments.first().expect("a segment").base_offset;
    let (mut state, from, used) = match snapshot {
        Some((s, end)) if end <= log_end && end >= first => (s, end, Some(end)),
        _ if replay == Replay::WholeLog => (ProducerState::default(), first, None),
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
                && h.base_offset < log_end
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
