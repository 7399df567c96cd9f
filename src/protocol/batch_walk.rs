//! The records of one batch, walked with [`record_walk`] as its codec
//! requires: in place when uncompressed, through a bounded decompressing
//! stream when compressed. Produce uses it to refuse a batch whose records
//! are not what its header says before anything is stored.

use std::io::Read;

use super::batch::{self, BatchHeader, HEADER_LEN};
use super::decompress;
use super::record_walk::{Shape, Slice, Stream, Walk, WalkError};
use super::rewrite::codec_of;

/// What a walk learned about a batch's records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Facts {
    /// Some record has a null key (compacted topics refuse those).
    pub null_key: bool,
    /// The records' bytes, decompressed.
    pub records_bytes: u64,
}

enum Inner<'a> {
    Plain(Walk<Slice<'a>>),
    Compressed(Walk<Stream<Box<dyn Read + 'a>>>),
}

/// A walk over the records of one valid batch (header, length and CRC
/// already checked), advanced in steps of decompressed bytes.
pub struct BatchWalk<'a> {
    inner: Inner<'a>,
    facts: Facts,
}

impl<'a> BatchWalk<'a> {
    /// Starts a walk of `batch` (exactly one batch, `header` its header),
    /// allowing its records to decompress to at most `max_decompressed`.
    pub fn new(batch: &'a [u8], header: &BatchHeader, max_decompressed: usize) -> Result<Self, WalkError> {
        debug_assert_eq!(batch.len(), header.total_len, "one whole batch");
        let records = &batch[HEADER_LEN..];
        let codec_id = header.attributes & 0x7;
        if codec_id > 4 {
            // Ids 5-7 name no codec: stored, they would stop every consumer.
            return Err(WalkError::Codec(format!("unknown compression type id {codec_id}")));
        }
        let inner = if batch::is_compressed(header.attributes) {
            let codec = codec_of(header.attributes);
            let reader = decompress::reader(records, codec, max_decompressed).map_err(|e| match e {
                decompress::DecompressError::TooLarge { max } => WalkError::TooLarge { max: max as u64 },
                other => WalkError::Codec(other.to_string()),
            })?;
            Inner::Compressed(Walk::new(Stream::new(reader, max_decompressed as u64), header.record_count))
        } else {
            Inner::Plain(Walk::new(Slice::new(records), header.record_count))
        };
        Ok(BatchWalk { inner, facts: Facts::default() })
    }

    /// Walks at least `bytes` more decompressed bytes (or to the end);
    /// `Ok(true)` once every record is walked and found well formed.
    pub fn step(&mut self, bytes: u64) -> Result<bool, WalkError> {
        let facts = &mut self.facts;
        let mut visit = |s: &Shape| {
            facts.null_key |= s.key.is_none();
            facts.records_bytes = s.range.end;
        };
        match &mut self.inner {
            Inner::Plain(w) => w.advance(bytes, &mut visit),
            Inner::Compressed(w) => w.advance(bytes, &mut visit),
        }
    }

    /// What the walk has seen so far.
    pub fn facts(&self) -> Facts {
        self.facts
    }
}

/// The first record of a stored `batch` whose timestamp is at least
/// `target`, as (offset, timestamp): ListOffsets by time and by the largest
/// timestamp (-3). Compressed records are read through a decompressing
/// stream bounded by `max_decompressed`, as Kafka reads them. `None` if no
/// record is that new or the records do not walk.
pub fn first_at_or_after(
    batch: &[u8],
    header: &BatchHeader,
    target: i64,
    max_decompressed: usize,
) -> Option<(i64, i64)> {
    if header.max_timestamp < target || batch.len() != header.total_len {
        return None;
    }
    let log_append = header.attributes & batch::LOG_APPEND_TIME != 0;
    let mut found = None;
    let mut visit = |s: &Shape| {
        // With LogAppendTime every record carries the batch's timestamp.
        let ts = if log_append { header.max_timestamp } else { header.base_timestamp.wrapping_add(s.timestamp_delta) };
        if found.is_none() && ts >= target {
            found = Some((header.base_offset.wrapping_add(i64::from(s.offset_delta)), ts));
        }
    };
    let records = &batch[HEADER_LEN..];
    let (count, last) = (header.record_count, header.last_offset_delta);
    let walked = if batch::is_compressed(header.attributes) {
        let reader = decompress::reader(records, codec_of(header.attributes), max_decompressed).ok()?;
        Walk::stored(Stream::new(reader, max_decompressed as u64), count, last).run(&mut visit)
    } else {
        Walk::stored(Slice::new(records), count, last).run(&mut visit)
    };
    walked.ok().and(found)
}

/// Walks every record of `batch` at once (for tests; produce steps
/// through with yields).
#[cfg(test)]
pub fn check(batch: &[u8], header: &BatchHeader, max_decompressed: usize) -> Result<Facts, WalkError> {
    let mut walk = BatchWalk::new(batch, header, max_decompressed)?;
    while !walk.step(u64::MAX)? {}
    Ok(walk.facts())
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions};

    use super::*;

    fn encoded(n: usize, key: Option<&'static [u8]>, codec: Compression) -> Vec<u8> {
        let records: Vec<_> = (0..n)
            .map(|i| Record {
                // The encoder starts a new batch where offset minus sequence changes.
                sequence: i as i32,
                ..crate::protocol::record::plain(
                    i as i64,
                    5,
                    key.map(Bytes::from_static),
                    Some(Bytes::from(vec![b'v'; 100])),
                )
            })
            .collect();
        let mut out = BytesMut::new();
        RecordBatchEncoder::encode(&mut out, records.iter(), &RecordEncodeOptions { version: 2, compression: codec })
            .unwrap();
        out.to_vec()
    }

    const CODECS: [Compression; 5] =
        [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];

    #[test]
    fn every_codec_walks_and_reports_null_keys() {
        for codec in CODECS {
            let b = encoded(50, Some(b"k"), codec);
            let h = batch::validate(&b).unwrap();
            let facts = check(&b, &h, 1 << 20).unwrap();
            assert!(!facts.null_key, "{codec:?}");
            assert!(facts.records_bytes > 5000, "{codec:?}");
            let b = encoded(3, None, codec);
            assert!(check(&b, &batch::validate(&b).unwrap(), 1 << 20).unwrap().null_key, "{codec:?}");
        }
    }

    #[test]
    fn a_lying_record_count_is_refused_in_every_codec() {
        for codec in CODECS {
            let b = encoded(10, Some(b"k"), codec);
            let mut h = batch::validate(&b).unwrap();
            h.record_count = i32::MAX;
            assert!(matches!(check(&b, &h, 1 << 20), Err(WalkError::Truncated { index: 10 })), "{codec:?}");
            h.record_count = 9;
            assert_eq!(check(&b, &h, 1 << 20), Err(WalkError::Trailing { count: 9 }), "{codec:?}");
        }
    }

    #[test]
    fn compressed_records_past_the_bound_are_refused() {
        for codec in CODECS.into_iter().skip(1) {
            let b = encoded(1000, Some(b"k"), codec);
            let h = batch::validate(&b).unwrap();
            assert!(matches!(check(&b, &h, 50_000), Err(WalkError::TooLarge { .. })), "{codec:?}");
        }
    }

    #[test]
    fn the_first_record_at_a_timestamp_is_found_in_every_codec() {
        for codec in CODECS {
            let records: Vec<_> = [10, 30, 20, 30]
                .iter()
                .enumerate()
                .map(|(i, &ts)| Record {
                    sequence: i as i32,
                    ..crate::protocol::record::plain(100 + i as i64, ts, None, Some(Bytes::from_static(b"v")))
                })
                .collect();
            let mut out = BytesMut::new();
            let options = RecordEncodeOptions { version: 2, compression: codec };
            RecordBatchEncoder::encode(&mut out, records.iter(), &options).unwrap();
            let h = batch::validate(&out).unwrap();
            assert_eq!(first_at_or_after(&out, &h, 5, 1 << 20), Some((100, 10)), "{codec:?}");
            assert_eq!(first_at_or_after(&out, &h, 25, 1 << 20), Some((101, 30)), "{codec:?}");
            assert_eq!(first_at_or_after(&out, &h, 30, 1 << 20), Some((101, 30)), "{codec:?}");
            assert_eq!(first_at_or_after(&out, &h, 31, 1 << 20), None, "{codec:?}");
        }
    }

    #[test]
    fn garbage_compressed_records_are_refused() {
        for codec in CODECS.into_iter().skip(1) {
            let mut b = encoded(10, Some(b"k"), codec);
            for x in &mut b[HEADER_LEN + 4..] {
                *x = x.wrapping_mul(31).wrapping_add(7);
            }
            batch::reseal(&mut b);
            let h = batch::validate(&b).unwrap();
            assert!(check(&b, &h, 1 << 20).is_err(), "{codec:?}");
        }
    }
}
