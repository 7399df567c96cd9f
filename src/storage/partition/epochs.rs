//! The log's leader epochs (see [`crate::storage::epoch_cache`]): a
//! leader's appends are stamped with its epoch, a follower's keep theirs,
//! and the cache records where each epoch began.
//!
//! When the checkpoint file is written: an epoch's first entry is made
//! durable before the flusher writes any of that epoch's batches (rare: a
//! leader change), so the file never lacks an epoch the disk holds; a
//! truncation writes it before it returns. A moved log start trims the
//! cache in memory only: the next write carries the trim, and an open
//! trims what it loads to the recovered log anyway, so the file may run
//! ahead of the log on disk but never behind it.

use std::cell::Cell;
use std::io;
use std::path::Path;

use tracing::{info, warn};

use crate::protocol::batch::BatchHeader;
#[cfg(test)]
use crate::storage::epoch_cache::EpochEntry;
use crate::storage::segment::Segment;
use crate::storage::walk;

use super::*;

impl PartitionLog {
    /// Makes this replica the leader at `epoch`: its appends are stamped
    /// with it from the log end on, recorded durably before this returns
    /// (Kafka's `makeLeader` does the same).
    pub async fn become_leader(&self, epoch: i32) -> Result<(), StorageError> {
        {
            let mut st = self.state.borrow_mut();
            // The metadata says this replica leads, whatever its epochs.
            st.following = false;
            if st.epochs.latest_epoch().is_some_and(|latest| latest > epoch) {
                return Err(StorageError::StaleEpoch { epoch, latest: st.epochs.latest_epoch().unwrap_or(-1) });
            }
            st.leader_epoch = epoch;
            let end = st.next_offset;
            st.epochs_dirty |= st.epochs.assign(epoch, end);
        }
        self.persist_epochs().await.map_err(|e| StorageError::Io((&e).into()))
    }

    /// Where `epoch` ended on this replica, as OffsetForLeaderEpoch answers:
    /// (the epoch at or below it that the log knows, the start of the next
    /// one or the durable end). `(-1, -1)` for an unknown epoch.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i64, i64) {
        let st = self.state.borrow();
        st.epochs.end_offset_for(epoch, st.durable_end)
    }

    /// The leader epoch that wrote `offset` (-1 if the log knows none):
    /// what ListOffsets answers with an offset.
    pub fn epoch_at(&self, offset: i64) -> i32 {
        self.state.borrow().epochs.epoch_at(offset).unwrap_or(-1)
    }

    /// The latest leader epoch the log holds, if any: a follower's
    /// `last_fetched_epoch`.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.state.borrow().epochs.latest_epoch()
    }

    /// The epoch entries, oldest first.
    #[cfg(test)]
    pub fn epoch_entries(&self) -> Vec<EpochEntry> {
        self.state.borrow().epochs.entries().to_vec()
    }

    /// Writes `leader-epoch-checkpoint` if the cache holds entries the file
    /// lacks (durable when this returns). One write at a time.
    pub(super) async fn persist_epochs(&self) -> io::Result<()> {
        // The flusher asks before every group: nothing to write and no write
        // in flight (which the caller must wait for) is the common answer,
        // given without touching the semaphore.
        if !self.state.borrow().epochs_dirty && self.epoch_file.available() == 1 {
            return Ok(());
        }
        let _one = self.epoch_file.acquire_permit(1).await.map_err(io::Error::from)?;
        let cache = {
            let mut st = self.state.borrow_mut();
            if !std::mem::replace(&mut st.epochs_dirty, false) {
                return Ok(());
            }
            st.epochs.clone()
        };
        let dir = self.dir.clone();
        let stored = glommio::executor().spawn_blocking(move || cache.store(&dir)).await;
        if stored.is_err() {
            self.state.borrow_mut().epochs_dirty = true;
        }
        stored
    }
}

impl State {
    /// The epoch a leader's batches appended at `at` are stamped with,
    /// recorded in the cache if it begins there.
    pub(super) fn stamp_epoch(&mut self, at: i64) -> Result<i32, StorageError> {
        let epoch = self.leader_epoch;
        match self.epochs.latest_epoch() {
            Some(latest) if latest == epoch => {}
            Some(latest) if latest > epoch => return Err(StorageError::StaleEpoch { epoch, latest }),
            _ => self.epochs_dirty |= self.epochs.assign(epoch, at),
        }
        Ok(epoch)
    }

    /// Checks that a follower's batches carry epochs that never fall below
    /// the log's newest, then records each new one where it begins.
    pub(super) fn follow_epochs(&mut self, headers: &[BatchHeader]) -> Result<(), StorageError> {
        let mut latest = self.epochs.latest_epoch().unwrap_or(-1);
        for h in headers {
            if h.leader_epoch < latest {
                return Err(StorageError::Invalid(format!(
                    "batch at {} has leader epoch {} below the log's {latest}",
                    h.base_offset, h.leader_epoch
                )));
            }
            latest = h.leader_epoch;
        }
        for h in headers.iter().filter(|h| h.leader_epoch >= 0) {
            self.epochs_dirty |= self.epochs.assign(h.leader_epoch, h.base_offset);
        }
        Ok(())
    }
}

/// The epoch cache of a log recovered to `start..end`: the checkpoint,
/// trimmed to the log; rebuilt from the batches' headers when there is no
/// usable one but the log holds batches (a log written before the cache
/// existed, or a damaged file). Returns it and whether the file needs
/// rewriting.
pub(super) async fn load_epochs(
    dir: &Path,
    segments: &[Segment],
    start: i64,
    end: i64,
) -> io::Result<(EpochCache, bool)> {
    let d = dir.to_path_buf();
    let mut cache = match glommio::executor().spawn_blocking(move || EpochCache::load(&d)).await {
        Ok(cache) => cache,
        Err(e) => {
            warn!(dir = %dir.display(), "cannot use the leader epoch checkpoint, rebuilding it from the log: {e}");
            EpochCache::default()
        }
    };
    cache.truncate_from_end(end);
    cache.truncate_from_start(start);
    if !cache.entries().is_empty() || start >= end {
        return Ok((cache, false));
    }
    info!(dir = %dir.display(), "rebuilding the leader epoch cache from the batches' headers");
    for seg in segments {
        let latest = Cell::new(cache.latest_epoch().unwrap_or(-1));
        let changes = std::cell::RefCell::new(Vec::new());
        walk::find(&seg.file, 0, seg.size, |p| {
            if p.leader_epoch > latest.get() && p.last_offset >= start {
                latest.set(p.leader_epoch);
                changes.borrow_mut().push((p.leader_epoch, p.base_offset.max(start)));
            }
            false
        })
        .await?;
        for (epoch, at) in changes.into_inner() {
            cache.assign(epoch, at);
        }
    }
    Ok((cache, true))
}
