//! Closing a partition log: when its topic is deleted, and at a clean
//! shutdown (everything flushed, indexes and the producer snapshot written).

use std::io;

use crate::storage::atomic_file;
use crate::storage::index_file;

use super::*;

impl PartitionLog {
    /// Whether the log was closed (or shut down): it takes nothing more.
    pub fn is_closed(&self) -> bool {
        self.state.borrow().closed
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
            let committing = std::mem::take(&mut st.hw_waiters);
            for (_, w) in st.waiters.drain(..).chain(committing) {
                let _ = w.try_send(Err(StorageError::Closed));
            }
            st.flushing
        };
        if flushing {
            idle.await;
        }
        // Whatever holds the segment files (a seal, retention, compaction)
        // ends before the directory can go; those still waiting see `closed`.
        let _serial = self.file_changes.acquire_permit(1).await;
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
            let permit = self.file_changes.acquire_permit(1).await.map_err(io::Error::from)?;
            if !self.state.borrow().flushing {
                break permit;
            }
        };
        // A log cut in memory only must not be sealed at its cut size while
        // the segments above still exist: the next open would keep them.
        self.finish_unfinished_cut().await.map_err(|e| io::Error::other(e.to_string()))?;
        let (file, size, base, index) = {
            let mut st = self.state.borrow_mut();
            st.closed = true;
            let active = st.segments.last().expect("a segment");
            (active.file.clone(), active.size, active.base_offset, active.index.clone())
        };
        file.truncate(size).await.map_err(io::Error::from)?;
        file.fdatasync().await.map_err(io::Error::from)?;
        self.persist_epochs().await?;
        let (dir, producers, end) = {
            let st = self.state.borrow();
            (self.dir.clone(), st.durable_producers.clone(), st.durable_end)
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
}
