//! Reusable buffers for large request bodies, one pool per shard thread.
//!
//! A produce request's body is read into memory, its batches are copied into
//! the log's DMA chunk, and the body is dropped. A fresh buffer per request
//! costs an allocation and a zero fill of the whole body (Rust hands `read`
//! only initialized memory), which profiles of 256 KiB produce requests
//! showed at ~12% of the shard's CPU. Bodies of at least [`POOLED_MIN`]
//! bytes instead borrow a zeroed-once buffer of their size class (less than
//! a quarter larger than the body, see [`class_size`]), and return it when the last
//! `Bytes` slice of the body drops.
//!
//! Limits: at most [`POOL_BYTES`] of idle buffers per shard thread. A
//! returned buffer that would go over makes room by freeing idle buffers of
//! other sizes (the largest first), so that a burst of one size cannot fill
//! the pool for good; when only its own size is idle, it is freed instead. A
//! slice kept alive (say, by a decoded request held somewhere) keeps its
//! buffer out of the pool, which costs what a plain allocation would, plus
//! up to a quarter for the size class.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::thread::{self, ThreadId};

use bytes::Bytes;

/// Bodies smaller than this are allocated per request: zeroing them is cheap.
pub const POOLED_MIN: usize = 64 << 10;

/// Most bytes of idle buffers one shard thread keeps.
pub const POOL_BYTES: usize = 16 << 20;

/// Idle buffers by size class (the key: their length).
#[derive(Default)]
struct Pool {
    classes: BTreeMap<usize, Vec<Box<[u8]>>>,
    idle_bytes: usize,
}

impl Pool {
    /// Keeps `buf` idle, within [`POOL_BYTES`].
    fn put(&mut self, buf: Box<[u8]>) {
        let size = buf.len();
        if size > POOL_BYTES {
            return;
        }
        while self.idle_bytes + size > POOL_BYTES {
            // The largest other size with idle buffers.
            let Some(victim) = self.classes.iter().rev().find(|(k, v)| **k != size && !v.is_empty()).map(|(k, _)| *k)
            else {
                return;
            };
            let freed = self.classes.get_mut(&victim).and_then(Vec::pop).expect("a non-empty class");
            self.idle_bytes -= freed.len();
        }
        self.idle_bytes += size;
        self.classes.entry(size).or_default().push(buf);
        debug_assert!(self.idle_bytes <= POOL_BYTES);
    }
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool::default());
}

/// The buffer length that holds bodies of `len` bytes (`len >= POOLED_MIN`):
/// `len` rounded up to an eighth of its power of two, so that a buffer is
/// less than a quarter larger than its body and requests of one producer
/// (similar sizes) share a class.
fn class_size(len: usize) -> usize {
    debug_assert!(len >= POOLED_MIN);
    let step = len.next_power_of_two() / 8;
    len.div_ceil(step) * step
}

/// A buffer of at least `len` bytes, pooled when `len` is large: the caller
/// fills `&mut buf[..len]` and then [`Body::freeze`]s it.
pub fn take(len: usize) -> Body {
    if len < POOLED_MIN {
        return Body { buf: vec![0; len].into_boxed_slice(), len, home: None };
    }
    let size = class_size(len);
    let reused = POOL.with(|p| {
        let mut p = p.borrow_mut();
        let buf = p.classes.get_mut(&size)?.pop()?;
        p.idle_bytes -= buf.len();
        Some(buf)
    });
    let buf = reused.unwrap_or_else(|| vec![0; size].into_boxed_slice());
    debug_assert!(buf.len() >= len);
    Body { buf, len, home: Some(thread::current().id()) }
}

/// A request body being read.
pub struct Body {
    buf: Box<[u8]>,
    len: usize,
    /// The thread whose pool the buffer returns to; `None`: not pooled.
    home: Option<ThreadId>,
}

impl Body {
    /// The bytes to read the body into.
    pub fn as_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }

    /// The body as shared bytes; the buffer goes back to the pool when the
    /// last slice of them drops.
    pub fn freeze(self) -> Bytes {
        let len = self.len;
        match self.home {
            None => Bytes::from(self.buf),
            Some(home) => Bytes::from_owner(Pooled { buf: Some(self.buf), home }).slice(..len),
        }
    }
}

/// `Bytes`' owner of a pooled buffer.
struct Pooled {
    buf: Option<Box<[u8]>>,
    home: ThreadId,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        self.buf.as_deref().expect("taken only on drop")
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        // Bodies stay on their shard (shared-nothing); one that ends
        // elsewhere is simply freed there.
        if thread::current().id() != self.home {
            return;
        }
        let buf = self.buf.take().expect("dropped once");
        // try_with: a thread-local being torn down at thread exit frees.
        let _ = POOL.try_with(|p| p.borrow_mut().put(buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tests may share a thread (`--test-threads=1`), and so the pool.
    fn empty_pool() {
        POOL.with(|p| *p.borrow_mut() = Pool::default());
    }

    #[test]
    fn a_dropped_body_is_reused_and_small_ones_are_not_pooled() {
        empty_pool();
        let mut b = take(100 << 10);
        b.as_mut().fill(7);
        let bytes = b.freeze();
        assert_eq!(bytes.len(), 100 << 10);
        let ptr = bytes.as_ptr();
        let slice = bytes.slice(10..20);
        drop(bytes);
        // Still held by a slice: a new body gets another buffer.
        let other = take(97 << 10).freeze();
        assert_ne!(other.as_ptr(), ptr);
        drop(slice);
        let mut again = take(99 << 10);
        assert_eq!(again.as_mut().len(), 99 << 10);
        let again = again.freeze();
        assert_eq!(again.as_ptr(), ptr, "the 112 KiB class buffer comes back");
        assert_eq!(again.len(), 99 << 10, "nothing of the buffer past the body shows");
        drop((again, other));
        let idle = POOL.with(|p| p.borrow().idle_bytes);
        assert_eq!(idle, 2 * (112 << 10));
        assert_eq!(take(100).freeze().len(), 100);
        assert_eq!(POOL.with(|p| p.borrow().idle_bytes), idle, "a small body is not pooled");
    }

    #[test]
    fn a_full_pool_makes_room_by_freeing_other_sizes() {
        let mib = |n: usize| vec![0u8; n].into_boxed_slice();
        let mut p = Pool::default();
        for _ in 0..POOL_BYTES / (1 << 20) {
            p.put(mib(1 << 20));
        }
        assert_eq!(p.idle_bytes, POOL_BYTES);
        p.put(mib(1 << 20));
        assert_eq!(p.classes[&(1 << 20)].len(), POOL_BYTES / (1 << 20), "only its own size idle: freed");
        p.put(mib(320 << 10));
        assert_eq!(p.classes[&(320 << 10)].len(), 1, "a new size is kept");
        assert_eq!(p.classes[&(1 << 20)].len(), POOL_BYTES / (1 << 20) - 1, "by freeing a larger one");
        assert_eq!(p.idle_bytes, POOL_BYTES - (1 << 20) + (320 << 10));
        p.put(mib(POOL_BYTES + 1));
        assert!(p.idle_bytes <= POOL_BYTES, "a buffer over the whole budget is never kept");
    }

    #[test]
    fn the_pool_keeps_at_most_its_budget() {
        empty_pool();
        let bodies: Vec<Bytes> = (0..(POOL_BYTES / (1 << 20)) + 4).map(|_| take(1 << 20).freeze()).collect();
        drop(bodies);
        POOL.with(|p| assert_eq!(p.borrow().idle_bytes, POOL_BYTES));
    }

    #[test]
    fn class_sizes_hold_their_bodies() {
        for len in [POOLED_MIN, POOLED_MIN + 1, 100 << 10, (256 << 10) + 100, 1 << 20, (1 << 20) + 1, 100 << 20] {
            let size = class_size(len);
            assert!(size >= len && size - len < len / 4, "{len} -> {size}");
        }
        assert_eq!(class_size((256 << 10) + 100), 320 << 10);
    }
}
