//! The write path: append assigns offsets and queues chunks; the flusher
//! writes groups of chunks with direct I/O, fdatasyncs them (group commit),
//! rolls and seals segments, and publishes what is durable to readers and
//! the cache.

use std::io;
use std::rc::Rc;

use bytes::Bytes;
use glommio::channels::local_channel;
use glommio::io::DmaFile;
use tracing::{error, info, warn};

use crate::clock::now_ms;
use crate::protocol::batch::{self, BatchHeader};
use crate::storage::atomic_file::{self, Replacement};
use crate::storage::cache::BatchCache;
use crate::storage::chunk::{Chunk, PAGE};
use crate::storage::index::{BatchEntry, SegmentIndex};
use crate::storage::index_file;
use crate::storage::injected;
use crate::storage::producer_state::{Check, ProducerBatch, ProducerEntry, SequenceError};
use crate::storage::recycle;
use crate::storage::segment::{self, Segment};

use super::*;

impl PartitionLog {
    /// Appends validated batches (`headers` describe `records` in order),
    /// assigning offsets. Returns the first offset and the end offset
    /// (exclusive); durability follows through [`PartitionLog::durable`].
    pub fn append(self: &Rc<Self>, records: &[u8], headers: &[BatchHeader]) -> Result<Appended, StorageError> {
        let mut st = self.state.borrow_mut();
        st.accepting_appends()?;
        if st.following {
            // The shard may still list itself as leader for a moment (its
            // metadata is published after the log is told): refused here,
            // such a write could be acknowledged by the high watermark of
            // a leader that never had it.
            return Err(StorageError::LeaderMoved);
        }
        let base = st.next_offset;
        // An epoch's entry at the log end stays even if the batches are
        // refused below: the next ones start there (as after `become_leader`).
        let epoch = st.stamp_epoch(base)?;
        let producers = match self.check_producers(&mut st, headers, base)? {
            ProducerCheck::Duplicate { base, end } => return Ok(Appended::Duplicate { base, end }),
            ProducerCheck::Fresh(producers) => producers,
        };
        self.enqueue(&mut st, records, headers, producers, Stamp::Leader(epoch));
        let end = st.next_offset;
        self.start_flusher(st);
        Ok(Appended::New { base, end })
    }

    /// Appends batches a leader wrote, as a follower does (replication,
    /// issue 24): they keep their offsets and leader epoch, which must rise
    /// from the log end (a compacted leader's batches may leave gaps), and
    /// their CRCs must check out. Idempotent producers' state takes them
    /// without a sequence check, as Kafka's follower does: the leader
    /// checked. Returns the offsets `base..end` they cover; durable once
    /// [`Self::durable`] says so.
    pub fn append_as_follower(self: &Rc<Self>, records: &[u8]) -> Result<(i64, i64), StorageError> {
        let headers = batch::validate_all(records).map_err(|e| StorageError::Invalid(e.to_string()))?;
        let mut st = self.state.borrow_mut();
        st.accepting_appends()?;
        let Some(first) = headers.first() else { return Err(StorageError::Invalid("no batch".into())) };
        let mut next = st.next_offset;
        for h in &headers {
            if h.base_offset < next {
                return Err(StorageError::Invalid(format!(
                    "batch at offset {} is below the log end {next}",
                    h.base_offset
                )));
            }
            next = h.last_offset() + 1;
        }
        st.follow_epochs(&headers)?;
        let base = first.base_offset;
        let mut producers = Vec::new();
        for h in headers.iter().filter(|h| h.is_idempotent()) {
            let b = producer_batch(h, h.base_offset);
            st.producers.record(h.producer_id, h.producer_epoch, b, h.max_timestamp);
            producers.push((h.producer_id, h.producer_epoch, b));
        }
        self.enqueue(&mut st, records, &headers, producers, Stamp::Keep);
        let end = st.next_offset;
        self.start_flusher(st);
        Ok((base, end))
    }

    /// Checks every idempotent batch of an append against its producer's
    /// state before any is appended, and records them in it.
    fn check_producers(
        &self,
        st: &mut State,
        headers: &[BatchHeader],
        base: i64,
    ) -> Result<ProducerCheck, StorageError> {
        let mut appends: Vec<(i64, ProducerEntry, ProducerBatch, i16)> = Vec::new();
        let mut offset = base;
        for h in headers {
            if h.is_idempotent() {
                let known = st.producers.producers.get(&h.producer_id).cloned().unwrap_or_default();
                let mut entry = appends
                    .iter()
                    .rev()
                    .find(|(pid, ..)| *pid == h.producer_id)
                    .map(|(_, e, _, _)| e.clone())
                    .unwrap_or(known);
                match entry.check(h.producer_id, h.producer_epoch, h.base_sequence, h.last_sequence())? {
                    Check::Duplicate(b) if headers.len() == 1 => {
                        info!(
                            dir = %self.dir.display(), producer = h.producer_id, sequence = h.base_sequence,
                            offset = b.first_offset, "duplicate batch from an idempotent producer: answered with its original offset"
                        );
                        return Ok(ProducerCheck::Duplicate { base: b.first_offset, end: b.last_offset + 1 });
                    }
                    Check::Duplicate(_) => {
                        let seq = h.base_sequence;
                        let (producer_id, epoch) = (h.producer_id, h.producer_epoch);
                        return Err(SequenceError::OutOfOrder { producer_id, epoch, seq, last: -1 }.into());
                    }
                    Check::Fresh => {}
                }
                let batch = producer_batch(h, offset);
                entry.record(h.producer_epoch, batch, h.max_timestamp);
                appends.push((h.producer_id, entry, batch, h.producer_epoch));
            }
            offset += i64::from(h.last_offset_delta) + 1;
        }
        for (pid, entry, _, _) in &appends {
            st.producers.producers.insert(*pid, entry.clone());
        }
        Ok(ProducerCheck::Fresh(appends.into_iter().map(|(pid, _, batch, epoch)| (pid, epoch, batch)).collect()))
    }

    /// Queues `records` (batches `headers`) into chunks of the write
    /// segment, rolling it when it is full or old, and moves the log end
    /// past them. A leader's batches go at the log end; a follower's keep
    /// their offsets.
    fn enqueue(
        &self,
        st: &mut State,
        records: &[u8],
        headers: &[BatchHeader],
        producers: Vec<(i64, i16, ProducerBatch)>,
        stamp: Stamp,
    ) {
        let mut producers = producers.into_iter().peekable();
        let mut at = 0;
        let now = now_ms();
        for h in headers {
            let offset = match stamp {
                Stamp::Leader(_) => st.next_offset,
                Stamp::Keep => h.base_offset,
            };
            let bytes = &records[at..at + h.total_len];
            at += h.total_len;
            self.roll_if_due(st, offset, h.total_len as u64, now);
            let (segment_base, position) = (st.write_segment, st.write_pos);
            let fits = st.pending.back().is_some_and(|c| c.segment_base == segment_base && c.room() >= h.total_len);
            if !fits {
                let file = st.segments.last().expect("a segment").file.clone();
                st.pending.push_back(Chunk::new(&file, segment_base, position, offset, h.total_len));
            }
            let chunk = st.pending.back_mut().expect("just ensured");
            let stored = chunk.push(bytes);
            if let Stamp::Leader(epoch) = stamp {
                batch::assign_offset(stored, offset, epoch);
            }
            if producers.peek().is_some_and(|(_, _, b)| b.first_offset == offset) {
                let (pid, epoch, b) = producers.next().expect("peeked");
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
            st.write_pos += h.total_len as u64;
            st.next_offset = entry.last_offset + 1;
        }
        debug_assert_eq!(at, records.len(), "headers must cover the records");
        st.check_invariants();
    }

    /// Starts a new write segment at `offset` when a batch of `len` bytes
    /// would take the current one past `segment.bytes`, or it is
    /// `segment.ms` old.
    fn roll_if_due(&self, st: &mut State, offset: i64, len: u64, now: i64) {
        if st.write_pos == 0 {
            st.write_segment_since_ms = now;
        }
        let limits = self.limits.get();
        let too_big = st.write_pos + len > limits.segment_bytes;
        let too_old = now.saturating_sub(st.write_segment_since_ms) >= limits.segment_ms;
        if st.write_pos > 0 && (too_big || too_old) {
            st.write_segment = offset;
            st.write_pos = 0;
            st.write_segment_since_ms = now;
        }
    }

    /// Makes sure the flusher runs, after letting go of the state (glommio
    /// may run a spawned task at once).
    fn start_flusher(self: &Rc<Self>, mut st: std::cell::RefMut<'_, State>) {
        let start = !st.flushing;
        st.flushing = true;
        drop(st);
        if start {
            glommio::spawn_local(self.clone().flush_loop()).detach();
        }
    }

    /// Resolves once every offset below `end` is durable (or failed).
    /// Fails at once on a closed log, and for offsets a failed write or a
    /// truncation already cut off: no later write would ever answer those
    /// waiters.
    pub fn durable(&self, end: i64) -> impl std::future::Future<Output = Result<(), StorageError>> + use<> {
        // Either the answer now, or a waiter the flusher answers.
        let waiting = {
            let mut st = self.state.borrow_mut();
            if st.durable_end >= end {
                Err(Ok(()))
            } else if st.closed {
                Err(Err(StorageError::Closed))
            } else if end > st.next_offset {
                Err(Err(StorageError::CutOff { end, log_end: st.next_offset }))
            } else {
                let (tx, rx) = local_channel::new_bounded(1);
                st.waiters.push_back((end, tx));
                Ok(rx)
            }
        };
        async move {
            match waiting {
                Err(now) => now,
                Ok(rx) => rx.recv().await.unwrap_or(Err(StorageError::Closed)),
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
            // The file learns of a new epoch before its batches reach disk.
            let written = match self.persist_epochs().await {
                Ok(()) => self.write_group(&mut group, cursor.take()).await,
                Err(e) => Err(e),
            };
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
        let synced = match fail_armed!("append::fsync") {
            true => Err(injected("append::fsync")),
            false => file.fdatasync().await.map_err(io::Error::from),
        };
        match synced {
            Ok(()) => {
                self.synced();
                for chunk in group {
                    self.publish(chunk);
                }
                true
            }
            Err(e) => {
                self.fail(&e);
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
        if fail_armed!("append::discard") {
            // Standing for a crash right after the failure: nothing cleans up.
            return;
        }
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
        self.roll_to(segment_base).await?;
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
        pad_shared_pages(group);
        write_chunks(&file, group).await?;
        Ok(Written { cursor: Cursor { segment_base, pos, tail }, file, messages })
    }

    /// When the group goes to a new segment: seals the active one at its
    /// logical size and makes the new one active.
    async fn roll_to(self: &Rc<Self>, segment_base: i64) -> io::Result<()> {
        let roll = {
            let st = self.state.borrow();
            let active = st.segments.last().expect("a segment");
            (active.base_offset != segment_base)
                .then(|| (active.file.clone(), active.size, active.base_offset, active.index.clone()))
        };
        let Some((old, size, old_base, old_index)) = roll else {
            return Ok(());
        };
        // Seal the old segment at its logical size (dropping page padding):
        // recovery trusts a sealed segment's file length.
        old.truncate(size).await.map_err(io::Error::from)?;
        old.fdatasync().await.map_err(io::Error::from)?;
        if self.state.borrow().closed {
            // Deleted meanwhile: its directory may already belong to a
            // re-created topic of the same name.
            return Err(io::Error::other("partition closed"));
        }
        if fail_armed!("append::roll") {
            return Err(injected("append::roll"));
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
        st.check_invariants();
        drop(st);
        // Only once the old segment is sealed for good: were the new file
        // not made, it would stay active and grow past this index.
        self.seal_in_background(&old, old_base, old_index, segment_base);
        // For retention.ms: the sealed segment may already have expired.
        self.retention_due.notify_all();
        Ok(())
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
        let history = self.truncations.get();
        // Weak: a strong reference would keep retention from recycling the
        // file while this task waits (see `advance_start`).
        let file = Rc::downgrade(file);
        let this = self.clone();
        glommio::spawn_local(async move {
            // Serialized with retention, compaction, close and shutdown, so
            // the index never lands after retention removed the segment or
            // compaction rewrote it, nor in a deleted topic's directory, and
            // snapshots are written in log order.
            let Ok(_serial) = this.file_changes.acquire_permit(1).await else { return };
            let (current, snapshot) = {
                let st = this.state.borrow();
                if st.closed {
                    return;
                }
                let unchanged =
                    |s: &Segment| s.base_offset == base && file.upgrade().is_some_and(|f| Rc::ptr_eq(&f, &s.file));
                // After a truncation the segment may be the active one
                // again, cut: its old index would run past the cut.
                let same_history = this.truncations.get() == history;
                (same_history && st.segments.iter().any(unchanged), same_history && end > this.snapshot_end.get())
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
                    st.move_spare(Spare::Busy);
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
            self.state.borrow_mut().move_spare(Spare::Absent);
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

    /// Whether the last write failed and none has succeeded since (a full
    /// or failing disk).
    pub fn write_failing(&self) -> bool {
        self.state.borrow().write_failing
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

    /// Makes a written chunk visible: index, cache, high watermark, waiters.
    fn publish(self: &Rc<Self>, mut chunk: Chunk) {
        let mut st = self.state.borrow_mut();
        st.write_failing = false;
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
        st.durable_end = end_offset;
        st.high_watermark = st.high_watermark.max(end_offset.min(st.hw_bound));
        st.wake_committed();
        let retention_due = self.oldest_outgrown(&st) && st.retention_signalled_for != st.segments[0].base_offset;
        if retention_due {
            st.retention_signalled_for = st.segments[0].base_offset;
        }
        let durable = st.durable_end;
        while st.waiters.front().is_some_and(|(end, _)| *end <= durable) {
            let (_, w) = st.waiters.pop_front().expect("checked");
            let _ = w.try_send(Ok(()));
        }
        st.check_invariants();
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
        st.write_failing = true;
        st.pending.clear();
        st.next_offset = st.durable_end;
        st.producers = st.durable_producers.clone();
        let durable = st.durable_end;
        st.epochs.truncate_from_end(durable);
        // The leader's epoch still begins here (as `become_leader` said).
        let epoch = st.leader_epoch;
        if st.epochs.latest_epoch().is_none_or(|latest| latest < epoch) {
            st.epochs.assign(epoch, durable);
        }
        st.epochs_dirty = true;
        let active = st.segments.last().expect("a segment");
        let (base, size) = (active.base_offset, active.size);
        st.write_segment = base;
        st.write_pos = size;
        let err = StorageError::Io(e.into());
        for (_, w) in st.waiters.drain(..) {
            let _ = w.try_send(Err(err.clone()));
        }
        // Those waiting for the high watermark past the durable end wait
        // for offsets that are gone.
        let lost = st.hw_waiters.partition_point(|(end, _)| *end <= durable);
        for (_, w) in st.hw_waiters.drain(lost..) {
            let _ = w.try_send(Err(err.clone()));
        }
        st.check_invariants();
    }
}

impl State {
    /// Whether appends may go in now: not once closed, nor while a
    /// truncation cuts the log.
    fn accepting_appends(&self) -> Result<(), StorageError> {
        if self.closed {
            return Err(StorageError::Closed);
        }
        if self.truncating {
            return Err(StorageError::Truncating);
        }
        Ok(())
    }
}

/// Neighbouring chunks share a page where one ends mid-page. Gives every
/// writer of such a page the same contents (the log's bytes up to the
/// group's end, zeros after), so the writes may run concurrently and
/// complete in any order.
fn pad_shared_pages(group: &mut [Chunk]) {
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
}

/// Writes every sealed chunk of a group at once, and waits for all of them
/// before reporting the first failure: the caller then cuts the file back,
/// and a write still in flight could land after.
async fn write_chunks(file: &Rc<DmaFile>, group: &[Chunk]) -> io::Result<()> {
    let writes: Vec<_> = group
        .iter()
        .map(|chunk| {
            let (buf, at) = chunk.write_buf();
            let file = file.clone();
            glommio::spawn_local(async move {
                let total = buf.len();
                if fail_armed!("append::write") {
                    return torn_write(&file, buf.as_bytes(), at).await;
                }
                match file.write_rc_at(buf, at).await {
                    Ok(written) if written == total => Ok(()),
                    Ok(written) => Err(io::Error::other(format!("short write: {written} of {total} bytes"))),
                    Err(e) => Err(io::Error::from(e)),
                }
            })
        })
        .collect();
    let mut result = Ok(());
    for w in writes {
        if let Err(e) = w.await {
            result = result.and(Err(e));
        }
    }
    result
}

/// A write cut short (an injected fault): the first half of `buf`'s pages
/// reach the file, then it fails.
async fn torn_write(file: &DmaFile, buf: &[u8], at: u64) -> io::Result<()> {
    let half = buf.len() / 2 / PAGE as usize * PAGE as usize;
    if half > 0 {
        let mut part = file.alloc_dma_buffer(half);
        part.as_bytes_mut().copy_from_slice(&buf[..half]);
        file.write_at(part, at).await.map_err(io::Error::from)?;
    }
    Err(injected("append::write"))
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

/// An idempotent batch's place, for its producer's state.
fn producer_batch(h: &BatchHeader, first_offset: i64) -> ProducerBatch {
    ProducerBatch {
        first_seq: h.base_sequence,
        last_seq: h.last_sequence(),
        first_offset,
        last_offset: first_offset + i64::from(h.last_offset_delta),
    }
}

/// What an append's idempotent batches are.
enum ProducerCheck {
    /// A retry of the batch already at `base..end`.
    Duplicate { base: i64, end: i64 },
    /// New: (producer id, epoch, batch) for each, in order.
    Fresh(Vec<(i64, i16, ProducerBatch)>),
}

/// Whether an append gives batches their offsets (a leader) or keeps the
/// ones they carry (a follower).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stamp {
    /// Offsets from the log end, and this leader epoch.
    Leader(i32),
    Keep,
}
