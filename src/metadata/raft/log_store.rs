//! The Raft log of the metadata quorum, in one append-only file of
//! operations (`raft.log` in its directory), each in a frame of `frame.rs`
//! so that a torn tail is found and cut.
//! Opening replays the operations into memory: the metadata log is small.
//! Appends and votes are fsynced before they are reported done; truncation,
//! purges and the committed id reach the disk with the next sync (openraft
//! asks no more of them).
//!
//! Past a few MiB, a purge compacts the file (`compact.rs`).
//!
//! The file keeps `RESERVE` bytes allocated past its end (fallocate with
//! KEEP_SIZE), so that metadata changes still commit on a disk that
//! partition data has filled: openraft stops for good at a failed write, and
//! an operator's way out of a full disk (lowering `retention.bytes`) is
//! itself a metadata change.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::{self, Write};
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::{Arc, Mutex};

use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::type_config::alias::{EntryOf, LogIdOf, VoteOf};
use openraft::{OptionalSend, RaftLogReader};
use serde::{Deserialize, Serialize};

use super::{MetaTypes, frame};

mod compact;

type C = MetaTypes;

/// Bytes kept allocated past the file's end; renewed when half is used.
const RESERVE: u64 = 1 << 20;

/// One change to the log, as written.
#[derive(Debug, Serialize, Deserialize)]
enum Op {
    Append(Vec<EntryOf<C>>),
    Vote(VoteOf<C>),
    Committed(Option<LogIdOf<C>>),
    TruncateAfter(Option<LogIdOf<C>>),
    Purge(LogIdOf<C>),
}

#[derive(Default)]
struct Inner {
    entries: BTreeMap<u64, EntryOf<C>>,
    vote: Option<VoteOf<C>>,
    committed: Option<LogIdOf<C>>,
    last_purged: Option<LogIdOf<C>>,
}

impl Inner {
    fn apply(&mut self, op: Op) {
        match op {
            Op::Append(entries) => {
                for e in entries {
                    self.entries.insert(e.log_id.index, e);
                }
            }
            Op::Vote(v) => self.vote = Some(v),
            Op::Committed(c) => self.committed = c,
            Op::TruncateAfter(after) => {
                let from = after.map_or(0, |id| id.index + 1);
                self.entries.split_off(&from);
            }
            Op::Purge(upto) => {
                self.entries = self.entries.split_off(&(upto.index + 1));
                self.last_purged = Some(upto);
            }
        }
    }
}

/// The log file and how far its allocation reaches.
struct LogFile {
    file: std::fs::File,
    /// The file's length: where the next frame goes.
    len: u64,
    /// The end of the blocks allocated for it (`len` or more).
    reserved_to: u64,
    /// Its length when opened or last compacted (see `compact::due`).
    base: u64,
    /// Whether the fail point `metadata_log::torn_write` applies to this
    /// file (fail points are global; only the test that arms it opts in).
    #[cfg(test)]
    tearable: bool,
}

impl LogFile {
    /// Keeps at least `RESERVE / 2` bytes allocated past the end. A failure
    /// (a full disk) is logged once per attempt and leaves writes to grow
    /// the file as they can.
    fn reserve(&mut self) {
        if self.reserved_to >= self.len + RESERVE / 2 {
            return;
        }
        use std::os::fd::AsRawFd;
        // SAFETY: fallocate on an open descriptor we own, with in-range
        // offsets; it touches no memory of ours.
        let rc = unsafe {
            libc::fallocate(self.file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, self.len as i64, RESERVE as i64)
        };
        if rc == 0 {
            self.reserved_to = self.len + RESERVE;
        } else {
            tracing::warn!("cannot reserve space for the metadata log: {}", io::Error::last_os_error());
        }
    }

    /// Appends `frame`, synced when `sync`. On failure the file is cut back
    /// to its old length, so that a torn frame cannot hide later ones from
    /// the next replay.
    fn append(&mut self, frame: &[u8], sync: bool) -> io::Result<()> {
        let written = self.write_frame(frame).and_then(|()| if sync { self.file.sync_data() } else { Ok(()) });
        if let Err(e) = written {
            // Cutting frees the reservation too; the next write renews it.
            self.file
                .set_len(self.len)
                .and_then(|()| self.file.sync_all())
                .map_err(|cut| io::Error::other(format!("cannot undo a failed metadata log write ({e}): {cut}")))?;
            self.reserved_to = self.len;
            return Err(e);
        }
        self.len += frame.len() as u64;
        self.reserved_to = self.reserved_to.max(self.len);
        self.reserve();
        Ok(())
    }

    /// Writes `frame`; the fail point `metadata_log::torn_write` writes half
    /// of it and fails, as a full disk can.
    fn write_frame(&mut self, frame: &[u8]) -> io::Result<()> {
        // Fail points are armed in test builds only.
        #[cfg(test)]
        fail::fail_point!("metadata_log::torn_write", self.tearable, |_| {
            self.file.write_all(&frame[..frame.len() / 2])?;
            Err(io::Error::other("injected failure at metadata_log::torn_write"))
        });
        self.file.write_all(frame)
    }
}

/// The log store; clones share it (the reader is a clone).
#[derive(Clone)]
pub struct MetaLogStore {
    inner: Arc<Mutex<Inner>>,
    file: Arc<Mutex<LogFile>>,
    path: Arc<std::path::PathBuf>,
}

impl MetaLogStore {
    /// Opens (creating) the log in `dir`, replaying it; a torn tail is cut.
    pub fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("raft.log");
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut inner = Inner::default();
        let mut pos = 0;
        while let Some((op, len)) = frame::decode::<Op>(&bytes[pos..]) {
            inner.apply(op);
            pos += len;
        }
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
        if pos < bytes.len() {
            file.set_len(pos as u64)?;
            file.sync_all()?;
        }
        // Blocks allocated past the end are not known from here; a reserve
        // from before a restart is counted as none and renewed.
        // How much of it is live is not known here: compaction is due at
        // `COMPACT_AT` whatever its size.
        let mut file = LogFile {
            file,
            len: pos as u64,
            reserved_to: pos as u64,
            base: 0,
            #[cfg(test)]
            tearable: false,
        };
        file.reserve();
        let _ = std::fs::remove_file(dir.join(compact::TEMP_NAME));
        Ok(Self { inner: Arc::new(Mutex::new(inner)), file: Arc::new(Mutex::new(file)), path: Arc::new(path) })
    }

    /// Writes `op` (synced when `sync`) and applies it in memory.
    fn write(&self, op: Op, sync: bool) -> io::Result<()> {
        let frame = frame::encode(&op)?;
        // The file lock is held until the operation is applied in memory,
        // so that a compaction (which takes both, file first) never misses
        // an operation already in the file.
        let mut file = self.file.lock().expect("the log file lock");
        file.append(&frame, sync)?;
        self.inner.lock().expect("the log lock").apply(op);
        drop(file);
        Ok(())
    }

    /// Rewrites the file as what is left, once it has grown past
    /// `COMPACT_AT`. A failure keeps the old file (it is still whole) and
    /// is only logged: compaction is tried again at the next purge.
    fn compact_if_large(&self) {
        let mut file = self.file.lock().expect("the log file lock");
        if !compact::due(file.len, file.base) {
            return;
        }
        let inner = self.inner.lock().expect("the log lock");
        match compact::rewrite(&self.path, &inner) {
            Ok(new) => {
                tracing::info!(before = file.len, after = new.len, "compacted the metadata quorum's log");
                *file = new;
            }
            Err(e) => tracing::warn!("cannot compact the metadata quorum's log (kept as it is): {e}"),
        }
    }
}

impl RaftLogReader<C> for MetaLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<EntryOf<C>>, io::Error> {
        let inner = self.inner.lock().expect("the log lock");
        Ok(inner.entries.range(range).map(|(_, e)| e.clone()).collect())
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<C>>, io::Error> {
        Ok(self.inner.lock().expect("the log lock").vote)
    }
}

impl RaftLogStorage<C> for MetaLogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C>, io::Error> {
        let inner = self.inner.lock().expect("the log lock");
        let last = inner.entries.values().next_back().map(|e| e.log_id).or(inner.last_purged);
        Ok(LogState { last_purged_log_id: inner.last_purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<C>) -> Result<(), io::Error> {
        self.write(Op::Vote(*vote), true)
    }

    async fn save_committed(&mut self, committed: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        self.write(Op::Committed(committed), false)
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf<C>>, io::Error> {
        Ok(self.inner.lock().expect("the log lock").committed)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<C>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = EntryOf<C>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let written = self.write(Op::Append(entries.into_iter().collect()), true);
        let report = written.as_ref().map(|_| ()).map_err(|e| io::Error::new(e.kind(), e.to_string()));
        callback.io_completed(report);
        written
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        self.write(Op::TruncateAfter(last_log_id), false)
    }

    async fn purge(&mut self, log_id: LogIdOf<C>) -> Result<(), io::Error> {
        self.write(Op::Purge(log_id), false)?;
        self.compact_if_large();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fail points are global: the tests that arm one take turns (other
    /// stores are not tearable, so other tests are not hit).
    static FAIL_POINTS: Mutex<()> = Mutex::new(());

    /// A torn last frame (a crash mid-write) is cut on open; what came
    /// before it is kept.
    #[test]
    fn a_torn_tail_is_cut_and_the_rest_replays() {
        let dir = std::env::temp_dir().join(format!("sluice-raft-log-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut store = MetaLogStore::open(&dir).unwrap();
            let vote = VoteOf::<C>::new(3, 0);
            store.save_vote(&vote).await.unwrap();
            drop(store);
            let path = dir.join("raft.log");
            let good = std::fs::metadata(&path).unwrap().len();
            let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
            f.write_all(&[0, 0, 0, 40, 1, 2, 3]).unwrap();
            drop(f);
            let mut store = MetaLogStore::open(&dir).unwrap();
            assert_eq!(store.read_vote().await.unwrap(), Some(vote));
            assert_eq!(std::fs::metadata(&path).unwrap().len(), good, "the torn frame is cut");
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Past `COMPACT_AT`, a purge rewrites the file as what is left: it
    /// shrinks, and a reopen finds the same vote, committed id, purge point
    /// and entries. A compaction that fails before its rename (the fail
    /// point) leaves the old file, which reopens whole.
    #[test]
    fn a_purge_compacts_a_large_log_and_a_failed_compaction_keeps_it() {
        use openraft::entry::RaftEntry;
        let _turn = FAIL_POINTS.lock().unwrap_or_else(|e| e.into_inner());
        let dir = std::env::temp_dir().join(format!("sluice-raft-compact-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let path = dir.join("raft.log");
        let size = || std::fs::metadata(&path).unwrap().len();
        let id = |i: u64| openraft::testing::log_id::<C>(1, 0, i);
        rt.block_on(async {
            let mut store = MetaLogStore::open(&dir).unwrap();
            let vote = VoteOf::<C>::new(1, 0);
            store.save_vote(&vote).await.unwrap();
            // Entries of about 1 KiB, until the file is past the threshold.
            let big = super::super::MetaCommand::always(vec![
                crate::metadata::record::MetaRecord::TopicConfigsSet {
                    name: "x".repeat(1000),
                    configs: vec![],
                };
                1
            ]);
            let mut next = 0;
            while size() < compact::COMPACT_AT + (64 << 10) {
                let entries: Vec<EntryOf<C>> =
                    (next..next + 64).map(|i| EntryOf::<C>::new_normal(id(i), big.clone())).collect();
                next += 64;
                store.write(Op::Append(entries), false).unwrap();
            }
            store.save_committed(Some(id(next - 1))).await.unwrap();
            // A compaction that fails: the old file stays, whole.
            fail::cfg("metadata_log::compact_before_rename", "return").unwrap();
            store.purge(id(next - 11)).await.unwrap();
            fail::remove("metadata_log::compact_before_rename");
            let before = size();
            assert!(before > compact::COMPACT_AT, "not compacted");
            assert!(!dir.join(compact::TEMP_NAME).exists(), "a failed compaction leaves no temporary file");
            let mut reopened = MetaLogStore::open(&dir).unwrap();
            assert_eq!(reopened.get_log_state().await.unwrap().last_purged_log_id, Some(id(next - 11)));
            drop(reopened);
            // The next purge compacts.
            store.purge(id(next - 6)).await.unwrap();
            assert!(size() < 16 << 10, "compacted to the few entries left: {} bytes", size());
            drop(store);
            let mut store = MetaLogStore::open(&dir).unwrap();
            assert_eq!(store.read_vote().await.unwrap(), Some(vote));
            assert_eq!(store.read_committed().await.unwrap(), Some(id(next - 1)));
            let state = store.get_log_state().await.unwrap();
            assert_eq!((state.last_purged_log_id, state.last_log_id), (Some(id(next - 6)), Some(id(next - 1))));
            let left = store.try_get_log_entries(0..next).await.unwrap();
            assert_eq!(left.iter().map(|e| e.log_id.index).collect::<Vec<_>>(), (next - 5..next).collect::<Vec<_>>());
            // It appends after the compacted operations.
            store.save_vote(&VoteOf::<C>::new(2, 0)).await.unwrap();
            drop(store);
            let mut store = MetaLogStore::open(&dir).unwrap();
            assert_eq!(store.read_vote().await.unwrap(), Some(VoteOf::<C>::new(2, 0)));
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn compaction_is_due_past_the_threshold_and_twice_what_it_left() {
        assert!(!compact::due(compact::COMPACT_AT - 1, 0));
        assert!(compact::due(compact::COMPACT_AT, 0));
        let large = 3 * compact::COMPACT_AT;
        assert!(!compact::due(large + 1, large), "a large live log is not rewritten at every purge");
        assert!(compact::due(2 * large, large));
    }

    /// A write that fails half done (a full disk) is cut back: the next
    /// write's frame follows the last whole one, so a replay reaches it.
    #[test]
    fn a_failed_write_leaves_no_torn_frame_before_the_next() {
        let _turn = FAIL_POINTS.lock().unwrap_or_else(|e| e.into_inner());
        let dir = std::env::temp_dir().join(format!("sluice-raft-torn-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut store = MetaLogStore::open(&dir).unwrap();
            store.file.lock().unwrap().tearable = true;
            store.save_vote(&VoteOf::<C>::new(1, 0)).await.unwrap();
            fail::cfg("metadata_log::torn_write", "return").unwrap();
            let failed = store.save_vote(&VoteOf::<C>::new(2, 0)).await;
            fail::remove("metadata_log::torn_write");
            assert!(failed.is_err());
            assert_eq!(store.read_vote().await.unwrap(), Some(VoteOf::<C>::new(1, 0)), "a failed vote is not kept");
            store.save_vote(&VoteOf::<C>::new(3, 0)).await.unwrap();
            drop(store);
            let mut store = MetaLogStore::open(&dir).unwrap();
            assert_eq!(store.read_vote().await.unwrap(), Some(VoteOf::<C>::new(3, 0)));
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
