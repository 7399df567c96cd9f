//! The records of a stored batch, for the readers that need them one by
//! one: compaction (keys, tombstones, which bytes to keep) and the group
//! replay (keys and values of `__consumer_offsets`). A compressed batch is
//! decompressed whole (bounded by [`decompress::MAX_DECOMPRESSED`]), then
//! walked with [`record_walk`]; no count or length from the batch sizes an
//! allocation. Stored batches may have been thinned by compaction, so
//! their offset deltas need only increase.

use std::borrow::Cow;
use std::ops::Range;

use thiserror::Error;

use super::batch::{self, BatchHeader, HEADER_LEN};
use super::decompress::{self, DecompressError};
use super::record_walk::{Slice, Walk, WalkError};
use super::rewrite;

/// One record of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordView {
    /// Its offset.
    pub offset: i64,
    /// Its key (`None`: null key).
    pub key: Option<Vec<u8>>,
    /// Its value (`None`: a tombstone, a delete marker for its key), as a
    /// range of the records' bytes.
    pub value: Option<Range<usize>>,
    /// Where its bytes (length prefix included) sit in the batch's records,
    /// decompressed.
    pub range: Range<usize>,
}

/// A batch's records, decompressed, and what they hold.
pub struct Decoded<'a> {
    /// The records' bytes.
    pub bytes: Cow<'a, [u8]>,
    /// Each record.
    pub records: Vec<RecordView>,
}

/// Why a stored batch's records cannot be read.
#[derive(Debug, Error)]
pub enum StoredError {
    #[error("cannot decompress it: {0}")]
    Decompress(#[from] DecompressError),
    #[error("its records are malformed: {0}")]
    Walk(#[from] WalkError),
}

/// The records of the stored batch `batch_bytes` (`h` its header).
pub fn read<'a>(batch_bytes: &'a [u8], h: &BatchHeader) -> Result<Decoded<'a>, StoredError> {
    let data = &batch_bytes[HEADER_LEN..h.total_len.min(batch_bytes.len())];
    let bytes = if batch::is_compressed(h.attributes) {
        let codec = rewrite::codec_of(h.attributes);
        Cow::Owned(Vec::from(decompress::decompress(data, codec, decompress::MAX_DECOMPRESSED)?))
    } else {
        Cow::Borrowed(data)
    };
    let mut records = Vec::new();
    Walk::stored(Slice::new(&bytes), h.record_count, h.last_offset_delta).run(&mut |s| {
        records.push(RecordView {
            // Wrapping: a corrupt base offset must not panic a debug build.
            offset: h.base_offset.wrapping_add(i64::from(s.offset_delta)),
            key: s.key.as_ref().map(|k| bytes[k.start as usize..k.end as usize].to_vec()),
            value: s.value.as_ref().map(|v| v.start as usize..v.end as usize),
            range: s.range.start as usize..s.range.end as usize,
        })
    })?;
    Ok(Decoded { bytes, records })
}
