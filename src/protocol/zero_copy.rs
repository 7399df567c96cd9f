//! Fetch responses without copying record bytes. kafka-protocol encodes a
//! response by copying every field, record sets included, into one buffer;
//! for fetches that copy was the broker's largest CPU cost. Here each
//! partition's records are given to the encoder as a *stand-in*: a slice of
//! a reserved, never-written, read-only address range, of the right length.
//! The encoder only copies it (`put_slice`), and the buffer it copies into
//! ([`Pieces`]) recognises the stand-in by its address and puts the real
//! record `Bytes` in the frame instead: the frame becomes a list of pieces
//! (small encoded fields, then cached record buffers, ...) written in turn.

use std::ops::Range;
use std::sync::OnceLock;

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;

/// Bytes of address space reserved for stand-ins (virtual only: the range is
/// never written, so it costs no memory). A response's record sets together
/// stay far below this (`fetch.max.bytes` is 55 MiB by default).
const REGION_BYTES: usize = 1 << 30;

/// Record data shorter than this is copied into the frame: one more write
/// call would cost more than the copy.
const MIN_PIECE: usize = 16 << 10;

fn region() -> Option<&'static [u8]> {
    static REGION: OnceLock<Option<&'static [u8]>> = OnceLock::new();
    *REGION.get_or_init(|| {
        // SAFETY: a fresh private anonymous read-only mapping, never unmapped,
        // so a 'static shared slice of it is sound; nothing writes it.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                REGION_BYTES,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            );
            (p != libc::MAP_FAILED).then(|| std::slice::from_raw_parts(p as *const u8, REGION_BYTES))
        }
    })
}

/// The record sets of one response, each behind its stand-in.
#[derive(Default)]
pub struct StandIns {
    used: usize,
    /// (offset in the region, length, the real pieces).
    entries: Vec<(usize, usize, Vec<Bytes>)>,
}

impl StandIns {
    /// A `Bytes` to put in the response in place of `pieces` (their
    /// concatenation). Falls back to a real concatenation (a copy) when the
    /// stand-in range is unavailable or used up.
    pub fn stand_in(&mut self, pieces: Vec<Bytes>) -> Bytes {
        let len: usize = pieces.iter().map(Bytes::len).sum();
        match pieces.len() {
            0 => return Bytes::new(),
            1 if len < MIN_PIECE => return pieces.into_iter().next().expect("one"),
            _ => {}
        }
        match region() {
            Some(r) if self.used + len <= r.len() && len > 0 => {
                let at = self.used;
                self.used += len;
                self.entries.push((at, len, pieces));
                Bytes::from_static(&r[at..at + len])
            }
            _ => {
                let mut out = BytesMut::with_capacity(len);
                for p in pieces {
                    out.extend_from_slice(&p);
                }
                out.freeze()
            }
        }
    }

    fn take(&mut self, src: &[u8]) -> Option<Vec<Bytes>> {
        let r = region()?;
        let (base, ptr) = (r.as_ptr() as usize, src.as_ptr() as usize);
        if ptr < base || ptr >= base + r.len() {
            return None;
        }
        let at = ptr - base;
        let i = self.entries.iter().position(|(o, l, _)| *o == at && *l == src.len());
        // A stand-in is only ever copied whole, by the encoder of the
        // response it was made for.
        let i = i.expect("a stand-in is encoded by the response that made it");
        Some(std::mem::take(&mut self.entries[i].2))
    }
}

/// An encode target that keeps stand-ins' record buffers as pieces of their
/// own and copies everything else.
pub struct Pieces {
    stand_ins: StandIns,
    done: Vec<Bytes>,
    head: BytesMut,
    flushed: usize,
}

impl Pieces {
    /// An empty frame body for a response whose record sets are behind `stand_ins`.
    pub fn new(stand_ins: StandIns) -> Self {
        Self { stand_ins, done: Vec::new(), head: BytesMut::with_capacity(512), flushed: 0 }
    }

    /// Bytes encoded so far.
    pub fn len(&self) -> usize {
        self.flushed + self.head.len()
    }

    /// The pieces, in order.
    pub fn finish(mut self) -> Vec<Bytes> {
        if !self.head.is_empty() {
            self.done.push(self.head.freeze());
        }
        self.done
    }

    fn push_piece(&mut self, piece: Bytes) {
        if piece.len() < MIN_PIECE {
            self.head.extend_from_slice(&piece);
            return;
        }
        if !self.head.is_empty() {
            let head = self.head.split().freeze();
            self.flushed += head.len();
            self.done.push(head);
        }
        self.flushed += piece.len();
        self.done.push(piece);
    }
}

// SAFETY: every method delegates to the `BytesMut` head, which upholds
// BufMut's contract; `put_slice` adds whole pieces beside it, which only
// changes what `offset()` reports, not the head's memory.
unsafe impl BufMut for Pieces {
    fn remaining_mut(&self) -> usize {
        self.head.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller's promise about `cnt` is about the head's chunk.
        unsafe { self.head.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.head.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        match self.stand_ins.take(src) {
            Some(pieces) => {
                for p in pieces {
                    self.push_piece(p);
                }
            }
            None => self.head.extend_from_slice(src),
        }
    }
}

impl ByteBufMut for Pieces {
    fn offset(&self) -> usize {
        self.len()
    }

    // Gaps (seek/range) are only used by record-batch encoders, never while
    // encoding a response message; they can only reach into the head.
    fn seek(&mut self, offset: usize) {
        assert!(offset >= self.flushed, "seek into a finished piece");
        ByteBufMut::seek(&mut self.head, offset - self.flushed);
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        assert!(r.start >= self.flushed, "range in a finished piece");
        self.head.range(r.start - self.flushed..r.end - self.flushed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stand_ins_become_the_real_pieces_without_copies() {
        let a = Bytes::from(vec![1u8; 40_000]);
        let b = Bytes::from(vec![2u8; 30_000]);
        let mut s = StandIns::default();
        let stand = s.stand_in(vec![a.clone(), b.clone()]);
        assert_eq!(stand.len(), 70_000);
        let mut out = Pieces::new(s);
        out.put_slice(b"head");
        out.put_i32(7);
        out.put_slice(&stand);
        out.put_slice(b"tail");
        assert_eq!(out.len(), 8 + 70_000 + 4);
        let pieces = out.finish();
        assert_eq!(pieces.len(), 4);
        assert_eq!(&pieces[0][..], b"head\0\0\0\x07");
        assert_eq!(pieces[1].as_ptr(), a.as_ptr(), "not copied");
        assert_eq!(pieces[2].as_ptr(), b.as_ptr(), "not copied");
        assert_eq!(&pieces[3][..], b"tail");
    }

    #[test]
    fn small_record_sets_are_copied_in() {
        let mut s = StandIns::default();
        let small = s.stand_in(vec![Bytes::from_static(b"abc")]);
        assert_eq!(&small[..], b"abc", "a small single piece is itself");
        let two = s.stand_in(vec![Bytes::from_static(b"ab"), Bytes::from_static(b"cd")]);
        let mut out = Pieces::new(s);
        out.put_slice(&two);
        assert_eq!(out.finish(), vec![Bytes::from_static(b"abcd")]);
    }
}
