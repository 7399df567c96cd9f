//! Reads: batches from an offset (cache, then segments), and offsets by
//! timestamp for ListOffsets.

use std::io;
use std::rc::Rc;

use glommio::io::DmaFile;

use crate::protocol::batch;
use crate::protocol::batch_walk;
use crate::storage::walk;

use super::*;

impl PartitionLog {
    /// Reads whole batches from the one containing `offset`, up to
    /// `max_bytes` and below the high watermark, as a consumer sees the
    /// log; with `min_one`, at least one batch even if it is larger
    /// (KIP-74: only the first partition of a fetch response gets this).
    pub async fn read(&self, offset: i64, max_bytes: usize, min_one: bool) -> Result<Fetched, ReadError> {
        self.read_below(offset, max_bytes, min_one, Reader::Consumer).await
    }

    /// As [`Self::read`], up to the durable end: what a follower replica
    /// fetching from this one gets.
    pub async fn read_as_replica(&self, offset: i64, max_bytes: usize, min_one: bool) -> Result<Fetched, ReadError> {
        self.read_below(offset, max_bytes, min_one, Reader::Replica).await
    }

    /// Reads from the cache, else the segments, the batches below the
    /// reader's bound. An offset past the log end is out of range; one at
    /// or past the bound but inside the log reads nothing, as in Kafka.
    async fn read_below(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
        reader: Reader,
    ) -> Result<Fetched, ReadError> {
        let (segs, bound, empty) = {
            let st = self.state.borrow();
            let (hw, start, end) = (st.high_watermark, st.log_start_offset, st.next_offset);
            if offset < start || offset > end {
                return Err(ReadError::OutOfRange { offset, start, end });
            }
            let bound = match reader {
                Reader::Consumer => hw,
                Reader::Replica => st.durable_end,
            };
            let empty = Fetched { pieces: Vec::new(), high_watermark: hw, log_start_offset: start };
            if offset >= bound {
                return Ok(empty);
            }
            if let Some(pieces) = st.cache.read(offset, bound, max_bytes, min_one) {
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
            // Batches at or past the bound are in the segments only when
            // the bound trails the durable end (a replicated log).
            let bound = (bound < st.durable_end).then_some(bound);
            (segs, bound, empty)
        };
        let history = self.truncations.get();
        let read = read_segments(&segs, offset, bound, max_bytes, min_one).await;
        if self.truncations.get() != history {
            // The log was cut while this read waited: what it read (or
            // failed to read past a shortened file) may not be the log now.
            // Nothing, and the reader asks again.
            return Ok(empty);
        }
        Ok(match read? {
            Some(records) => Fetched { pieces: vec![records], ..empty },
            None => empty,
        })
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
        let io_err = |e: io::Error| ReadError::Io(e.into());
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

/// The batches from the one holding `offset` in `segs` (file, where to start
/// walking, size), up to `max_bytes` and none starting at or past `bound`.
async fn read_segments(
    segs: &[(Rc<DmaFile>, u64, u64)],
    offset: i64,
    bound: Option<i64>,
    max_bytes: usize,
    min_one: bool,
) -> Result<Option<bytes::Bytes>, ReadError> {
    let io_err = |e: io::Error| ReadError::Io(e.into());
    for (file, pos, end) in segs {
        if let Some((at, first)) = walk::find(file, *pos, *end, |p| p.last_offset >= offset).await.map_err(io_err)? {
            let records = walk::read_from(file, at, &first, *end, max_bytes, min_one).await.map_err(io_err)?;
            return Ok(Some(match bound {
                Some(b) => records.slice(..walk::len_below(&records, b)),
                None => records,
            }));
        }
    }
    Ok(None)
}

/// Who reads, which sets how far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reader {
    /// Up to the high watermark.
    Consumer,
    /// Up to the durable end.
    Replica,
}
