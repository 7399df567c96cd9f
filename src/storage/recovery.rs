//! Recovery scan of a segment on start: walk its batches, validate each
//! header and CRC-32C, and find where the intact log ends. Everything after
//! the first bad byte is a torn or corrupt tail that was never acknowledged
//! (acknowledgement follows fdatasync), and is cut off by the caller.
//!
//! A recycled segment file (`recycle::MARK`) holds a deleted segment's bytes
//! past its log's end. There a batch is accepted only if it is intact and
//! starts exactly at the offset due: the old segment's batches all lie below
//! this segment's base, and old record data that happens to look like a
//! batch with some later offset is refused too. What stops the scan there is
//! reported as the old contents ([`ScanResult::stale_tail`]) unless it is a
//! batch of this log, i.e. a torn write.

use std::io;

use glommio::io::DmaFile;

use super::index::{BatchEntry, SegmentIndex};
use crate::protocol::batch::{self, HEADER_LEN, LOG_OVERHEAD};

/// Read window for the scan.
const WINDOW: usize = 1 << 20;

/// What a scan found.
#[derive(Debug)]
pub struct ScanResult {
    /// The index of the intact batches.
    pub index: SegmentIndex,
    /// Bytes of intact data: the segment's logical end.
    pub valid_len: u64,
    /// File size before any cut.
    pub file_len: u64,
    /// Why the scan stopped before the end of the file, if it did and the
    /// rest was not just zero padding from a partial-page write nor a
    /// recycled file's old contents.
    pub torn: Option<String>,
    /// The scan stopped at a recycled file's old contents: the bytes after
    /// `valid_len` were never this log's.
    pub stale_tail: bool,
}

struct Window {
    start: u64,
    buf: Vec<u8>,
}

impl Window {
    /// Makes `[pos, pos + need)` available; false if the file is shorter.
    async fn fill(&mut self, file: &DmaFile, file_len: u64, pos: u64, need: usize) -> io::Result<bool> {
        if pos + need as u64 > file_len {
            return Ok(false);
        }
        let end = self.start + self.buf.len() as u64;
        if pos >= self.start && pos + need as u64 <= end {
            return Ok(true);
        }
        let len = need.max(WINDOW).min((file_len - pos) as usize);
        let read = file.read_at(pos, len).await.map_err(io::Error::from)?;
        self.buf.clear();
        self.buf.extend_from_slice(&read);
        self.start = pos;
        Ok(self.buf.len() >= need)
    }

    /// Whether a batch header starting at offset `offset` is at `pos`
    /// (whatever its CRC says).
    async fn starts_batch_at(&mut self, file: &DmaFile, file_len: u64, pos: u64, offset: i64) -> io::Result<bool> {
        Ok(self.fill(file, file_len, pos, HEADER_LEN).await?
            && batch::peek(self.slice(pos, HEADER_LEN)).is_some_and(|p| p.base_offset == offset))
    }

    fn slice(&self, pos: u64, len: usize) -> &[u8] {
        let rel = (pos - self.start) as usize;
        &self.buf[rel..rel + len]
    }
}

/// Where a scan starts and what it already knows.
pub struct ScanFrom {
    /// Byte position of the first batch to scan.
    pub position: u64,
    /// Offset that batch must have.
    pub offset: i64,
    /// Index of everything before `position`.
    pub index: SegmentIndex,
    /// Check each batch's CRC-32C (off only after a clean shutdown, when the
    /// tail is known to be intact and only its headers are walked).
    pub verify_crc: bool,
    /// The file was recycled (`recycle::MARK`): every batch is checked, and
    /// must start exactly at the offset due.
    pub recycled: bool,
}

impl ScanFrom {
    /// A full, verifying scan of the segment based at `base`.
    pub fn start(base: i64, recycled: bool) -> Self {
        Self { position: 0, offset: base, index: SegmentIndex::new(), verify_crc: true, recycled }
    }
}

/// Scans a segment from `from`. Only the last segment may end in zero padding
/// (from a partial-page write); a sealed segment was truncated to its logical
/// size when it was rolled.
pub async fn scan(
    file: &DmaFile,
    segment_base: i64,
    from: ScanFrom,
    is_last: bool,
    index_interval: u64,
) -> io::Result<ScanResult> {
    let file_len = file.file_size().await.map_err(io::Error::from)?;
    let mut w = Window { start: 0, buf: Vec::new() };
    let mut index = from.index;
    let mut pos = from.position;
    let mut expected = from.offset;
    let torn = loop {
        if pos == file_len {
            break None;
        }
        if !w.fill(file, file_len, pos, HEADER_LEN).await? {
            break Some(format!("{} trailing bytes are shorter than a batch header", file_len - pos));
        }
        let head = w.slice(pos, HEADER_LEN);
        let batch_length = i32::from_be_bytes(head[8..12].try_into().expect("4"));
        if is_last && batch_length == 0 && head.iter().all(|&b| b == 0) {
            // Zero padding from the last partial-page write, or a torn zero page.
            break None;
        }
        if batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32 {
            break Some(format!("invalid batch length {batch_length}"));
        }
        let total = batch_length as usize + LOG_OVERHEAD;
        if !w.fill(file, file_len, pos, total).await? {
            break Some(format!("batch of {total} bytes runs past the end of the file"));
        }
        let checked = if from.verify_crc || from.recycled {
            batch::validate(w.slice(pos, total))
        } else {
            batch::parse_header(w.slice(pos, total))
        };
        match checked {
            // `>=`: compaction may leave gaps between batches (but never in
            // the active segment, the only one that can be recycled).
            Ok(h) if h.base_offset == expected || (h.base_offset > expected && !from.recycled) => {
                index.append(
                    &BatchEntry {
                        base_offset: h.base_offset,
                        last_offset: h.last_offset(),
                        max_timestamp: h.max_timestamp,
                        segment_base,
                        position: pos,
                        len: total as u32,
                    },
                    index_interval,
                );
                expected = h.last_offset() + 1;
                pos += total as u64;
            }
            Ok(h) => {
                break Some(format!("batch has offset {} where {expected} was due", h.base_offset));
            }
            Err(e) => break Some(e.to_string()),
        }
    };
    // In a recycled file only a batch of this log (its header intact, at the
    // offset due) is a torn write; anything else is the old contents.
    let stale_tail = from.recycled && torn.is_some() && !w.starts_batch_at(file, file_len, pos, expected).await?;
    let torn = if stale_tail { None } else { torn };
    Ok(ScanResult { index, valid_len: pos, file_len, torn, stale_tail })
}
