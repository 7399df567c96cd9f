//! Appended batches waiting for their write, held in the aligned buffer that
//! direct I/O writes from. A batch is copied once, from the request into this
//! buffer; after the write the same memory becomes the cached copy that
//! tailing consumers read, so nothing is copied again on the way to disk.

use std::rc::Rc;
use std::thread::{self, ThreadId};

use bytes::Bytes;
use glommio::io::{DmaBuffer, DmaFile};

use super::index::BatchEntry;
use super::producer_state::ProducerBatch;

/// Direct-I/O page size: writes start and end on these boundaries.
pub const PAGE: u64 = 4096;

/// Smallest room a chunk allocates. Produce requests that arrive during one
/// fdatasync mostly share a chunk (one write), and a mostly empty chunk is
/// copied out before caching. One page short of 1 MiB, so that with the
/// prefix page the buffer is 1 MiB: the registered arena's buddy allocator
/// (see `broker::io_memory`) rounds each buffer up to a power of two.
pub const CHUNK_CAPACITY: usize = (1 << 20) - PAGE as usize;

/// Batches bound for one segment, contiguous in the log.
pub struct Chunk {
    /// The segment they go to.
    pub segment_base: i64,
    /// Log position of the first batch.
    pub start_pos: u64,
    /// Each batch's offsets and place.
    pub entries: Vec<BatchEntry>,
    /// One past the last offset.
    pub end_offset: i64,
    /// Idempotent producers' batches in it: (producer id, epoch, batch, max timestamp).
    pub producers: Vec<(i64, i16, ProducerBatch, i64)>,
    /// Bytes at the front reserved for the durable part of the page
    /// `start_pos` falls in, which the write must rewrite (filled in by
    /// [`Chunk::seal`]).
    prefix: usize,
    /// Bytes of `buf` in use, prefix included.
    used: usize,
    /// Bytes after `used` that hold the log's next bytes instead of zeros
    /// (see [`Chunk::pad_with`]).
    padded: usize,
    /// Unshared until the chunk is sealed for its write.
    buf: Rc<DmaBuffer>,
    /// Bytes allocated for `buf`, which sealing does not give back.
    capacity: usize,
}

impl Chunk {
    /// An empty chunk at `start_pos` with room for at least `need` bytes.
    pub fn new(file: &DmaFile, segment_base: i64, start_pos: u64, end_offset: i64, need: usize) -> Self {
        let prefix = (start_pos % PAGE) as usize;
        let capacity = round_up(prefix + need.max(CHUNK_CAPACITY));
        Self {
            segment_base,
            start_pos,
            entries: Vec::new(),
            end_offset,
            producers: Vec::new(),
            prefix,
            used: prefix,
            padded: 0,
            buf: Rc::new(file.alloc_dma_buffer(capacity)),
            capacity,
        }
    }

    /// Free bytes left for batches.
    pub fn room(&self) -> usize {
        self.buf.len() - self.used
    }

    /// Bytes of batches held.
    pub fn data_len(&self) -> usize {
        self.used - self.prefix
    }

    /// Log position one past the last batch.
    pub fn end_pos(&self) -> u64 {
        self.start_pos + self.data_len() as u64
    }

    /// Copies `bytes` in after the last batch and returns the copy, for the
    /// caller to stamp offsets into.
    pub fn push(&mut self, bytes: &[u8]) -> &mut [u8] {
        assert!(bytes.len() <= self.room(), "callers check room() first");
        let from = self.used;
        self.used += bytes.len();
        let buf = Rc::get_mut(&mut self.buf).expect("a chunk's buffer is not shared before it is sealed");
        let out = &mut buf.as_bytes_mut()[from..self.used];
        out.copy_from_slice(bytes);
        out
    }

    /// Readies the chunk for its write: `tail` (the durable bytes of the page
    /// the chunk starts in) goes in front, the last page is zero-padded, and
    /// the buffer is cut to whole pages.
    pub fn seal(&mut self, tail: &[u8]) {
        assert_eq!(tail.len(), self.prefix, "the tail is what lies before start_pos in its page");
        let total = round_up(self.used);
        let buf = Rc::get_mut(&mut self.buf).expect("a chunk is sealed once");
        let bytes = buf.as_bytes_mut();
        bytes[..self.prefix].copy_from_slice(tail);
        bytes[self.used..total].fill(0);
        buf.trim_to_size(total);
        debug_assert_eq!(self.aligned_start() % PAGE, 0);
    }

    /// File position of the chunk's first page (where its write starts).
    fn aligned_start(&self) -> u64 {
        self.start_pos - self.prefix as u64
    }

    /// Fills the padding of a sealed chunk's last page with the log bytes
    /// that follow it (`next`: the next chunk's batches), so that this chunk
    /// and the next write the shared page with the same contents and may be
    /// written concurrently. While padding is left (`padding_left`), the
    /// caller goes on with the chunk after that.
    pub fn pad_with(&mut self, next: &[u8]) {
        let filled = self.used + self.padded;
        let n = self.padding_left().min(next.len());
        let buf = Rc::get_mut(&mut self.buf).expect("padding is filled before the write");
        buf.as_bytes_mut()[filled..filled + n].copy_from_slice(&next[..n]);
        self.padded += n;
    }

    /// Padding bytes of the last page not yet filled by [`Chunk::pad_with`].
    pub fn padding_left(&self) -> usize {
        self.buf.len() - self.used - self.padded
    }

    /// The batches held, without the prefix.
    pub fn data(&self) -> &[u8] {
        &self.buf.as_bytes()[self.prefix..self.used]
    }

    /// File position one past the chunk's last (padded) page.
    pub fn write_end(&self) -> u64 {
        self.aligned_start() + round_up(self.used) as u64
    }

    /// The sealed buffer and the aligned file position it is written at.
    pub fn write_buf(&self) -> (Rc<DmaBuffer>, u64) {
        (self.buf.clone(), self.aligned_start())
    }

    /// The bytes of the last, partial page (empty when the chunk ends on a
    /// page boundary): the next write must rewrite them. Valid once sealed.
    pub fn page_tail(&self) -> &[u8] {
        let from = (self.end_pos() / PAGE * PAGE).max(self.aligned_start());
        let rel = (from - self.aligned_start()) as usize;
        &self.buf.as_bytes()[rel..self.used]
    }

    /// The batches as shared bytes, for the cache. The buffer itself is
    /// shared when it is mostly full; a mostly empty one is copied out so that
    /// the cache does not pin unused capacity (a whole block of the shard's
    /// registered arena, see `broker::io_memory`). Against the capacity
    /// allocated: sealing cut `buf` to the pages in use.
    pub fn into_bytes(self) -> Bytes {
        let data = &self.buf.as_bytes()[self.prefix..self.used];
        if data.len() * 2 < self.capacity {
            return Bytes::copy_from_slice(data);
        }
        let (from, to) = (self.prefix, self.used);
        Bytes::from_owner(ShardLocal { buf: self.buf, thread: thread::current().id() }).slice(from..to)
    }
}

/// A DMA buffer owned by `Bytes`, which wants a `Send` owner. Record bytes
/// never leave the shard that received them (shared-nothing), so the `Rc`
/// inside is only ever touched on its own thread; `Drop` asserts it.
struct ShardLocal {
    buf: Rc<DmaBuffer>,
    thread: ThreadId,
}

// SAFETY: see the type's comment: the value is created, read and dropped on
// one shard's thread, which `drop` checks (an abort, not a data race).
unsafe impl Send for ShardLocal {}

impl AsRef<[u8]> for ShardLocal {
    fn as_ref(&self) -> &[u8] {
        self.buf.as_bytes()
    }
}

impl Drop for ShardLocal {
    fn drop(&mut self) {
        assert_eq!(thread::current().id(), self.thread, "record bytes crossed shards");
    }
}

fn round_up(n: usize) -> usize {
    n.div_ceil(PAGE as usize) * PAGE as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chunk's buffer, once cached, is shared only when at least half of
    /// the capacity allocated for it holds batches: a sparse chunk would
    /// hold a whole block of the shard's registered arena in the cache.
    #[test]
    fn a_sparse_chunk_is_copied_out_for_the_cache_and_a_full_one_shared() {
        // On the repository's disk: O_DIRECT is not everywhere /tmp is.
        let dir = std::env::current_dir().unwrap().join(format!("target/chunk-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("segment");
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(crate::broker::io_memory::MIN_IO_MEMORY)
            .make()
            .expect("an executor")
            .run(async move {
                let file = DmaFile::create(&path).await.unwrap();
                let cached = |n: usize| {
                    let mut c = Chunk::new(&file, 0, 0, 0, n);
                    c.push(&vec![7u8; n]);
                    c.seal(&[]);
                    let at = c.buf.as_bytes().as_ptr();
                    let bytes = c.into_bytes();
                    assert_eq!(&bytes[..], &vec![7u8; n][..]);
                    bytes.as_ptr() == at
                };
                // 3,000 bytes fill most of the one page sealing keeps, but
                // little of the 1 MiB allocated.
                assert!(!cached(3000), "a sparse chunk is copied out");
                assert!(cached(CHUNK_CAPACITY - 1000), "a mostly full chunk is shared");
                file.close().await.unwrap();
            });
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
