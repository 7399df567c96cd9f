//! Moving the log start: retention (time and size), DeleteRecords, and the
//! one routine both use to drop whole segments below the new start.

use std::io;
use std::rc::Rc;

use tracing::{info, warn};

use crate::storage::atomic_file::{self, Replacement};
use crate::storage::index_file;
use crate::storage::io_failure::IoFailure;
use crate::storage::partition_dir;
use crate::storage::recycle;
use crate::storage::retention::{self, SegmentInfo};
use crate::storage::segment::{self, Segment};
use crate::storage::start_offset;

use super::*;

impl PartitionLog {
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
            let mut n = retention::deletable(&infos, total, now_ms, retention_ms, retention_bytes);
            // Never past what consumers may read (a replicated log's high
            // watermark may trail whole segments).
            while n > 0 && st.segments[n].base_offset > st.high_watermark {
                n -= 1;
            }
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
            self.advance_start(target, Mover::DeleteRecords).await.map_err(|e| ReadError::Io(e.into()))?;
        }
        let (start, hw) = (self.log_start_offset(), self.high_watermark());
        if start < target {
            // A truncation cut the log below the target while this waited.
            return Err(ReadError::OutOfRange { offset, start, end: hw });
        }
        Ok(start)
    }

    /// Moves the log start offset to `new_start` (persisted first), then
    /// deletes the sealed segments that lie wholly below it. Returns how many
    /// segments were deleted.
    async fn advance_start(&self, new_start: i64, mover: Mover) -> io::Result<usize> {
        // One advance at a time (retention and DeleteRecords may race), so a
        // smaller start offset is never persisted after a larger one.
        let _serial = self.file_changes.acquire_permit(1).await.map_err(io::Error::from)?;
        if self.state.borrow().closed {
            return Ok(0);
        }
        // Checked by the caller before it waited: a truncation meanwhile
        // may have cut the log below it.
        if new_start > self.high_watermark() {
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
        let persisted = self.persist_start(new_start, mover).await?;
        let Some((removed, recycled)) = self.drop_segments_below(new_start, persisted.recorded) else {
            return Ok(0);
        };
        if !removed.is_empty() {
            info!(dir = %self.dir.display(), start = new_start, segments = ?removed, "deleting segments below the log start");
        }
        self.delete_segment_files(&removed, recycled, persisted).await?;
        self.start_unsynced.set(false);
        Ok(removed.len())
    }

    /// Records `new_start` (unsynced: the directory fsync that ends the
    /// move makes it durable), with a producer snapshot first when the
    /// segments going may hold the only record of some producers.
    async fn persist_start(&self, new_start: i64, mover: Mover) -> io::Result<PersistedStart> {
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
                .then(|| (st.durable_producers.snapshot(&self.dir, st.durable_end), st.durable_end))
        };
        let snapshot_at = snapshot.as_ref().map(|(_, end)| *end);
        // The start is durable with the directory fsync that ends this move,
        // before it returns (and DeleteRecords answers). Retention's order
        // does not matter: on open the recorded start is clamped to the
        // first segment. A snapshot that could not be written comes back.
        let dir = self.dir.clone();
        let (persisted, unwritten) = glommio::executor()
            .spawn_blocking(move || {
                fail::fail_point!("retention::start", |_| (Err(crate::storage::injected("retention::start")), None));
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
                    && IoFailure::from(&e).is_disk_full()
                    && self.state.borrow().segments.iter().any(|s| s.base_offset == new_start) =>
            {
                warn!(dir = %self.dir.display(), start = new_start, "disk full: deleting segments without recording the new log start");
                false
            }
            Err(e) => return Err(e),
        };
        Ok(PersistedStart { recorded, unwritten, snapshot_at })
    }

    /// Moves the start in memory and takes the segments wholly below it
    /// out of the log; `None` if another move got there first. Returns
    /// their bases and the one kept as the spare, if any.
    fn drop_segments_below(&self, new_start: i64, recorded: bool) -> Option<(Vec<i64>, Option<i64>)> {
        let mut st = self.state.borrow_mut();
        if new_start <= st.log_start_offset {
            return None;
        }
        st.log_start_offset = new_start;
        // In memory only: see `epochs.rs` for why the file may lag.
        st.epochs.truncate_from_start(new_start);
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
            st.move_spare(Spare::Busy);
        }
        st.check_invariants();
        Some((gone.iter().map(|s| s.base_offset).collect(), recycled))
    }

    /// Deletes the files of the segments `removed` (keeping `recycled` as
    /// the spare), writes a snapshot the full disk had no room for, and
    /// makes all of it and the new start durable with one directory fsync.
    async fn delete_segment_files(
        &self,
        removed: &[i64],
        recycled: Option<i64>,
        persisted: PersistedStart,
    ) -> io::Result<()> {
        let PersistedStart { unwritten, snapshot_at, .. } = persisted;
        let dir = self.dir.clone();
        let bases = removed.to_vec();
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
                        // After the first deletion: a crash part-way.
                        fail::fail_point!("retention::delete", |_| Err(crate::storage::injected("retention::delete")));
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
            self.state.borrow_mut().move_spare(match spare {
                Ok(Some(len)) => Spare::Ready(len),
                _ => Spare::Absent,
            });
        }
        spare.map(|_| ())
    }
}

/// What recording a new log start did.
struct PersistedStart {
    /// The start is on disk (not on a full disk at a segment boundary).
    recorded: bool,
    /// A producer snapshot the full disk had no room for, to write once
    /// the deletions free space.
    unwritten: Option<Replacement>,
    /// The log end the snapshot was taken at, if one was.
    snapshot_at: Option<i64>,
}
