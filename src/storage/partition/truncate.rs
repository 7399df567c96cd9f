//! Truncation to an offset: a follower whose log diverged from its leader's
//! (it holds offsets of an epoch the leader never committed) cuts it back
//! before fetching again (issue 24). Everything at and above the cut goes:
//! segments, index entries, cached batches, idempotent producers' batches
//! and leader epochs. It is durable when `truncate_to` returns.
//!
//! A crash at any step leaves a log that opens cleanly as a prefix of the
//! old one that still reaches the cut (so truncating again finishes the
//! job), with a producer snapshot that fits it. The order that makes this
//! so: the producer snapshot as of the cut first (it fits every such
//! prefix); then the segments above the cut's segment, newest first, and
//! the cut segment's stale index files, made durable by a directory fsync;
//! then the cut itself (and a lowered log start, with another fsync); the
//! epoch checkpoint last (an open trims entries past the log).

use std::io;
use std::rc::Rc;

use crate::clock::now_ms;
use crate::storage::atomic_file;
use crate::storage::index::SegmentIndex;
use crate::storage::index_file;
use crate::storage::partition_dir;
use crate::storage::recovery::{self, ScanFrom};
use crate::storage::segment::{self, Segment};
use crate::storage::start_offset;
use crate::storage::walk;

use super::open::{Replay, active_tail, rebuild_producers};
use super::*;

/// Where a truncation cuts the log.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cut {
    /// Index of the segment the cut falls in (it becomes the active one).
    segment: usize,
    /// Its new size: the position of the first batch removed.
    position: u64,
    /// The new log end: the offset asked for, or the base of a batch that
    /// straddled it (batches go whole).
    end: i64,
}

impl PartitionLog {
    /// Cuts the log back to end at `offset` (or below it, at the start of a
    /// batch that straddles it). Appends are refused meanwhile; those in
    /// flight finish first. Returns the new log end. An offset at or past
    /// the log end changes nothing; one below the log start is refused.
    ///
    /// If a step fails, the log stays cut in memory and refuses appends
    /// until a truncation succeeds: the next one finishes this one's file
    /// changes first.
    pub async fn truncate_to(self: &Rc<Self>, offset: i64) -> Result<i64, StorageError> {
        let _serial = self.quiesce().await?;
        let cut = self.finish_unfinished_cut().await;
        let cut = match cut {
            Ok(()) => self.cut(offset).await,
            Err(e) => Err(e),
        };
        // Appends wait only for a cut made in memory whose files are not.
        if !self.has_unfinished_cut() {
            self.state.borrow_mut().truncating = false;
        }
        cut
    }

    /// A cut is made in memory but not yet on disk.
    fn has_unfinished_cut(&self) -> bool {
        let u = self.unfinished_cut.take();
        let pending = u.is_some();
        self.unfinished_cut.set(u);
        pending
    }

    /// Finishes a cut whose file changes failed, if there is one (a clean
    /// shutdown must not seal a log that is cut in memory only).
    pub(super) async fn finish_unfinished_cut(&self) -> Result<(), StorageError> {
        match self.unfinished_cut.take() {
            Some(u) => self.finish(u).await,
            None => Ok(()),
        }
    }

    /// Stops appends and waits until nothing is being written, holding the
    /// file-change permit (so no seal, retention or compaction runs).
    async fn quiesce(&self) -> Result<glommio::sync::Permit<'_>, StorageError> {
        if self.state.borrow().closed {
            return Err(StorageError::Closed);
        }
        self.state.borrow_mut().truncating = true;
        let permit = self.file_changes.acquire_permit(1).await.map_err(|_| StorageError::Closed);
        loop {
            let idle = self.idle.notified();
            if !self.state.borrow().flushing {
                break;
            }
            idle.await;
        }
        let st = self.state.borrow();
        assert!(st.pending.is_empty() && st.waiters.is_empty(), "a quiet log has nothing in flight");
        if st.closed {
            return Err(StorageError::Closed);
        }
        permit
    }

    async fn cut(self: &Rc<Self>, offset: i64) -> Result<i64, StorageError> {
        let (start, end) = {
            let st = self.state.borrow();
            (st.log_start_offset, st.next_offset)
        };
        if offset >= end {
            return Ok(end);
        }
        if offset < start {
            return Err(StorageError::Invalid(format!("cannot truncate to {offset}, below the log start {start}")));
        }
        let cut = self.find_cut(offset).await.map_err(io_failure)?;
        let segments: Vec<Segment> = self.state.borrow().segments[..=cut.segment].to_vec();
        let (producers, _) =
            rebuild_producers(&self.dir, &segments, cut.end, Replay::WholeLog).await.map_err(io_failure)?;
        drop(segments);
        let (removed, active) = self.cut_in_memory(&cut, producers.clone());
        self.finish(Unfinished { cut, removed, active, producers }).await?;
        Ok(cut.end)
    }

    /// The file changes of a cut made in memory; kept to be redone by the
    /// next truncation if one fails.
    async fn finish(&self, u: Unfinished) -> Result<(), StorageError> {
        let done = async {
            self.cut_files(&u.cut, &u.removed, &u.active, u.producers.clone()).await?;
            self.reopen_active(&u.cut, &u.active).await
        };
        if let Err(e) = done.await {
            tracing::error!(dir = %self.dir.display(), end = u.cut.end, "truncating the log failed, appends are refused until a retry succeeds: {e}");
            self.unfinished_cut.set(Some(u));
            return Err(io_failure(e));
        }
        Ok(())
    }

    /// Finds the first batch to remove: the first one in the segment
    /// holding `offset` that reaches it.
    async fn find_cut(&self, offset: i64) -> io::Result<Cut> {
        let (segment, file, from, size) = {
            let st = self.state.borrow();
            let i = st.segments.partition_point(|s| s.base_offset <= offset) - 1;
            let s = &st.segments[i];
            (i, s.file.clone(), s.index.floor_position(offset), s.size)
        };
        Ok(match walk::find(&file, from, size, |p| p.last_offset >= offset).await? {
            Some((position, first)) => Cut { segment, position, end: first.base_offset.min(offset) },
            None => Cut { segment, position: size, end: offset },
        })
    }

    /// Takes everything from the cut on out of the log in memory, so no
    /// reader finds it: returns the bases of the segments that go and the
    /// one the cut falls in, now the active segment.
    fn cut_in_memory(&self, cut: &Cut, producers: ProducerState) -> (Vec<i64>, Segment) {
        self.truncations.set(self.truncations.get() + 1);
        let mut st = self.state.borrow_mut();
        let removed: Vec<i64> = st.segments.drain(cut.segment + 1..).map(|s| s.base_offset).collect();
        let active = st.segments.last_mut().expect("the cut's segment");
        active.size = cut.position;
        active.index.offsets.retain(|e| e.position < cut.position);
        let active = active.clone();
        st.sealed_bytes = sealed_sum(&st.segments);
        st.next_offset = cut.end;
        st.durable_end = cut.end;
        st.high_watermark = st.high_watermark.min(cut.end);
        // The cut may fall inside a batch the log start lies in.
        st.log_start_offset = st.log_start_offset.min(cut.end);
        st.cache.clear();
        st.epochs.truncate_from_end(cut.end);
        st.epochs_dirty = true;
        st.producers = producers.clone();
        st.durable_producers = producers;
        st.write_segment = active.base_offset;
        st.write_pos = cut.position;
        st.write_segment_since_ms = now_ms();
        st.tail.clear();
        (removed, active)
    }

    /// Makes the cut durable, in the order the module notes give.
    async fn cut_files(
        &self,
        cut: &Cut,
        removed: &[i64],
        active: &Segment,
        producers: ProducerState,
    ) -> io::Result<()> {
        let dir = self.dir.clone();
        let snapshot = producers.snapshot(&dir, cut.end);
        let (bases, base) = (removed.to_vec(), active.base_offset);
        glommio::executor()
            .spawn_blocking(move || -> io::Result<()> {
                fail::fail_point!("truncate::snapshot", |_| Err(io::Error::other("injected: truncate::snapshot")));
                atomic_file::replace(&dir, std::slice::from_ref(&snapshot))?;
                for &b in bases.iter().rev() {
                    fail::fail_point!("truncate::remove_segment", |_| Err(io::Error::other(
                        "injected: truncate::remove_segment"
                    )));
                    // Gone already if an earlier try got this far.
                    match segment::remove(&dir, b) {
                        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                        _ => {}
                    }
                }
                fail::fail_point!("truncate::remove_index", |_| Err(io::Error::other(
                    "injected: truncate::remove_index"
                )));
                index_file::remove(&dir, base)?;
                // The removals durable before the cut: else a crash could
                // keep later segments beside the shortened one.
                partition_dir::sync_dir(&dir)
            })
            .await?;
        self.snapshot_end.set(cut.end);
        fail::fail_point!("truncate::cut_segment", |_| Err(io::Error::other("injected: truncate::cut_segment")));
        active.file.truncate(cut.position).await.map_err(io::Error::from)?;
        active.file.fdatasync().await.map_err(io::Error::from)?;
        // A cut through the batch the log start lay in lowers the start:
        // the recorded one would otherwise hide offsets appended later.
        let lowered = (self.log_start_offset() == cut.end).then_some(cut.end);
        let dir = self.dir.clone();
        glommio::executor()
            .spawn_blocking(move || {
                if let Some(start) = lowered {
                    start_offset::write_unsynced(&dir, start)?;
                }
                partition_dir::sync_dir(&dir)
            })
            .await?;
        fail::fail_point!("truncate::epochs", |_| Err(io::Error::other("injected: truncate::epochs")));
        self.persist_epochs().await
    }

    /// Rebuilds the cut segment's index from its kept entries (walking the
    /// headers after the last one) and makes it the active segment again:
    /// its last partial page and file length, as an open finds them.
    async fn reopen_active(&self, cut: &Cut, active: &Segment) -> io::Result<()> {
        let mut index = active.index.clone();
        let from = match index.offsets.is_empty() {
            true => ScanFrom { verify_crc: false, ..ScanFrom::start(active.base_offset, false) },
            false => {
                let resume = index.resume_point();
                ScanFrom { position: resume.position, offset: resume.offset, index, verify_crc: false, recycled: false }
            }
        };
        let interval = self.limits.get().index_interval;
        let scan = recovery::scan(&active.file, active.base_offset, from, true, interval).await?;
        assert!(
            scan.torn.is_none() && scan.valid_len == cut.position,
            "the cut segment reads back whole to the cut: {:?} at {} of {}",
            scan.torn,
            scan.valid_len,
            cut.position
        );
        let mut reopened = active.clone();
        reopened.index = if scan.index.next_offset.is_some() { scan.index } else { SegmentIndex::new() };
        let (tail, file_len) = active_tail(&reopened, &self.limits.get()).await?;
        let mut st = self.state.borrow_mut();
        st.tail = tail;
        st.file_len = file_len;
        *st.segments.last_mut().expect("the cut's segment") = reopened;
        st.check_invariants();
        Ok(())
    }
}

/// A cut made in memory whose file changes are not all done.
pub(super) struct Unfinished {
    cut: Cut,
    /// Bases of the segments above the cut's.
    removed: Vec<i64>,
    /// The cut's segment as it is in memory.
    active: Segment,
    /// Idempotent producers as of the cut.
    producers: ProducerState,
}

fn io_failure(e: io::Error) -> StorageError {
    StorageError::Io((&e).into())
}
