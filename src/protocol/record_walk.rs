//! Walks the records of a v2 batch, checking every length, count and delta
//! in them, without trusting any of them to size an allocation.
//!
//! The batch header and CRC say nothing about the records inside: a CRC is
//! only as honest as the client that computed it. A record claiming 2^31-1
//! headers, a value running past its record, or a header count that
//! disagrees with the records present would be stored and acknowledged, and
//! consumers would stop at it for good. So produce walks every record of
//! every batch (as Kafka's `LogValidator` does), and so does everything that
//! reads records back from disk (compaction, the group replay).
//!
//! The walk reads its bytes through [`Input`]: a slice for uncompressed
//! records, or a [`Stream`] that decompresses into one fixed buffer for
//! compressed ones, so that walking a compressed batch holds at most
//! [`STREAM_BUF`] bytes of it in memory however large it expands. A
//! [`Walk`] advances a bounded number of bytes at a time, so that the caller
//! can yield to other tasks between steps.

use std::io::Read;
use std::ops::Range;

use thiserror::Error;

/// Bytes a [`Stream`] holds of the decompressed records at a time.
pub const STREAM_BUF: usize = 64 << 10;

/// Why a batch's records are not what its header says.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WalkError {
    #[error("record {index}: the records end inside it")]
    Truncated { index: i32 },
    #[error("record {index}: malformed varint")]
    Varint { index: i32 },
    #[error("record {index}: {field} {value} is invalid")]
    Field { index: i32, field: &'static str, value: i64 },
    #[error("record {index}: {field} of {len} bytes runs past its record")]
    Overrun { index: i32, field: &'static str, len: i64 },
    #[error("record {index}: its fields end {unused} bytes before its length says")]
    Slack { index: i32, unused: u64 },
    #[error("record {index}: offset delta {delta} is out of place")]
    OffsetDelta { index: i32, delta: i32 },
    #[error("the batch holds bytes after its {count} records")]
    Trailing { count: i32 },
    #[error("the records decompress to more than {max} bytes")]
    TooLarge { max: u64 },
    #[error("cannot decompress the records: {0}")]
    Codec(String),
}

/// A source of record bytes, read forward only.
pub trait Input {
    /// The next byte; `None` at the end of the records.
    fn byte(&mut self) -> Result<Option<u8>, WalkError>;
    /// Passes over the next `n` bytes; `false` if the records end first.
    fn skip(&mut self, n: u64) -> Result<bool, WalkError>;
    /// Bytes read so far.
    fn pos(&self) -> u64;
    /// Whether every byte has been read.
    fn at_end(&mut self) -> Result<bool, WalkError>;
}

/// Uncompressed records: the bytes of a batch after its header.
pub struct Slice<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Slice<'a> {
    /// Reads `bytes` from the start.
    pub fn new(bytes: &'a [u8]) -> Self {
        Slice { bytes, pos: 0 }
    }
}

impl Input for Slice<'_> {
    fn byte(&mut self) -> Result<Option<u8>, WalkError> {
        let b = self.bytes.get(self.pos).copied();
        self.pos += usize::from(b.is_some());
        Ok(b)
    }
    fn skip(&mut self, n: u64) -> Result<bool, WalkError> {
        let left = (self.bytes.len() - self.pos) as u64;
        if n > left {
            self.pos = self.bytes.len();
            return Ok(false);
        }
        self.pos += n as usize;
        Ok(true)
    }
    fn pos(&self) -> u64 {
        self.pos as u64
    }
    fn at_end(&mut self) -> Result<bool, WalkError> {
        Ok(self.pos == self.bytes.len())
    }
}

/// Compressed records, decompressed as they are read into one buffer of
/// [`STREAM_BUF`] bytes; reading more than `max` bytes in all fails.
pub struct Stream<R> {
    inner: R,
    buf: Box<[u8]>,
    at: usize,
    filled: usize,
    /// Bytes taken from `inner` so far.
    taken: u64,
    max: u64,
}

impl<R: Read> Stream<R> {
    /// Reads the decompressor `inner`, allowing at most `max` bytes.
    pub fn new(inner: R, max: u64) -> Self {
        Stream { inner, buf: vec![0; STREAM_BUF].into_boxed_slice(), at: 0, filled: 0, taken: 0, max }
    }

    /// Refills the buffer; `false` at the end of the stream.
    fn fill(&mut self) -> Result<bool, WalkError> {
        debug_assert_eq!(self.at, self.filled, "refilled with unread bytes left");
        let n = loop {
            match self.inner.read(&mut self.buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(WalkError::Codec(e.to_string())),
            }
        };
        self.taken += n as u64;
        if self.taken > self.max {
            return Err(WalkError::TooLarge { max: self.max });
        }
        self.at = 0;
        self.filled = n;
        Ok(n > 0)
    }
}

impl<R: Read> Input for Stream<R> {
    fn byte(&mut self) -> Result<Option<u8>, WalkError> {
        if self.at == self.filled && !self.fill()? {
            return Ok(None);
        }
        self.at += 1;
        Ok(Some(self.buf[self.at - 1]))
    }
    fn skip(&mut self, mut n: u64) -> Result<bool, WalkError> {
        while n > 0 {
            if self.at == self.filled && !self.fill()? {
                return Ok(false);
            }
            let step = n.min((self.filled - self.at) as u64);
            self.at += step as usize;
            n -= step;
        }
        Ok(true)
    }
    fn pos(&self) -> u64 {
        self.taken - (self.filled - self.at) as u64
    }
    fn at_end(&mut self) -> Result<bool, WalkError> {
        Ok(self.at == self.filled && !self.fill()?)
    }
}

/// One record as the walk found it; ranges are positions in the records'
/// bytes (decompressed, for a compressed batch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// Its offset delta (always its index: the walk checks that).
    pub offset_delta: i32,
    /// Its timestamp delta.
    pub timestamp_delta: i64,
    /// Where its key is; `None` for a null key.
    pub key: Option<Range<u64>>,
    /// Where its value is; `None` for a null value (a tombstone).
    pub value: Option<Range<u64>>,
    /// The whole record, its length prefix included.
    pub range: Range<u64>,
}

/// Which offset deltas a walk accepts.
#[derive(Debug, Clone, Copy)]
enum Deltas {
    /// A produced batch: record `i` has delta `i`.
    Sequential,
    /// A stored batch, perhaps compacted: increasing, at most `last`.
    Increasing { last: i32 },
}

/// A walk over `count` records, advanced in steps.
pub struct Walk<I> {
    input: I,
    index: i32,
    count: i32,
    deltas: Deltas,
    /// The previous record's offset delta.
    prev_delta: i64,
}

impl<I: Input> Walk<I> {
    /// A walk over the `count` records of a produced batch that `input`
    /// should hold, record `i` at offset delta `i`.
    pub fn new(input: I, count: i32) -> Self {
        Walk { input, index: 0, count: count.max(0), deltas: Deltas::Sequential, prev_delta: -1 }
    }

    /// A walk over a stored batch's records, which compaction may have
    /// thinned: offset deltas increase and end at most at `last_delta`.
    pub fn stored(input: I, count: i32, last_delta: i32) -> Self {
        Walk { deltas: Deltas::Increasing { last: last_delta }, ..Self::new(input, count) }
    }

    /// Checks record `self.index`'s offset delta against the rule.
    fn check_delta(&mut self, delta: i32) -> Result<(), WalkError> {
        let index = self.index;
        let ok = match self.deltas {
            Deltas::Sequential => delta == index,
            Deltas::Increasing { last } => i64::from(delta) > self.prev_delta && delta <= last,
        };
        if !ok {
            return Err(WalkError::OffsetDelta { index, delta });
        }
        self.prev_delta = delta.into();
        Ok(())
    }

    /// Walks records until at least `bytes` more have been read or the
    /// records end, handing each to `visit`. `Ok(true)` once all `count`
    /// records are walked and nothing follows them.
    pub fn advance(&mut self, bytes: u64, visit: &mut impl FnMut(&Shape)) -> Result<bool, WalkError> {
        let stop = self.input.pos().saturating_add(bytes);
        while self.index < self.count {
            let shape = record(&mut self.input, self.index)?;
            self.check_delta(shape.offset_delta)?;
            visit(&shape);
            self.index += 1;
            if self.input.pos() >= stop && self.index < self.count {
                return Ok(false);
            }
        }
        if !self.input.at_end()? {
            return Err(WalkError::Trailing { count: self.count });
        }
        Ok(true)
    }

    /// Walks every record at once.
    pub fn run(mut self, visit: &mut impl FnMut(&Shape)) -> Result<(), WalkError> {
        let done = self.advance(u64::MAX, visit)?;
        debug_assert!(done, "an unbounded step walks to the end");
        Ok(())
    }
}

/// Reads a zigzag varint of at most `max_bytes` bytes.
fn varint(input: &mut impl Input, index: i32, max_bytes: u32) -> Result<i64, WalkError> {
    let mut value: u64 = 0;
    for i in 0..max_bytes {
        let b = input.byte()?.ok_or(WalkError::Truncated { index })?;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    Err(WalkError::Varint { index })
}

/// A varint holding an `i32` (Kafka's `varint`: at most 5 bytes).
fn varint32(input: &mut impl Input, index: i32, field: &'static str) -> Result<i32, WalkError> {
    let v = varint(input, index, 5)?;
    i32::try_from(v).map_err(|_| WalkError::Field { index, field, value: v })
}

/// Reads a length (-1 for null) and skips that many bytes, which must lie
/// before `end`; the range read, or `None` for null.
fn sized(input: &mut impl Input, index: i32, field: &'static str, end: u64) -> Result<Option<Range<u64>>, WalkError> {
    let len = varint32(input, index, field)?;
    if len < -1 {
        return Err(WalkError::Field { index, field, value: len.into() });
    }
    if len == -1 {
        return Ok(None);
    }
    let start = input.pos();
    if start + len as u64 > end {
        return Err(WalkError::Overrun { index, field, len: len.into() });
    }
    if !input.skip(len as u64)? {
        return Err(WalkError::Truncated { index });
    }
    Ok(Some(start..start + len as u64))
}

/// Walks one record (Kafka's `DefaultRecord` layout): length, attributes,
/// timestamp delta, offset delta, key, value, headers.
fn record(input: &mut impl Input, index: i32) -> Result<Shape, WalkError> {
    let first = input.pos();
    let len = varint32(input, index, "record length")?;
    if len < 0 {
        return Err(WalkError::Field { index, field: "record length", value: len.into() });
    }
    let body = input.pos();
    let end = body + len as u64;
    input.byte()?.ok_or(WalkError::Truncated { index })?; // attributes: unused
    let timestamp_delta = varint(input, index, 10)?;
    let offset_delta = varint32(input, index, "offset delta")?;
    let key = sized(input, index, "key", end)?;
    let value = sized(input, index, "value", end)?;
    let headers = varint32(input, index, "header count")?;
    // Each header takes at least two bytes: a bound that needs no trust.
    if headers < 0 || headers as u64 > end.saturating_sub(input.pos()) / 2 {
        return Err(WalkError::Field { index, field: "header count", value: headers.into() });
    }
    for _ in 0..headers {
        if sized(input, index, "header key", end)?.is_none() {
            return Err(WalkError::Field { index, field: "header key length", value: -1 });
        }
        sized(input, index, "header value", end)?;
    }
    let at = input.pos();
    if at > end {
        return Err(WalkError::Overrun { index, field: "record", len: len.into() });
    }
    if at < end {
        return Err(WalkError::Slack { index, unused: end - at });
    }
    Ok(Shape { offset_delta, timestamp_delta, key, value, range: first..end })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zig(v: i64, out: &mut Vec<u8>) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            out.push((z as u8 & 0x7f) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    }

    /// A record with `key`, `value` and `headers`, as `DefaultRecord` writes it.
    fn rec(delta: i64, key: Option<&[u8]>, value: Option<&[u8]>, headers: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut body = vec![0u8];
        zig(7, &mut body);
        zig(delta, &mut body);
        for field in [key, value] {
            match field {
                None => zig(-1, &mut body),
                Some(b) => {
                    zig(b.len() as i64, &mut body);
                    body.extend_from_slice(b);
                }
            }
        }
        zig(headers.len() as i64, &mut body);
        for (k, v) in headers {
            zig(k.len() as i64, &mut body);
            body.extend_from_slice(k);
            zig(v.len() as i64, &mut body);
            body.extend_from_slice(v);
        }
        let mut out = Vec::new();
        zig(body.len() as i64, &mut out);
        out.extend(body);
        out
    }

    fn walk(bytes: &[u8], count: i32) -> Result<Vec<Shape>, WalkError> {
        let mut seen = Vec::new();
        Walk::new(Slice::new(bytes), count).run(&mut |s| seen.push(s.clone()))?;
        Ok(seen)
    }

    #[test]
    fn walks_well_formed_records_and_reports_their_shape() {
        let mut b = rec(0, Some(b"k"), Some(b"v"), &[(b"h", b"x")]);
        let first = b.len() as u64;
        b.extend(rec(1, None, None, &[]));
        let seen = walk(&b, 2).unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].key, Some(5..6));
        assert_eq!(seen[0].value, Some(7..8));
        assert_eq!(seen[1].range, first..b.len() as u64);
        assert_eq!((seen[1].key.clone(), seen[1].value.clone()), (None, None));
    }

    #[test]
    fn a_count_that_disagrees_with_the_records_is_refused() {
        let b = rec(0, None, Some(b"v"), &[]);
        assert_eq!(walk(&b, 2), Err(WalkError::Truncated { index: 1 }));
        let mut two = b.clone();
        two.extend(rec(1, None, Some(b"v"), &[]));
        assert_eq!(walk(&two, 1), Err(WalkError::Trailing { count: 1 }));
        assert_eq!(walk(&b, i32::MAX), Err(WalkError::Truncated { index: 1 }));
    }

    #[test]
    fn lying_lengths_inside_a_record_are_refused() {
        // A header count of 2^31-1 in a record with no room for it.
        let mut b = rec(0, None, Some(b"v"), &[]);
        let last = b.len() - 1;
        b.truncate(last);
        zig(i64::from(i32::MAX), &mut b);
        b[0] += 4; // the record length covers the longer varint
        assert!(matches!(walk(&b, 1), Err(WalkError::Field { field: "header count", .. })));
        // A value longer than its record.
        let mut v = rec(0, None, Some(b"vv"), &[]);
        v[5] = 40;
        assert!(matches!(walk(&v, 1), Err(WalkError::Overrun { field: "value", .. })));
        // A record length past the end of the records.
        let mut l = rec(0, None, Some(b"v"), &[]);
        l[0] = 100;
        assert!(matches!(walk(&l, 1), Err(WalkError::Slack { .. })));
        // A record length longer than its fields.
        let mut s = rec(0, None, Some(b"v"), &[]);
        s[0] += 2;
        s.extend([0, 0]);
        assert_eq!(walk(&s, 1), Err(WalkError::Slack { index: 0, unused: 1 }));
        // An offset delta that is not the record's index.
        assert_eq!(walk(&rec(3, None, None, &[]), 1), Err(WalkError::OffsetDelta { index: 0, delta: 3 }));
        // A null header key.
        let mut h = rec(0, None, None, &[(b"k", b"v")]);
        let at = h.len() - 4;
        h[at] = 1; // key length -1
        assert!(walk(&h, 1).is_err());
        // Ten-byte varint for an int field.
        let mut long = vec![12u8, 0];
        long.extend([0xff; 10]);
        assert!(walk(&long, 1).is_err());
    }

    #[test]
    fn a_stream_stops_at_its_bound_and_walks_in_steps() {
        let mut b = Vec::new();
        for i in 0..1000 {
            b.extend(rec(i, Some(b"key"), Some(&[b'x'; 300]), &[]));
        }
        let mut n = 0;
        let mut w = Walk::new(Stream::new(&b[..], b.len() as u64), 1000);
        let mut steps = 0;
        while !w.advance(STREAM_BUF as u64, &mut |_| n += 1).unwrap() {
            steps += 1;
        }
        assert_eq!(n, 1000);
        assert!(steps >= 4, "{steps} steps");
        let short = Walk::new(Stream::new(&b[..], b.len() as u64 - 1), 1000).run(&mut |_| {});
        assert_eq!(short, Err(WalkError::TooLarge { max: b.len() as u64 - 1 }));
    }
}
