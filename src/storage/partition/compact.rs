//! Compaction of a `compact` topic's sealed segments.

use std::io;
use std::rc::Rc;
use std::sync::Arc;

use glommio::io::DmaFile;
use tracing::info;

use crate::protocol::batch;
use crate::storage::atomic_file::{self, Replacement};
use crate::storage::compaction;
use crate::storage::index::{BatchEntry, SegmentIndex};
use crate::storage::index_file;
use crate::storage::segment;
use crate::storage::walk;

use super::*;

impl PartitionLog {
    /// Compacts the sealed segments (`cleanup.policy=compact`): every record
    /// not the latest of its key, and tombstones older than
    /// `tombstone_cutoff_ms`, go. Each changed segment is rewritten to a new
    /// file that atomically replaces the old one; reads in flight keep the
    /// old file open. The active segment is left alone, as in Kafka. Returns
    /// how many segments were rewritten.
    pub async fn compact(&self, tombstone_cutoff_ms: i64) -> io::Result<usize> {
        // One segment-list change at a time (retention, DeleteRecords).
        let _serial = self.file_changes.acquire_permit(1).await.map_err(io::Error::from)?;
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
        let Some(latest) = self.latest_keys(&segments).await? else { return Ok(0) };
        let latest = Arc::new(latest);
        let mut rewritten = 0;
        let mut young_tombstones = false;
        for (base, file, size) in &segments[..segments.len() - 1] {
            let Some((out, young)) = self.clean_segment(file, *size, &latest, tombstone_cutoff_ms).await? else {
                return Ok(rewritten);
            };
            young_tombstones |= young;
            if out.len() as u64 == *size {
                continue;
            }
            if self.abandon_compaction() {
                return Ok(rewritten);
            }
            self.replace_segment(*base, out).await?;
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

    /// The offset of every key's latest record in `segments`; `None` if the
    /// pass is abandoned. Records are decoded (and decompressed) on a
    /// blocking thread, a window of ~1 MiB at a time, so the shard goes on
    /// serving.
    async fn latest_keys(&self, segments: &[(i64, Rc<DmaFile>, u64)]) -> io::Result<Option<compaction::LatestByKey>> {
        let mut latest = compaction::LatestByKey::new();
        for (_, file, size) in segments {
            let mut windows = walk::Windows::new(file, 0, *size);
            while let Some((_, window)) = windows.next().await? {
                if self.abandon_compaction() {
                    return Ok(None);
                }
                latest.extend(glommio::executor().spawn_blocking(move || compaction::note_window(&window)).await);
            }
        }
        Ok(Some(latest))
    }

    /// One sealed segment's batches without the records compaction drops,
    /// and whether tombstones too young to go are left; `None` if the pass
    /// is abandoned.
    async fn clean_segment(
        &self,
        file: &Rc<DmaFile>,
        size: u64,
        latest: &Arc<compaction::LatestByKey>,
        tombstone_cutoff_ms: i64,
    ) -> io::Result<Option<(Vec<u8>, bool)>> {
        let mut out = Vec::with_capacity(size as usize);
        let mut young_tombstones = false;
        let mut windows = walk::Windows::new(file, 0, size);
        while let Some((_, window)) = windows.next().await? {
            if self.abandon_compaction() {
                return Ok(None);
            }
            let latest = latest.clone();
            let (kept, young) = glommio::executor()
                .spawn_blocking(move || compaction::clean_window(&latest, &window, tombstone_cutoff_ms))
                .await;
            out.extend_from_slice(&kept);
            young_tombstones |= young;
        }
        Ok(Some((out, young_tombstones)))
    }

    /// Replaces the segment at `base` with the compacted batches `out`: its
    /// index rebuilt, log and index files swapped atomically, then the new
    /// file put in the segment list (reads in flight keep the old one).
    async fn replace_segment(&self, base: i64, out: Vec<u8>) -> io::Result<()> {
        let mut index = SegmentIndex::new();
        let mut pos = 0usize;
        while let Some(p) = batch::peek(&out[pos..]) {
            let e = BatchEntry {
                base_offset: p.base_offset,
                last_offset: p.last_offset,
                max_timestamp: p.max_timestamp,
                segment_base: base,
                position: pos as u64,
                len: p.total_len as u32,
            };
            index.append(&e, self.limits.get().index_interval);
            pos += p.total_len;
        }
        let (dir, len, ix) = (self.dir.clone(), out.len() as u64, index.clone());
        glommio::executor()
            .spawn_blocking(move || {
                // The log file first: a crash between the renames leaves
                // the new log with the old index, which recovery rebuilds.
                let log = Replacement { path: segment::log_path(&dir, base), bytes: out };
                let files: Vec<Replacement> = std::iter::once(log).chain(index_file::encode(&dir, base, &ix)).collect();
                atomic_file::replace(&dir, &files)
            })
            .await?;
        if fail_armed!("compact::swap_in") {
            return Err(crate::storage::injected("compact::swap_in"));
        }
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
        st.check_invariants();
        Ok(())
    }

    /// Whether a compaction pass should stop where it is: the topic is being
    /// deleted (its directory may go, and be made again for a new topic of
    /// the same name, once the pass lets go), or the broker is stopping.
    /// Close and shutdown wait for the pass; what it rewrote is complete.
    fn abandon_compaction(&self) -> bool {
        self.state.borrow().closed || self.stopping.get()
    }
}
