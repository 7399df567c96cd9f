//! The record batch every request carries, built once: re-sending it needs
//! no per-record work. Before each send the batch is stamped with the send
//! time (header timestamps and, when uncompressed, the first record's value,
//! in microseconds, for end-to-end latency), and its CRC is recomputed from
//! the stamped bytes and the template's CRC of the unchanged rest: a load
//! generator sharing the machine with the broker should cost as little as
//! fio does (the full CRC of each 256 KiB batch was 6% of a 2-core
//! machine's time in a one-partition run, docs/BENCHMARKS.md).

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

use sluice::batch::{ATTRIBUTES, BASE_SEQUENCE, BASE_TIMESTAMP, CRC, HEADER_LEN, MAX_TIMESTAMP};

/// The first record starts right after the batch header.
const FIRST_RECORD: usize = HEADER_LEN;

/// A batch template and where its first value starts (for stamping).
#[derive(Clone)]
pub struct Template {
    bytes: BytesMut,
    /// Offset of the first record's value, when the batch is uncompressed.
    value_at: Option<usize>,
    /// Where the bytes that stamping changes end.
    stamped_end: usize,
    /// CRC-32C of the bytes after `stamped_end`, which stamping leaves alone.
    rest_crc: u32,
}

/// Microseconds since the epoch.
pub fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

fn read_varint(b: &[u8], pos: &mut usize) -> i64 {
    let (mut v, mut shift) = (0u64, 0);
    loop {
        let byte = b[*pos];
        *pos += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

impl Template {
    /// `n` records of `size` bytes (at least 8), with `key`, in one batch.
    pub fn new(n: usize, size: usize, key: Option<Bytes>, compression: Compression) -> Self {
        let value = Bytes::from(vec![b'x'; size.max(8)]);
        let records: Vec<Record> = (0..n)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The encoder starts a new batch wherever offset - sequence
                // changes; equal deltas keep all records in one batch. The
                // base sequence is reset to -1 (not idempotent) below.
                sequence: i as i32,
                timestamp: 0,
                key: key.clone(),
                value: Some(value.clone()),
                headers: IndexMap::new(),
            })
            .collect();
        let mut bytes = BytesMut::new();
        RecordBatchEncoder::encode(&mut bytes, &records, &RecordEncodeOptions { version: 2, compression })
            .expect("a record batch encodes");
        bytes[BASE_SEQUENCE..BASE_SEQUENCE + 4].copy_from_slice(&(-1i32).to_be_bytes());
        let value_at = (compression == Compression::None).then(|| {
            // length, attributes, timestamp delta, offset delta, key length (+ key), value length
            let mut pos = FIRST_RECORD;
            read_varint(&bytes, &mut pos);
            pos += 1;
            read_varint(&bytes, &mut pos);
            read_varint(&bytes, &mut pos);
            let klen = read_varint(&bytes, &mut pos);
            pos += klen.max(0) as usize;
            read_varint(&bytes, &mut pos);
            pos
        });
        let stamped_end = value_at.map_or(MAX_TIMESTAMP + 8, |at| at + 8);
        let rest_crc = crc32c(&bytes[stamped_end..]);
        Self { bytes, value_at, stamped_end, rest_crc }
    }

    /// A copy stamped with `sent_us` (microseconds since the epoch).
    pub fn stamped(&self, sent_us: i64) -> Bytes {
        let mut b = self.bytes.clone();
        self.stamp(&mut b, sent_us);
        b.freeze()
    }

    /// Bytes of the batch.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// Stamps a copy of this batch in place (where it sits inside an
    /// encoded request) with `sent_us`, and recomputes its CRC.
    pub fn stamp(&self, b: &mut [u8], sent_us: i64) {
        assert_eq!(b.len(), self.bytes.len(), "a copy of this template");
        let ms = sent_us / 1000;
        b[BASE_TIMESTAMP..BASE_TIMESTAMP + 8].copy_from_slice(&ms.to_be_bytes());
        b[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&ms.to_be_bytes());
        if let Some(at) = self.value_at {
            b[at..at + 8].copy_from_slice(&sent_us.to_be_bytes());
        }
        let (head, rest) = (&b[ATTRIBUTES..self.stamped_end], self.bytes.len() - self.stamped_end);
        debug_assert_eq!(crc32c(&b[self.stamped_end..]), self.rest_crc, "the rest is the template's");
        let crc = crc32c::crc32c_combine(crc32c(head), self.rest_crc, rest);
        b[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

/// When each batch in a fetched record set was sent (µs since the epoch),
/// and its record count, read from the batch headers (and the first value
/// of uncompressed batches); no record is decoded.
pub fn sent_times(mut data: &[u8], out: &mut Vec<(i64, u64)>) {
    while let Ok(h) = sluice::batch::parse_header(data) {
        let b = &data[..h.total_len];
        let count = h.record_count.max(0) as u64;
        let mut sent = h.max_timestamp * 1000;
        if !sluice::batch::is_compressed(h.attributes) && count > 0 {
            let mut pos = FIRST_RECORD;
            read_varint(b, &mut pos);
            pos += 1;
            read_varint(b, &mut pos);
            read_varint(b, &mut pos);
            let klen = read_varint(b, &mut pos);
            pos += klen.max(0) as usize;
            if read_varint(b, &mut pos) >= 8 && pos + 8 <= b.len() {
                sent = i64::from_be_bytes(b[pos..pos + 8].try_into().expect("8 bytes"));
            }
        }
        out.push((sent, count));
        data = &data[h.total_len..];
    }
}

/// CRC-32C (Castagnoli), as record batches use.
fn crc32c(data: &[u8]) -> u32 {
    sluice::crc::crc32c(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamped_batches_keep_a_valid_crc_and_carry_their_send_time() {
        for compression in [Compression::None, Compression::Zstd] {
            let t = Template::new(4, 100, None, compression);
            let b = t.stamped(1_700_000_000_123_456);
            let len = i32::from_be_bytes(b[8..12].try_into().unwrap()) as usize + 12;
            assert_eq!(len, b.len());
            let stored = u32::from_be_bytes(b[17..21].try_into().unwrap());
            assert_eq!(stored, crc32c::crc32c(&b[21..]));
            let mut out = Vec::new();
            sent_times(&b, &mut out);
            let want = if compression == Compression::None { 1_700_000_000_123_456 } else { 1_700_000_000_123_000 };
            assert_eq!(out, vec![(want, 4)]);
        }
    }
}
