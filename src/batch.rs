//! A view over Kafka v2 record batches that never decodes individual records
//! on the hot path: it validates the fixed header and the CRC-32C, and rewrites
//! the base offset in place when the batch is appended. The one place the
//! batch header's layout is written down: the broker, its tools and the load
//! generator all read headers through it.

use thiserror::Error;

/// Size of the v2 batch header up to (and including) the record count.
pub const HEADER_LEN: usize = 61;
/// Bytes before the `batchLength` field counts: baseOffset + batchLength.
pub const LOG_OVERHEAD: usize = 12;

/// Byte positions of the header's fields.
pub const BASE_OFFSET: usize = 0;
pub const BATCH_LENGTH: usize = 8;
pub const LEADER_EPOCH: usize = 12;
pub const MAGIC: usize = 16;
pub const CRC: usize = 17;
pub const ATTRIBUTES: usize = 21;
pub const LAST_OFFSET_DELTA: usize = 23;
pub const BASE_TIMESTAMP: usize = 27;
pub const MAX_TIMESTAMP: usize = 35;
pub const PRODUCER_ID: usize = 43;
pub const PRODUCER_EPOCH: usize = 51;
pub const BASE_SEQUENCE: usize = 53;
pub const RECORD_COUNT: usize = 57;

/// Why a batch was rejected.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BatchError {
    #[error("batch truncated: {have} bytes, need {need}")]
    Truncated { have: usize, need: usize },
    #[error("unsupported record batch magic {0} (only v2 is accepted)")]
    Magic(i8),
    #[error("batch length {0} is invalid")]
    Length(i32),
    #[error("CRC-32C mismatch: header says {stored:#010x}, computed {computed:#010x}")]
    Crc { stored: u32, computed: u32 },
    #[error("record count {count} does not match last offset delta {delta}")]
    Count { count: i32, delta: i32 },
}

fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The fixed header fields of one batch that storage needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Total size of the batch on disk, `LOG_OVERHEAD` included.
    pub total_len: usize,
    /// The leader epoch that wrote it (-1 as a producer sends it).
    pub leader_epoch: i32,
    /// `lastOffsetDelta`: the batch covers `base_offset ..= base_offset + delta`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
    /// Compression and flags.
    pub attributes: i16,
    /// Number of records.
    pub record_count: i32,
    /// Idempotent producer id (-1 for none).
    pub producer_id: i64,
    /// Its epoch.
    pub producer_epoch: i16,
    /// Sequence number of the first record.
    pub base_sequence: i32,
}

impl BatchHeader {
    /// Whether the batch comes from an idempotent producer.
    pub fn is_idempotent(&self) -> bool {
        self.producer_id >= 0
    }

    /// Sequence number of the last record (wrapping as Kafka's do).
    pub fn last_sequence(&self) -> i32 {
        let last = i64::from(self.base_sequence) + i64::from(self.last_offset_delta);
        if last > i64::from(i32::MAX) { (last - i64::from(i32::MAX) - 1) as i32 } else { last as i32 }
    }

    /// Offset of the last record in the batch.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }
}

/// Reads the header of the batch at the start of `buf` and checks its framing
/// (length and magic), without checking the CRC.
pub fn parse_header(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    if buf.len() < HEADER_LEN {
        return Err(BatchError::Truncated { have: buf.len(), need: HEADER_LEN });
    }
    let batch_length = i32_at(buf, BATCH_LENGTH);
    if batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32 {
        return Err(BatchError::Length(batch_length));
    }
    let magic = buf[MAGIC] as i8;
    if magic != 2 {
        return Err(BatchError::Magic(magic));
    }
    let total_len = batch_length as usize + LOG_OVERHEAD;
    if buf.len() < total_len {
        return Err(BatchError::Truncated { have: buf.len(), need: total_len });
    }
    let last_offset_delta = i32_at(buf, LAST_OFFSET_DELTA);
    let record_count = i32_at(buf, RECORD_COUNT);
    // Compaction removes records from stored batches while keeping their
    // offset span, so a stored batch may hold fewer records than its span.
    if record_count < 0 || last_offset_delta < 0 || i64::from(record_count) > i64::from(last_offset_delta) + 1 {
        return Err(BatchError::Count { count: record_count, delta: last_offset_delta });
    }
    Ok(BatchHeader {
        base_offset: i64_at(buf, BASE_OFFSET),
        total_len,
        leader_epoch: i32_at(buf, LEADER_EPOCH),
        last_offset_delta,
        base_timestamp: i64_at(buf, BASE_TIMESTAMP),
        max_timestamp: i64_at(buf, MAX_TIMESTAMP),
        attributes: i16::from_be_bytes([buf[ATTRIBUTES], buf[ATTRIBUTES + 1]]),
        record_count,
        producer_id: i64_at(buf, PRODUCER_ID),
        producer_epoch: i16::from_be_bytes([buf[PRODUCER_EPOCH], buf[PRODUCER_EPOCH + 1]]),
        base_sequence: i32_at(buf, BASE_SEQUENCE),
    })
}

/// The fields a reader needs to walk a log: read from the first
/// [`HEADER_LEN`] bytes of a batch, without needing the rest of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peek {
    /// First offset.
    pub base_offset: i64,
    /// Last offset.
    pub last_offset: i64,
    /// Largest timestamp.
    pub max_timestamp: i64,
    /// Size of the whole batch, log overhead included.
    pub total_len: usize,
    /// The leader epoch that wrote it.
    pub leader_epoch: i32,
}

/// Reads a stored batch's header; `None` if `buf` is shorter than a header
/// or the length field is impossible (which, in a validated log, means the
/// walk went off the batch boundaries).
pub fn peek(buf: &[u8]) -> Option<Peek> {
    if buf.len() < HEADER_LEN {
        return None;
    }
    let batch_length = i32_at(buf, BATCH_LENGTH);
    if batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32 {
        return None;
    }
    let base_offset = i64_at(buf, BASE_OFFSET);
    Some(Peek {
        base_offset,
        last_offset: base_offset + i64::from(i32_at(buf, LAST_OFFSET_DELTA)),
        max_timestamp: i64_at(buf, MAX_TIMESTAMP),
        total_len: batch_length as usize + LOG_OVERHEAD,
        leader_epoch: i32_at(buf, LEADER_EPOCH),
    })
}

/// Parses and fully validates (CRC included) the batch at the start of `buf`.
pub fn validate(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = parse_header(buf)?;
    let stored = u32::from_be_bytes(buf[CRC..CRC + 4].try_into().expect("4 bytes"));
    let computed = crate::crc::crc32c(&buf[ATTRIBUTES..header.total_len]);
    if stored != computed {
        return Err(BatchError::Crc { stored, computed });
    }
    Ok(header)
}

/// Validates every batch in a produce request's `records` and returns their
/// headers. All-or-nothing: one bad batch rejects the whole set.
pub fn validate_all(mut buf: &[u8]) -> Result<Vec<BatchHeader>, BatchError> {
    let mut headers = Vec::with_capacity(1);
    if buf.is_empty() {
        return Err(BatchError::Truncated { have: 0, need: HEADER_LEN });
    }
    while !buf.is_empty() {
        let h = validate(buf)?;
        // Offsets are assigned per batch: a produced batch must hold exactly
        // the records its offset span says, or its records' offsets would
        // overlap the next batch's.
        if h.record_count == 0 || i64::from(h.record_count) != i64::from(h.last_offset_delta) + 1 {
            return Err(BatchError::Count { count: h.record_count, delta: h.last_offset_delta });
        }
        buf = &buf[h.total_len..];
        headers.push(h);
    }
    Ok(headers)
}

/// Assigns the batch its place in the log: the base offset and the partition
/// leader epoch sit outside the CRC's range, so the CRC stays valid.
pub fn assign_offset(batch: &mut [u8], base_offset: i64, leader_epoch: i32) {
    batch[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
    batch[LEADER_EPOCH..LEADER_EPOCH + 4].copy_from_slice(&leader_epoch.to_be_bytes());
}

/// Attributes bit 3: the batch's timestamps are the broker's append time.
pub const LOG_APPEND_TIME: i16 = 1 << 3;

/// Recomputes the CRC of the batch at the start of `batch` (after a rewrite
/// of fields it covers), over as much of it as its length field and the
/// buffer allow.
pub fn reseal(batch: &mut [u8]) {
    if batch.len() <= ATTRIBUTES {
        return;
    }
    let end = (i32_at(batch, BATCH_LENGTH).max(0) as usize + LOG_OVERHEAD).min(batch.len());
    if end > ATTRIBUTES {
        let crc = crate::crc::crc32c(&batch[ATTRIBUTES..end]);
        batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

/// Marks the (valid) batch `header` describes as LogAppendTime with max
/// timestamp `now_ms`, and reseals it.
pub fn stamp_log_append_time(batch: &mut [u8], header: &BatchHeader, now_ms: i64) {
    let attributes = header.attributes | LOG_APPEND_TIME;
    batch[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&now_ms.to_be_bytes());
    reseal(&mut batch[..header.total_len]);
}

/// Whether the batch's records are compressed (attributes bits 0-2).
pub fn is_compressed(attributes: i16) -> bool {
    attributes & 0x7 != 0
}

/// Small valid batches for tests (the broker's and this crate's).
pub mod testing {
    use super::*;

    /// Builds a valid uncompressed batch of `n` (at most 63) tiny records
    /// with timestamps `ts0, ts0+1, ...`.
    pub fn make_batch(n: i32, ts0: i64) -> Vec<u8> {
        let mut records = Vec::new();
        for i in 0..n {
            let mut rec = vec![0u8]; // attributes
            rec.push(zig(i64::from(i))); // timestamp delta
            rec.push(zig(i64::from(i))); // offset delta
            rec.push(1); // key length -1
            rec.push(2); // value length 1
            rec.push(b'x');
            rec.push(0); // headers
            records.push(zig(rec.len() as i64));
            records.extend_from_slice(&rec);
        }
        let mut b = vec![0u8; HEADER_LEN];
        b.extend_from_slice(&records);
        let len = (b.len() - LOG_OVERHEAD) as i32;
        b[8..12].copy_from_slice(&len.to_be_bytes());
        b[16] = 2;
        b[23..27].copy_from_slice(&(n - 1).to_be_bytes());
        b[27..35].copy_from_slice(&ts0.to_be_bytes());
        b[35..43].copy_from_slice(&(ts0 + i64::from(n) - 1).to_be_bytes());
        b[43..51].copy_from_slice(&(-1i64).to_be_bytes());
        b[57..61].copy_from_slice(&n.to_be_bytes());
        let crc = crate::crc::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    /// A valid uncompressed batch of (key, value) records at offsets
    /// `base..`, all with timestamp `ts` (a `None` value is a tombstone).
    pub fn keyed_batch(base: i64, ts: i64, recs: &[(&[u8], Option<&[u8]>)]) -> Vec<u8> {
        let mut body = Vec::new();
        for (i, (k, v)) in recs.iter().enumerate() {
            let mut r = vec![0u8];
            r.extend(varint(0));
            r.extend(varint(i as i64));
            r.extend(varint(k.len() as i64));
            r.extend_from_slice(k);
            match v {
                Some(v) => {
                    r.extend(varint(v.len() as i64));
                    r.extend_from_slice(v);
                }
                None => r.extend(varint(-1)),
            }
            r.extend(varint(0));
            body.extend(varint(r.len() as i64));
            body.extend(r);
        }
        let mut b = vec![0u8; HEADER_LEN];
        b.extend(body);
        let n = recs.len() as i32;
        b[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&base.to_be_bytes());
        let len = (b.len() - LOG_OVERHEAD) as i32;
        b[BATCH_LENGTH..BATCH_LENGTH + 4].copy_from_slice(&len.to_be_bytes());
        b[MAGIC] = 2;
        b[LAST_OFFSET_DELTA..LAST_OFFSET_DELTA + 4].copy_from_slice(&(n - 1).to_be_bytes());
        b[BASE_TIMESTAMP..BASE_TIMESTAMP + 8].copy_from_slice(&ts.to_be_bytes());
        b[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&ts.to_be_bytes());
        b[PRODUCER_ID..PRODUCER_ID + 8].copy_from_slice(&(-1i64).to_be_bytes());
        b[RECORD_COUNT..RECORD_COUNT + 4].copy_from_slice(&n.to_be_bytes());
        reseal(&mut b);
        b
    }

    /// A zigzag varint.
    fn varint(v: i64) -> Vec<u8> {
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

    fn zig(v: i64) -> u8 {
        let z = ((v << 1) ^ (v >> 63)) as u64;
        assert!(z < 0x80, "test helper only encodes one-byte varints");
        z as u8
    }
}

#[cfg(test)]
mod tests {
    use super::testing::make_batch;
    use super::*;

    #[test]
    fn valid_batch_passes_and_offset_rewrite_keeps_crc() {
        let mut b = make_batch(3, 1000);
        let h = validate(&b).unwrap();
        assert_eq!(h.record_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.total_len, b.len());
        assign_offset(&mut b, 42, 0);
        let h = validate(&b).unwrap();
        assert_eq!(h.base_offset, 42);
        assert_eq!(h.last_offset(), 44);
    }

    #[test]
    fn corrupt_crc_is_rejected() {
        let mut b = make_batch(2, 0);
        let last = b.len() - 1;
        b[last] ^= 0xff;
        assert!(matches!(validate(&b), Err(BatchError::Crc { .. })));
    }

    #[test]
    fn truncated_and_bad_magic_are_rejected() {
        let b = make_batch(2, 0);
        assert!(matches!(validate(&b[..b.len() - 1]), Err(BatchError::Truncated { .. })));
        assert!(matches!(validate(&b[..10]), Err(BatchError::Truncated { .. })));
        let mut m = b.clone();
        m[16] = 1;
        assert_eq!(validate(&m), Err(BatchError::Magic(1)));
        // record count 2 with lastOffsetDelta 0 (CRC fixed up so only the count is wrong)
        let mut c = b.clone();
        c[23..27].copy_from_slice(&0i32.to_be_bytes());
        let crc = crate::crc::crc32c(&c[21..]);
        c[17..21].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(validate(&c), Err(BatchError::Count { count: 2, delta: 0 }));
        // fewer records than the span: a compacted stored batch, but not a produced one
        let mut f = b.clone();
        f[23..27].copy_from_slice(&5i32.to_be_bytes());
        let crc = crate::crc::crc32c(&f[21..]);
        f[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(validate(&f).is_ok());
        assert_eq!(validate_all(&f), Err(BatchError::Count { count: 2, delta: 5 }));
        assert!(validate_all(&[]).is_err());
    }
}
