//! Batch rewrites that a topic's settings ask for, off the default path: a
//! topic with `compression.type=producer` and CreateTime stores batches
//! exactly as sent. `message.timestamp.type=LogAppendTime` stamps each batch
//! with the broker's clock (attributes bit 3 and the max timestamp, then a new
//! CRC), as Kafka does. A `compression.type` codec other than the producer's
//! decodes the batch's records and encodes them again with that codec
//! (kafka-protocol's codecs: Kafka's xerial snappy framing and raw snappy are
//! both read).

use kafka_protocol::records::Compression;
use thiserror::Error;

use super::{batch, decompress};

/// Why a batch could not be rewritten (it is then refused as corrupt).
#[derive(Debug, Error)]
pub enum RewriteError {
    #[error("cannot decode the batch's records: {0}")]
    Decode(String),
    #[error("cannot encode the batch's records: {0}")]
    Encode(String),
    #[error("the rewritten batch would be larger than max.message.bytes {max}")]
    TooLarge { max: usize },
}

/// A topic's `compression.type`: `None` keeps the producer's codec.
pub fn target_codec(setting: &str) -> Option<Compression> {
    sluice::client::codec_by_name(setting)
}

/// The codec a batch's attributes name.
pub fn codec_of(attributes: i16) -> Compression {
    match attributes & 0x7 {
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        4 => Compression::Zstd,
        _ => Compression::None,
    }
}

/// The batch whose header is `batch`'s first [`batch::HEADER_LEN`] bytes
/// with its records replaced: `records` (uncompressed record bytes, `count`
/// records) compressed with `codec`. Offsets, timestamps and producer fields
/// stay; the codec bits, length, count and CRC are new. No record is
/// decoded: a record's bytes are the same in every codec.
pub fn rebuild(batch: &[u8], records: &[u8], count: i32, codec: Compression) -> Result<Vec<u8>, RewriteError> {
    let mut out = Vec::with_capacity(batch::HEADER_LEN + records.len() / 2);
    out.extend_from_slice(&batch[..batch::HEADER_LEN]);
    compress_into(&mut out, records, codec)?;
    let batch_length = i32::try_from(out.len() - batch::LOG_OVERHEAD)
        .map_err(|_| RewriteError::Encode(format!("a batch of {} bytes", out.len())))?;
    // Attributes bits 0-2 are the codec's id, which is its discriminant.
    let attributes = (i16::from_be_bytes([out[21], out[22]]) & !0x7) | codec as i16;
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    out[57..61].copy_from_slice(&count.to_be_bytes());
    batch::reseal(&mut out);
    Ok(out)
}

/// Appends `records` compressed with `codec` (kafka-protocol's codecs,
/// so the framing is what Kafka's clients read) to `out`.
fn compress_into(out: &mut Vec<u8>, records: &[u8], codec: Compression) -> Result<(), RewriteError> {
    use kafka_protocol::compression::{Gzip, Lz4, Snappy, Zstd};
    match codec {
        Compression::None => {
            out.extend_from_slice(records);
            Ok(())
        }
        Compression::Gzip => compress_with::<Gzip>(out, records),
        Compression::Snappy => compress_with::<Snappy>(out, records),
        Compression::Lz4 => compress_with::<Lz4>(out, records),
        Compression::Zstd => compress_with::<Zstd>(out, records),
    }
}

/// Appends `records` compressed with kafka-protocol's compressor `C`.
fn compress_with<C>(out: &mut Vec<u8>, records: &[u8]) -> Result<(), RewriteError>
where
    C: kafka_protocol::compression::Compressor<Vec<u8>>,
    C::BufMut: bytes::BufMut,
{
    C::compress(out, |tmp| {
        bytes::BufMut::put_slice(tmp, records);
        Ok(())
    })
    .map_err(|e| RewriteError::Encode(e.to_string()))
}

/// One valid batch (`header` its header, its records already walked and
/// found well formed) re-encoded with `codec`, refused once it would be
/// larger than `max_batch` bytes; its records may decompress to at most
/// `max_decompressed` bytes.
pub fn recompress(
    one: &[u8],
    header: &batch::BatchHeader,
    codec: Compression,
    max_decompressed: usize,
    max_batch: usize,
) -> Result<Vec<u8>, RewriteError> {
    // Uncompressed, the batch is its header plus its records: refuse before
    // decompressing what could not be stored anyway.
    let bound = if codec == Compression::None {
        max_decompressed.min(max_batch.saturating_sub(batch::HEADER_LEN))
    } else {
        max_decompressed
    };
    let records =
        decompress::decompress(&one[batch::HEADER_LEN..], codec_of(header.attributes), bound).map_err(|e| match e {
            decompress::DecompressError::TooLarge { .. } if codec == Compression::None => {
                RewriteError::TooLarge { max: max_batch }
            }
            other => RewriteError::Decode(other.to_string()),
        })?;
    let out = rebuild(one, &records, header.record_count, codec)?;
    if out.len() > max_batch {
        return Err(RewriteError::TooLarge { max: max_batch });
    }
    Ok(out)
}

/// Stamps every batch of `records` with the broker's append time `now_ms`.
pub fn stamp_log_append_time(records: &mut [u8], now_ms: i64) {
    let mut at = 0;
    while at < records.len() {
        let b = &mut records[at..];
        let h = batch::parse_header(b).expect("validated before stamping");
        batch::stamp_log_append_time(b, &h, now_ms);
        at += h.total_len;
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use kafka_protocol::records::RecordBatchDecoder;

    use super::*;
    use crate::protocol::batch::testing::make_batch;

    #[test]
    fn stamping_keeps_the_batch_valid_and_marks_it() {
        let mut b = make_batch(3, 1000);
        stamp_log_append_time(&mut b, 1234);
        let h = batch::validate(&b).expect("valid after stamping");
        assert_eq!(h.max_timestamp, 1234);
        assert_ne!(h.attributes & batch::LOG_APPEND_TIME, 0);
    }

    #[test]
    fn recompression_round_trips_records() {
        let b = make_batch(5, 1000);
        let h0 = batch::validate(&b).unwrap();
        for codec in [Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
            let z = recompress(&b, &h0, codec, 1 << 20, 1 << 20).unwrap();
            let h = batch::validate(&z).unwrap();
            assert_eq!(codec_of(h.attributes), codec);
            assert_eq!((h.record_count, h.last_offset_delta, h.max_timestamp), (5, 4, h0.max_timestamp));
            let back = recompress(&z, &h, Compression::None, 1 << 20, 1 << 20).unwrap();
            assert_eq!(back, b, "{codec:?}: the same bytes back");
            let mut a = Bytes::copy_from_slice(&z);
            let rs = RecordBatchDecoder::decode(&mut a).unwrap().records;
            assert_eq!(rs.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
        }
    }

    #[test]
    fn recompression_refuses_a_result_past_the_batch_limit() {
        let big = make_batch(60, 0);
        let z = recompress(&big, &batch::validate(&big).unwrap(), Compression::Zstd, 1 << 20, 1 << 20).unwrap();
        let hz = batch::validate(&z).unwrap();
        let max = z.len() + 10;
        assert!(big.len() > max);
        match recompress(&z, &hz, Compression::None, 1 << 20, max) {
            Err(RewriteError::TooLarge { max: m }) if m == max => {}
            other => panic!("{other:?}"),
        }
    }
}
