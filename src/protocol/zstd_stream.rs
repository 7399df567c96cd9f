//! A zstd reader whose decompression context is reused.
//!
//! `zstd::stream::read::Decoder` creates a context per stream, and
//! `ZSTD_createDCtx` took 22% of a shard's time walking zstd batches of
//! 256 KiB (perf): more still with the 16 KiB batches of Kafka's Java
//! client. Each shard thread keeps a few contexts ([`POOL`]) and a walk
//! borrows one for as long as it lasts.

use std::cell::RefCell;
use std::io::{self, Read};

use zstd_safe::{DCtx, InBuffer, OutBuffer, ResetDirective};

/// Contexts one thread keeps idle (walks that overlap take more, which are
/// dropped when they end).
pub const POOL: usize = 4;

thread_local! {
    static IDLE: RefCell<Vec<DCtx<'static>>> = const { RefCell::new(Vec::new()) };
}

/// Decompresses zstd frames from a slice as it is read.
pub struct ZstdStream<'a> {
    ctx: Option<DCtx<'static>>,
    src: &'a [u8],
    /// Whether the last call ended a frame.
    frame_done: bool,
}

fn codec_error(code: usize) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {}", zstd_safe::get_error_name(code)))
}

impl<'a> ZstdStream<'a> {
    /// A reader of the frames in `src`, with a pooled context.
    pub fn new(src: &'a [u8]) -> Self {
        let ctx = IDLE.with(|idle| idle.borrow_mut().pop()).unwrap_or_else(DCtx::create);
        ZstdStream { ctx: Some(ctx), src, frame_done: false }
    }
}

impl Read for ZstdStream<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let ctx = self.ctx.as_mut().expect("held until drop");
        while !out.is_empty() && !self.src.is_empty() {
            let mut input = InBuffer::around(self.src);
            let mut output = OutBuffer::around(&mut *out);
            let hint = ctx.decompress_stream(&mut output, &mut input).map_err(codec_error)?;
            let (read, written) = (input.pos(), output.pos());
            self.src = &self.src[read..];
            self.frame_done = hint == 0;
            if written > 0 {
                return Ok(written);
            }
            if read == 0 {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "zstd: no progress"));
            }
        }
        if self.src.is_empty() && !self.frame_done && !out.is_empty() {
            // Everything read, and the frame said it wanted more.
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "zstd: the frame is cut short"));
        }
        Ok(0)
    }
}

impl Drop for ZstdStream<'_> {
    fn drop(&mut self) {
        let mut ctx = self.ctx.take().expect("dropped once");
        if ctx.reset(ResetDirective::SessionOnly).is_err() {
            return;
        }
        IDLE.with(|idle| {
            let mut idle = idle.borrow_mut();
            if idle.len() < POOL {
                idle.push(ctx);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_frames_reuses_contexts_and_refuses_a_cut_frame() {
        let data: Vec<u8> = (0..200_000u32).flat_map(|i| (i % 997).to_le_bytes()).collect();
        let z = zstd::bulk::compress(&data, 3).unwrap();
        for _ in 0..3 {
            let mut back = Vec::new();
            ZstdStream::new(&z).read_to_end(&mut back).unwrap();
            assert_eq!(back, data);
        }
        assert_eq!(IDLE.with(|i| i.borrow().len()), 1, "one context, reused");
        let mut cut = Vec::new();
        assert!(ZstdStream::new(&z[..z.len() / 2]).read_to_end(&mut cut).is_err());
        // A context that saw a broken frame is reset before reuse.
        let mut back = Vec::new();
        ZstdStream::new(&z).read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        let mut garbage = z.clone();
        garbage[0] ^= 0xff; // the magic number
        assert!(ZstdStream::new(&garbage).read_to_end(&mut Vec::new()).is_err());
    }
}
