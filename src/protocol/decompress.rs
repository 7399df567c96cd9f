//! Decoding a compressed record batch with a bound on what it expands to.
//!
//! kafka-protocol's codecs decompress into memory with no limit, so a small
//! batch that expands to gigabytes (a "zip bomb", or a buggy producer) would
//! make the broker allocate until the process dies. Worse, once such a batch
//! is in a compacted topic's log, every compaction pass after a restart
//! would decode it again. The broker decodes records in two places, both
//! off the default produce/fetch path: a topic's `compression.type` rewrite
//! and compaction. Both go through [`records`], which decompresses with our
//! own bounded readers and hands the result to kafka-protocol's record
//! decoder. The formats are Kafka's: gzip, LZ4 frames, zstd, and snappy in
//! xerial's framing or raw.

use std::io::Read;

use bytes::{Buf, Bytes};
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder};
use thiserror::Error;

/// Most bytes one batch may decompress to. Kafka sets no such limit; a batch
/// is at most `message.max.bytes` compressed (1 MiB by default), and log
/// lines rarely compress beyond 20:1.
pub const MAX_DECOMPRESSED: usize = 256 << 20;

/// Why a batch's records could not be decoded.
#[derive(Debug, Error)]
pub enum DecompressError {
    #[error("the batch decompresses to more than {max} bytes")]
    TooLarge { max: usize },
    #[error("cannot decompress the batch: {0}")]
    Codec(#[from] std::io::Error),
    #[error("snappy: {0}")]
    Snappy(#[from] snap::Error),
    #[error("cannot decode the batch's records: {0}")]
    Records(String),
}

/// The records of one batch (compressed or not), decompressing at most
/// `max` bytes.
pub fn records(batch: &[u8], max: usize) -> Result<Vec<Record>, DecompressError> {
    let mut buf = Bytes::copy_from_slice(batch);
    let decoded = RecordBatchDecoder::decode_with_custom_compression(
        &mut buf,
        Some(|data: &mut Bytes, codec: Compression| {
            let data = data.copy_to_bytes(data.remaining());
            Ok(decompress(&data, codec, max)?)
        }),
    );
    match decoded {
        Ok(set) => Ok(set.records),
        Err(e) => match e.downcast::<DecompressError>() {
            Ok(ours) => Err(ours),
            Err(e) => Err(DecompressError::Records(e.to_string())),
        },
    }
}

/// `data` decompressed with `codec`, or an error once it would pass `max`.
pub fn decompress(data: &[u8], codec: Compression, max: usize) -> Result<Bytes, DecompressError> {
    match codec {
        Compression::None => bounded(data, max),
        Compression::Gzip => bounded(flate2::read::GzDecoder::new(data), max),
        Compression::Lz4 => bounded(super::lz4_frame::Lz4Frame::new(data)?, max),
        Compression::Zstd => bounded(super::zstd_stream::ZstdStream::new(data), max),
        Compression::Snappy => snappy(data, max),
    }
}

/// A reader that decompresses `data` with `codec` as it is read, for a walk
/// that holds only a buffer of it at a time. Snappy decompresses a block at
/// a time (xerial's are 32 KiB as Kafka's Java client writes them; the raw
/// snappy of librdkafka is one block, at most `max` bytes, checked first).
pub fn reader<'a>(data: &'a [u8], codec: Compression, max: usize) -> Result<Box<dyn Read + 'a>, DecompressError> {
    Ok(match codec {
        Compression::None => Box::new(data),
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(data)),
        Compression::Lz4 => Box::new(super::lz4_frame::Lz4Frame::new(data)?),
        Compression::Zstd => Box::new(super::zstd_stream::ZstdStream::new(data)),
        Compression::Snappy => match data.strip_prefix(&XERIAL_MAGIC[..]) {
            Some(blocks) => Box::new(XerialReader { rest: blocks, block: Vec::new(), at: 0, max }),
            None => Box::new(std::io::Cursor::new(snappy(data, max)?)),
        },
    })
}

/// Reads `r` to its end, failing once more than `max` bytes come.
fn bounded(r: impl Read, max: usize) -> Result<Bytes, DecompressError> {
    let mut out = Vec::new();
    // A reader of ours may say why it stopped (a snappy block past `max`).
    r.take(max as u64 + 1).read_to_end(&mut out).map_err(|e| match e.downcast::<DecompressError>() {
        Ok(ours) => ours,
        Err(e) => DecompressError::Codec(e),
    })?;
    if out.len() > max {
        return Err(DecompressError::TooLarge { max });
    }
    Ok(out.into())
}

/// xerial-snappy's stream header, which Kafka's Java client writes.
const XERIAL_MAGIC: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";

/// Snappy as Kafka's clients write it: xerial framing (a header, then blocks
/// each with a 4-byte length) or a raw snappy block (librdkafka). Each
/// block states its decompressed length first, which is checked before
/// anything is allocated.
fn snappy(data: &[u8], max: usize) -> Result<Bytes, DecompressError> {
    if let Some(blocks) = data.strip_prefix(&XERIAL_MAGIC[..]) {
        return bounded(XerialReader { rest: blocks, block: Vec::new(), at: 0, max }, max);
    }
    let len = snap::raw::decompress_len(data)?;
    if len > max {
        return Err(DecompressError::TooLarge { max });
    }
    let mut out = vec![0; len];
    snap::raw::Decoder::new().decompress(data, &mut out)?;
    Ok(out.into())
}

/// xerial-framed snappy, decompressed one block at a time as it is read.
struct XerialReader<'a> {
    rest: &'a [u8],
    block: Vec<u8>,
    at: usize,
    max: usize,
}

impl Read for XerialReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.block.len() {
            if self.rest.is_empty() {
                return Ok(0);
            }
            let short = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "truncated xerial snappy block");
            let (len, tail) = self.rest.split_first_chunk::<4>().ok_or_else(short)?;
            let len = u32::from_be_bytes(*len) as usize;
            let b = tail.get(..len).ok_or_else(short)?;
            self.rest = &tail[len..];
            let bad = |e: snap::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
            let n = snap::raw::decompress_len(b).map_err(bad)?;
            if n > self.max {
                return Err(std::io::Error::other(DecompressError::TooLarge { max: self.max }));
            }
            self.block.resize(n, 0);
            snap::raw::Decoder::new().decompress(b, &mut self.block).map_err(bad)?;
            self.at = 0;
        }
        let n = out.len().min(self.block.len() - self.at);
        out[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::records::{RecordBatchEncoder, RecordEncodeOptions};

    use super::*;

    fn batch(value_len: usize, codec: Compression) -> Vec<u8> {
        let r = crate::protocol::record::plain(
            0,
            1,
            Some(Bytes::from_static(b"k")),
            Some(Bytes::from(vec![b'x'; value_len])),
        );
        let mut out = BytesMut::new();
        RecordBatchEncoder::encode(&mut out, [&r], &RecordEncodeOptions { version: 2, compression: codec }).unwrap();
        out.to_vec()
    }

    const CODECS: [Compression; 5] =
        [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];

    #[test]
    fn decodes_every_codec_within_the_bound() {
        for codec in CODECS {
            let recs = records(&batch(100_000, codec), MAX_DECOMPRESSED).unwrap();
            assert_eq!(recs.len(), 1, "{codec:?}");
            assert_eq!(recs[0].value.as_ref().map(|v| v.len()), Some(100_000), "{codec:?}");
        }
    }

    #[test]
    fn refuses_a_batch_that_expands_past_the_bound() {
        for codec in CODECS.into_iter().skip(1) {
            let b = batch(1 << 20, codec);
            assert!(b.len() < 1 << 16, "{codec:?} compresses a run of one byte");
            match records(&b, 256 << 10) {
                Err(DecompressError::TooLarge { max }) => assert_eq!(max, 256 << 10),
                other => panic!("{codec:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn xerial_snappy_streams_block_by_block() {
        let b = batch(200_000, Compression::Snappy);
        let data = &b[crate::protocol::batch::HEADER_LEN..];
        assert!(data.starts_with(XERIAL_MAGIC), "kafka-protocol writes xerial framing");
        let mut streamed = Vec::new();
        reader(data, Compression::Snappy, 1 << 20).unwrap().read_to_end(&mut streamed).unwrap();
        assert_eq!(streamed, decompress(data, Compression::Snappy, 1 << 20).unwrap());
        let mut cut = Vec::new();
        assert!(reader(&data[..data.len() - 5], Compression::Snappy, 1 << 20).unwrap().read_to_end(&mut cut).is_err());
    }

    #[test]
    fn reads_raw_snappy_as_librdkafka_writes_it() {
        let raw = snap::raw::Encoder::new().compress_vec(b"hello snappy").unwrap();
        assert_eq!(&decompress(&raw, Compression::Snappy, 100).unwrap()[..], b"hello snappy");
        assert!(matches!(decompress(&raw, Compression::Snappy, 5), Err(DecompressError::TooLarge { .. })));
    }
}
