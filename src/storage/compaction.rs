//! Log compaction (`cleanup.policy=compact`): keep only the latest record of
//! each key in the sealed segments, and drop tombstones (null values) once
//! they are `delete.retention.ms` old. Offsets never change: a batch keeps its
//! base offset and `lastOffsetDelta` and loses records in between, and a
//! batch left empty is dropped, so the log may have offset gaps, as Kafka's
//! does.
//!
//! A batch's records are read with [`stored_records`] (compressed ones
//! decompressed first, bounded, then walked), and the records that stay are copied as
//! bytes into a batch with the same header (base offset, last offset delta,
//! timestamps, producer fields, LogAppendTime), compressed again with the
//! batch's codec where it had one, as Kafka's cleaner keeps them. A batch
//! that cannot be decompressed or whose records are malformed is kept whole
//! with a warning: nothing on disk may stop compaction.
//!
//! [`stored_records`]: crate::protocol::stored_records

use std::collections::HashMap;
use std::ops::Range;

use tracing::warn;

use super::walk;
use crate::protocol::batch::{self, BatchHeader};
use crate::protocol::rewrite;
use crate::protocol::stored_records::{self, Decoded, RecordView};

/// The records of a stored batch; `None` (with a warning) when they cannot
/// be read: compaction then keeps the batch whole, and its keys do not count.
pub fn records<'a>(batch_bytes: &'a [u8], h: &BatchHeader) -> Option<Decoded<'a>> {
    match stored_records::read(batch_bytes, h) {
        Ok(decoded) => Some(decoded),
        Err(e) => {
            warn!(offset = h.base_offset, "compaction keeps a batch whole: {e}");
            None
        }
    }
}

/// A batch holding only the records at `keep` (ranges into `decoded`),
/// encoded with the batch's codec, with length, record count and CRC-32C
/// fixed; base offset, last offset delta, timestamps and producer fields
/// unchanged (as Kafka's cleaner keeps them). `None` if it cannot be encoded.
pub fn rebuild(batch_bytes: &[u8], decoded: &Decoded<'_>, keep: &[Range<usize>]) -> Option<Vec<u8>> {
    let mut kept = Vec::with_capacity(keep.iter().map(|r| r.len()).sum());
    for r in keep {
        kept.extend_from_slice(&decoded.bytes[r.clone()]);
    }
    let codec = rewrite::codec_of(i16::from_be_bytes([batch_bytes[21], batch_bytes[22]]));
    match rewrite::rebuild(batch_bytes, &kept, keep.len() as i32, codec) {
        Ok(b) => Some(b),
        Err(e) => {
            warn!("compaction keeps a batch it cannot encode again whole: {e}");
            None
        }
    }
}

/// Latest offset of every key seen so far.
pub type LatestByKey = HashMap<Vec<u8>, i64>;

/// Records the keys of one batch into `latest`.
pub fn note_keys(latest: &mut LatestByKey, batch_bytes: &[u8]) {
    let Ok(h) = batch::parse_header(batch_bytes) else {
        return;
    };
    for r in records(batch_bytes, &h).map(|d| d.records).unwrap_or_default() {
        if let Some(k) = r.key {
            latest.insert(k, r.offset);
        }
    }
}

/// The latest offset of every key in a window of whole batches (see
/// [`walk::Windows`]); windows merged in log order give the partition's.
pub fn note_window(window: &[u8]) -> LatestByKey {
    let mut latest = LatestByKey::new();
    for b in walk::batches(window) {
        note_keys(&mut latest, b);
    }
    latest
}

/// A window of whole batches, cleaned (see [`clean_batch`]), and whether a
/// tombstone stayed only because of its age.
pub fn clean_window(latest: &LatestByKey, window: &[u8], tombstone_cutoff_ms: i64) -> (Vec<u8>, bool) {
    let mut out = Vec::with_capacity(window.len());
    let mut young_tombstones = false;
    for b in walk::batches(window) {
        if let Some(kept) = clean_batch(latest, b, tombstone_cutoff_ms, &mut young_tombstones) {
            out.extend_from_slice(&kept);
        }
    }
    (out, young_tombstones)
}

/// The cleaned form of one batch: `None` to drop it, or its bytes (the same
/// bytes when nothing goes, or when it cannot be decoded). A record stays if
/// it has no key, is the latest of its key, and is not a tombstone older
/// than `tombstone_cutoff_ms`. `young_tombstones` is set when a tombstone
/// stays only because of its age (a later pass must look again).
pub fn clean_batch(
    latest: &LatestByKey,
    batch_bytes: &[u8],
    tombstone_cutoff_ms: i64,
    young_tombstones: &mut bool,
) -> Option<Vec<u8>> {
    let Ok(h) = batch::parse_header(batch_bytes) else {
        return Some(batch_bytes.to_vec());
    };
    let Some(decoded) = records(batch_bytes, &h) else {
        return Some(batch_bytes.to_vec());
    };
    let mut stays = |r: &RecordView| match &r.key {
        None => true,
        Some(k) => {
            let is_latest = latest.get(k) == Some(&r.offset);
            if is_latest && r.value.is_none() && h.max_timestamp >= tombstone_cutoff_ms {
                *young_tombstones = true;
            }
            is_latest && !(r.value.is_none() && h.max_timestamp < tombstone_cutoff_ms)
        }
    };
    let keep: Vec<Range<usize>> = decoded.records.iter().filter(|r| stays(r)).map(|r| r.range.clone()).collect();
    match keep.len() {
        0 => None,
        n if n == decoded.records.len() => Some(batch_bytes.to_vec()),
        _ => Some(rebuild(batch_bytes, &decoded, &keep).unwrap_or_else(|| batch_bytes.to_vec())),
    }
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::records::{Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions};

    use super::*;

    /// A batch of (key, value) records at offsets base.. with timestamp ts.
    fn batch(base: i64, ts: i64, recs: &[(&[u8], Option<&[u8]>)]) -> Vec<u8> {
        batch::testing::keyed_batch(base, ts, recs)
    }

    #[test]
    fn keeps_latest_per_key_and_expires_tombstones() {
        let b1 = batch(0, 100, &[(b"a", Some(b"1")), (b"b", Some(b"1")), (b"a", Some(b"2"))]);
        let b2 = batch(3, 200, &[(b"b", None), (b"c", Some(b"1"))]);
        let mut latest = LatestByKey::new();
        note_keys(&mut latest, &b1);
        note_keys(&mut latest, &b2);
        assert_eq!(latest[&b"a".to_vec()], 2);
        // b1: only a=2 (offset 2) stays; offsets and the batch's span are kept
        let c1 = clean_batch(&latest, &b1, 0, &mut false).unwrap();
        let h = batch::validate(&c1).expect("a valid batch with a correct CRC");
        assert_eq!((h.base_offset, h.last_offset(), h.record_count), (0, 2, 1));
        let r = records(&c1, &h).unwrap().records;
        assert_eq!((r[0].offset, r[0].key.as_deref()), (2, Some(&b"a"[..])));
        // b2 unchanged while the tombstone is young, then the tombstone goes
        assert_eq!(clean_batch(&latest, &b2, 150, &mut false).unwrap(), b2);
        let c2 = clean_batch(&latest, &b2, 250, &mut false).unwrap();
        let h2 = batch::validate(&c2).unwrap();
        assert_eq!(records(&c2, &h2).unwrap().records.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![4]);
        // a batch whose records are all superseded is dropped
        let b3 = batch(5, 300, &[(b"c", Some(b"0"))]);
        let mut l2 = latest.clone();
        l2.insert(b"c".to_vec(), 9);
        assert_eq!(clean_batch(&l2, &b3, 0, &mut false), None);
    }

    fn record(offset: i64, key: &[u8], value: Option<&[u8]>) -> Record {
        Record {
            producer_id: 7,
            producer_epoch: 1,
            sequence: offset as i32,
            ..crate::protocol::record::plain(
                offset,
                1000 + offset,
                Some(Bytes::copy_from_slice(key)),
                value.map(Bytes::copy_from_slice),
            )
        }
    }

    fn compressed(recs: &[Record], codec: Compression) -> Vec<u8> {
        let mut out = BytesMut::new();
        RecordBatchEncoder::encode(&mut out, recs.iter(), &RecordEncodeOptions { version: 2, compression: codec })
            .unwrap();
        out.to_vec()
    }

    #[test]
    fn compressed_batches_are_cleaned_and_keep_their_codec() {
        for codec in [Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
            let b1 = compressed(
                &[
                    record(0, b"a", Some(b"1")),
                    record(1, b"b", Some(b"1")),
                    record(2, b"a", Some(b"2")),
                    record(3, b"c", Some(b"1")),
                ],
                codec,
            );
            let b2 = compressed(&[record(4, b"b", Some(b"2")), record(5, b"d", None)], codec);
            let mut latest = LatestByKey::new();
            note_keys(&mut latest, &b1);
            note_keys(&mut latest, &b2);
            assert_eq!((latest[&b"a".to_vec()], latest[&b"b".to_vec()], latest[&b"d".to_vec()]), (2, 4, 5));
            let c1 = clean_batch(&latest, &b1, 0, &mut false).unwrap();
            let h = batch::validate(&c1).expect("a valid batch with a correct CRC");
            assert_eq!(rewrite::codec_of(h.attributes), codec);
            // Kafka's cleaner keeps a batch's offset span: record offsets
            // stay deltas from the same base.
            assert_eq!((h.base_offset, h.last_offset(), h.record_count, h.producer_id), (0, 3, 2, 7));
            let kept: Vec<(i64, Option<Bytes>, Option<Bytes>)> = RecordBatchDecoder::decode(&mut Bytes::from(c1))
                .unwrap()
                .records
                .into_iter()
                .map(|r| (r.offset, r.key, r.value))
                .collect();
            assert_eq!(
                kept,
                vec![
                    (2, Some(Bytes::from_static(b"a")), Some(Bytes::from_static(b"2"))),
                    (3, Some(Bytes::from_static(b"c")), Some(Bytes::from_static(b"1")))
                ]
            );
            // All latest, the tombstone young: unchanged; then the tombstone goes.
            let mut young = false;
            assert_eq!(clean_batch(&latest, &b2, 0, &mut young).unwrap(), b2);
            assert!(young);
            let c2 = clean_batch(&latest, &b2, i64::MAX, &mut false).unwrap();
            let h2 = batch::validate(&c2).unwrap();
            assert_eq!(records(&c2, &h2).unwrap().records.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![4]);
            // Wholly superseded: dropped.
            let mut l2 = latest.clone();
            l2.insert(b"c".to_vec(), 9);
            l2.insert(b"a".to_vec(), 9);
            assert_eq!(clean_batch(&l2, &b1, 0, &mut false), None);
        }
    }

    #[test]
    fn a_cleaned_log_append_time_batch_keeps_its_append_time() {
        let mut b = compressed(&[record(0, b"a", Some(b"1")), record(1, b"a", Some(b"2"))], Compression::Lz4);
        let h = batch::parse_header(&b).unwrap();
        batch::stamp_log_append_time(&mut b, &h, 99_999);
        let mut latest = LatestByKey::new();
        note_keys(&mut latest, &b);
        let c = clean_batch(&latest, &b, 0, &mut false).unwrap();
        let h = batch::validate(&c).unwrap();
        assert_ne!(h.attributes & batch::LOG_APPEND_TIME, 0);
        assert_eq!((h.max_timestamp, h.base_offset, h.last_offset(), h.record_count), (99_999, 0, 1, 1));
    }

    #[test]
    fn a_batch_with_lying_counts_is_kept_whole_without_allocating_by_them() {
        // A valid CRC over a record count of 2^31-1 and one real record: the
        // crash loop of a compacted topic (the count sized an allocation).
        let mut b = batch(0, 100, &[(b"a", Some(b"1"))]);
        b[23..27].copy_from_slice(&i32::MAX.to_be_bytes());
        b[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
        batch::reseal(&mut b);
        let mut latest = LatestByKey::new();
        note_keys(&mut latest, &b);
        assert!(latest.is_empty());
        assert_eq!(clean_batch(&latest, &b, 0, &mut false).unwrap(), b);
        // Garbage behind a compressed codec's bits: kept whole too.
        let mut z = b.clone();
        z[22] |= 4;
        batch::reseal(&mut z);
        assert_eq!(clean_window(&latest, &z, 0).0, z);
    }
}
