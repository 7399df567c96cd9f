//! Batch rewrites that a topic's settings ask for, off the default path: a
//! topic with `compression.type=producer` and CreateTime stores batches
//! exactly as sent. `message.timestamp.type=LogAppendTime` stamps each batch
//! with the broker's clock (attributes bit 3 and the max timestamp, then a new
//! CRC), as Kafka does. A `compression.type` codec other than the producer's
//! decodes the batch's records and encodes them again with that codec
//! (kafka-protocol's codecs: Kafka's xerial snappy framing and raw snappy are
//! both read).

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Compression, RecordBatchEncoder, RecordEncodeOptions};
use thiserror::Error;

use super::{batch, decompress};

/// Why a batch could not be rewritten (it is then refused as corrupt).
#[derive(Debug, Error)]
pub enum RewriteError {
    #[error("cannot decode the batch's records: {0}")]
    Decode(String),
    #[error("cannot encode the batch's records: {0}")]
    Encode(String),
}

/// A topic's `compression.type`: `None` keeps the producer's codec.
pub fn target_codec(setting: &str) -> Option<Compression> {
    match setting {
        "uncompressed" => Some(Compression::None),
        "gzip" => Some(Compression::Gzip),
        "snappy" => Some(Compression::Snappy),
        "lz4" => Some(Compression::Lz4),
        "zstd" => Some(Compression::Zstd),
        _ => None,
    }
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

/// Re-encodes every batch of `records` with `codec`, keeping records,
/// timestamps, headers and producer fields.
pub fn recompress(records: &[u8], codec: Compression) -> Result<Bytes, RewriteError> {
    let mut out = BytesMut::with_capacity(records.len());
    let mut rest = Bytes::copy_from_slice(records);
    while !rest.is_empty() {
        let h = batch::parse_header(&rest).map_err(|e| RewriteError::Decode(e.to_string()))?;
        let one = rest.split_to(h.total_len);
        let records =
            decompress::records(&one, decompress::MAX_DECOMPRESSED).map_err(|e| RewriteError::Decode(e.to_string()))?;
        if records.is_empty() {
            return Err(RewriteError::Decode("a batch without records".into()));
        }
        let options = RecordEncodeOptions { version: 2, compression: codec };
        RecordBatchEncoder::encode(&mut out, records.iter(), &options)
            .map_err(|e| RewriteError::Encode(e.to_string()))?;
    }
    Ok(out.freeze())
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
    use kafka_protocol::records::RecordBatchDecoder;

    use super::*;
    use crate::protocol::batch::tests::make_batch;

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
        for codec in [Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
            let z = recompress(&b, codec).unwrap();
            let h = batch::validate(&z).unwrap();
            assert_eq!(codec_of(h.attributes), codec);
            assert_eq!(h.record_count, 5);
            let back = recompress(&z, Compression::None).unwrap();
            let mut a = Bytes::copy_from_slice(&b);
            let mut c = back.clone();
            let ra = RecordBatchDecoder::decode(&mut a).unwrap().records;
            let rc = RecordBatchDecoder::decode(&mut c).unwrap().records;
            assert_eq!(ra.len(), rc.len());
            for (x, y) in ra.iter().zip(&rc) {
                assert_eq!((&x.key, &x.value, x.timestamp, x.offset), (&y.key, &y.value, y.timestamp, y.offset));
            }
        }
    }
}
