//! Log compaction (`cleanup.policy=compact`): keep only the latest record of
//! each key in the sealed segments, and drop tombstones (null values) once
//! they are `delete.retention.ms` old. Offsets never change: a batch keeps its
//! base offset and `lastOffsetDelta` and loses records in between, and a
//! batch left empty is dropped, so the log may have offset gaps, as Kafka's
//! does. Records are decoded only here, never on the produce/fetch path.
//!
//! Uncompressed batches are cut in place (base offset and last offset delta
//! kept, as Kafka's cleaner keeps them). Compressed batches are decompressed
//! (kafka-protocol's codecs) and, when some of their records go, encoded
//! again with the same codec from the records that stay: the batch then
//! starts at its first kept record's offset and ends at its last kept one
//! (record offsets never change), keeps its producer fields, and a batch
//! stamped with LogAppendTime keeps its append time. A batch that cannot be
//! decoded is kept whole.

use std::collections::HashMap;
use std::ops::Range;

use bytes::BytesMut;
use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions};
use tracing::warn;

use super::walk;
use crate::protocol::batch::{self, BatchHeader, HEADER_LEN};
use crate::protocol::{decompress, rewrite};

/// One record of an uncompressed batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordView {
    /// Its offset.
    pub offset: i64,
    /// Its key (`None`: null key).
    pub key: Option<Vec<u8>>,
    /// Null value: a delete marker for its key.
    pub tombstone: bool,
    /// Where its bytes sit inside the batch.
    pub range: Range<usize>,
}

/// The records of an uncompressed batch; `None` for a compressed or
/// malformed one (which compaction then keeps as it is).
pub fn records(batch_bytes: &[u8], h: &BatchHeader) -> Option<Vec<RecordView>> {
    if batch::is_compressed(h.attributes) {
        return None;
    }
    let mut out = Vec::with_capacity(h.record_count as usize);
    let mut pos = HEADER_LEN;
    for _ in 0..h.record_count {
        let len = usize::try_from(batch::read_varint(batch_bytes, &mut pos)?).ok()?;
        let start = pos;
        let end = start.checked_add(len).filter(|&e| e <= batch_bytes.len())?;
        let mut p = start + 1; // attributes
        batch::read_varint(batch_bytes, &mut p)?; // timestamp delta
        let offset_delta = batch::read_varint(batch_bytes, &mut p)?;
        let key_len = batch::read_varint(batch_bytes, &mut p)?;
        let key = if key_len < 0 {
            None
        } else {
            let k = batch_bytes.get(p..p + key_len as usize)?.to_vec();
            p += key_len as usize;
            Some(k)
        };
        let value_len = batch::read_varint(batch_bytes, &mut p)?;
        // The record's own length prefix is part of what is kept.
        let prefix = varint_len(len as i64);
        out.push(RecordView {
            offset: h.base_offset + offset_delta,
            key,
            tombstone: value_len < 0,
            range: start - prefix..end,
        });
        pos = end;
    }
    Some(out)
}

fn varint_len(v: i64) -> usize {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    let mut n = 1;
    while z >= 0x80 {
        z >>= 7;
        n += 1;
    }
    n
}

/// A batch holding only the records at `keep` (ranges into `batch_bytes`),
/// with length, record count and CRC-32C fixed; base offset, last offset
/// delta and timestamps unchanged.
pub fn rebuild(batch_bytes: &[u8], keep: &[Range<usize>]) -> Vec<u8> {
    let mut out = batch_bytes[..HEADER_LEN].to_vec();
    for r in keep {
        out.extend_from_slice(&batch_bytes[r.clone()]);
    }
    let batch_length = (out.len() - batch::LOG_OVERHEAD) as i32;
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    out[57..61].copy_from_slice(&(keep.len() as i32).to_be_bytes());
    let crc = crate::crc::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out
}

/// Latest offset of every key seen so far.
pub type LatestByKey = HashMap<Vec<u8>, i64>;

/// The records of a compressed batch, decompressed; `None` when they cannot
/// be decoded or expand past [`decompress::MAX_DECOMPRESSED`] (the batch is
/// then kept whole, and its keys do not count).
fn decompressed(batch_bytes: &[u8]) -> Option<Vec<Record>> {
    match decompress::records(batch_bytes, decompress::MAX_DECOMPRESSED) {
        Ok(records) => Some(records),
        Err(e) => {
            warn!("compaction keeps a batch it cannot decode whole: {e}");
            None
        }
    }
}

/// Records the keys of one batch into `latest`.
pub fn note_keys(latest: &mut LatestByKey, batch_bytes: &[u8]) {
    let Ok(h) = batch::parse_header(batch_bytes) else {
        return;
    };
    if batch::is_compressed(h.attributes) {
        for r in decompressed(batch_bytes).unwrap_or_default() {
            if let Some(k) = r.key {
                latest.insert(k.to_vec(), r.offset);
            }
        }
        return;
    }
    for r in records(batch_bytes, &h).unwrap_or_default() {
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
/// bytes when nothing goes). A record stays if it has no key, is the latest
/// of its key, and is not a tombstone older than `tombstone_cutoff_ms`.
/// `young_tombstones` is set when a tombstone stays only because of its age
/// (a later pass must look again).
pub fn clean_batch(
    latest: &LatestByKey,
    batch_bytes: &[u8],
    tombstone_cutoff_ms: i64,
    young_tombstones: &mut bool,
) -> Option<Vec<u8>> {
    let Ok(h) = batch::parse_header(batch_bytes) else {
        return Some(batch_bytes.to_vec());
    };
    let mut stays = |key: Option<&[u8]>, offset: i64, tombstone: bool| match key {
        None => true,
        Some(k) => {
            let is_latest = latest.get(k) == Some(&offset);
            if is_latest && tombstone && h.max_timestamp >= tombstone_cutoff_ms {
                *young_tombstones = true;
            }
            is_latest && !(tombstone && h.max_timestamp < tombstone_cutoff_ms)
        }
    };
    if batch::is_compressed(h.attributes) {
        let Some(recs) = decompressed(batch_bytes) else {
            return Some(batch_bytes.to_vec());
        };
        let keep: Vec<&Record> = recs.iter().filter(|r| stays(r.key.as_deref(), r.offset, r.value.is_none())).collect();
        return match keep.len() {
            0 => None,
            n if n == recs.len() => Some(batch_bytes.to_vec()),
            _ => Some(reencode(batch_bytes, &h, &keep)),
        };
    }
    let Some(recs) = records(batch_bytes, &h) else {
        return Some(batch_bytes.to_vec());
    };
    let keep: Vec<Range<usize>> =
        recs.iter().filter(|r| stays(r.key.as_deref(), r.offset, r.tombstone)).map(|r| r.range.clone()).collect();
    match keep.len() {
        0 => None,
        n if n == recs.len() => Some(batch_bytes.to_vec()),
        _ => Some(rebuild(batch_bytes, &keep)),
    }
}

/// A compressed batch holding only `keep` (some of its records), encoded
/// with its codec; the batch as it was when that fails.
fn reencode(batch_bytes: &[u8], h: &BatchHeader, keep: &[&Record]) -> Vec<u8> {
    let options = RecordEncodeOptions { version: 2, compression: rewrite::codec_of(h.attributes) };
    let mut out = BytesMut::with_capacity(batch_bytes.len());
    if RecordBatchEncoder::encode(&mut out, keep.iter().copied(), &options).is_err() {
        return batch_bytes.to_vec();
    }
    let mut out = out.to_vec();
    if h.attributes & batch::LOG_APPEND_TIME != 0 {
        // The encoder takes the records' own timestamps: restore the append time.
        match batch::parse_header(&out) {
            Ok(nh) => batch::stamp_log_append_time(&mut out, &nh, h.max_timestamp),
            Err(_) => return batch_bytes.to_vec(),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use kafka_protocol::records::Compression;

    use super::*;

    fn zig(v: i64) -> Vec<u8> {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        let mut out = Vec::new();
        loop {
            if z < 0x80 {
                out.push(z as u8);
                return out;
            }
            out.push((z as u8 & 0x7f) | 0x80);
            z >>= 7;
        }
    }

    /// A batch of (key, value) records at offsets base.. with timestamp ts.
    fn batch(base: i64, ts: i64, recs: &[(&[u8], Option<&[u8]>)]) -> Vec<u8> {
        let mut body = Vec::new();
        for (i, (k, v)) in recs.iter().enumerate() {
            let mut r = vec![0u8];
            r.extend(zig(0));
            r.extend(zig(i as i64));
            r.extend(zig(k.len() as i64));
            r.extend_from_slice(k);
            match v {
                Some(v) => {
                    r.extend(zig(v.len() as i64));
                    r.extend_from_slice(v);
                }
                None => r.extend(zig(-1)),
            }
            r.extend(zig(0));
            body.extend(zig(r.len() as i64));
            body.extend(r);
        }
        let mut b = vec![0u8; HEADER_LEN];
        b.extend(body);
        let n = recs.len() as i32;
        b[0..8].copy_from_slice(&base.to_be_bytes());
        let len = (b.len() - 12) as i32;
        b[8..12].copy_from_slice(&len.to_be_bytes());
        b[16] = 2;
        b[23..27].copy_from_slice(&(n - 1).to_be_bytes());
        b[27..35].copy_from_slice(&ts.to_be_bytes());
        b[35..43].copy_from_slice(&ts.to_be_bytes());
        b[57..61].copy_from_slice(&n.to_be_bytes());
        let crc = crate::crc::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
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
        let r = records(&c1, &h).unwrap();
        assert_eq!((r[0].offset, r[0].key.as_deref()), (2, Some(&b"a"[..])));
        // b2 unchanged while the tombstone is young, then the tombstone goes
        assert_eq!(clean_batch(&latest, &b2, 150, &mut false).unwrap(), b2);
        let c2 = clean_batch(&latest, &b2, 250, &mut false).unwrap();
        let h2 = batch::validate(&c2).unwrap();
        assert_eq!(records(&c2, &h2).unwrap().iter().map(|r| r.offset).collect::<Vec<_>>(), vec![4]);
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
            assert_eq!((h.base_offset, h.last_offset(), h.record_count, h.producer_id), (2, 3, 2, 7));
            let kept: Vec<(i64, Option<Bytes>, Option<Bytes>)> =
                decompressed(&c1).unwrap().into_iter().map(|r| (r.offset, r.key, r.value)).collect();
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
            assert_eq!(decompressed(&c2).unwrap().iter().map(|r| r.offset).collect::<Vec<_>>(), vec![4]);
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
        assert_eq!((h.max_timestamp, h.base_offset, h.record_count), (99_999, 1, 1));
    }
}
