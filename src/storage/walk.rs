//! Reading batches from a segment file by walking batch headers from an
//! index position: reads are aligned DMA reads of bounded windows, and only
//! the fixed batch headers are looked at.

use std::io;

use bytes::Bytes;
use glommio::io::{DmaFile, ReadResult};

use crate::protocol::batch::{self, HEADER_LEN, Peek};

/// Bytes read per step while looking for a batch (a few index intervals).
const FIND_WINDOW: usize = 64 << 10;

fn corrupt(pos: u64) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("no valid batch header at position {pos}"))
}

/// Walks batches from `pos` (a batch boundary) up to `end` and returns the
/// first one for which `wanted` holds, with its position.
pub async fn find(
    file: &DmaFile,
    mut pos: u64,
    end: u64,
    wanted: impl Fn(&Peek) -> bool,
) -> io::Result<Option<(u64, Peek)>> {
    while pos < end {
        let len = (end - pos).min(FIND_WINDOW as u64) as usize;
        let buf = file.read_at(pos, len).await?;
        let mut rel = 0usize;
        loop {
            if buf.len() - rel < HEADER_LEN {
                if rel == 0 {
                    return Err(corrupt(pos));
                }
                break;
            }
            let p = batch::peek(&buf[rel..]).ok_or_else(|| corrupt(pos + rel as u64))?;
            if wanted(&p) {
                return Ok(Some((pos + rel as u64, p)));
            }
            rel += p.total_len;
            if rel >= buf.len() {
                break;
            }
        }
        pos += rel as u64;
    }
    Ok(None)
}

/// Reads whole batches starting at `pos` (a batch boundary, `first` being the
/// batch there), up to `max_bytes`, or the first batch alone if it is larger
/// and `min_one` is set. Stops at `end`.
pub async fn read_from(
    file: &DmaFile,
    pos: u64,
    first: &Peek,
    end: u64,
    max_bytes: usize,
    min_one: bool,
) -> io::Result<Bytes> {
    if first.total_len > max_bytes && !min_one {
        return Ok(Bytes::new());
    }
    let len = (end - pos).min(max_bytes.max(first.total_len) as u64) as usize;
    let buf = file.read_at(pos, len).await?;
    let mut cut = 0usize;
    while let Some(p) = batch::peek(&buf[cut..]) {
        if cut + p.total_len > buf.len() || (cut > 0 && cut + p.total_len > max_bytes) {
            break;
        }
        cut += p.total_len;
    }
    if cut == 0 {
        return Err(corrupt(pos));
    }
    Ok(Bytes::copy_from_slice(&buf[..cut]))
}

/// Calls `f(position, batch)` for every whole batch in `[start, end)`, in
/// order, reading the file in bounded windows (producer-state rebuilds).
pub async fn for_each(file: &DmaFile, start: u64, end: u64, mut f: impl FnMut(u64, &[u8])) -> io::Result<()> {
    let mut windows = Windows::new(file, start, end);
    while let Some((pos, buf, whole)) = windows.read_next().await? {
        let mut rel = 0usize;
        for b in batches(&buf[..whole]) {
            f(pos + rel as u64, b);
            rel += b.len();
        }
    }
    Ok(())
}

/// The windows of whole batches in `[start, end)`, in order, each about
/// [`Windows::WINDOW`] bytes (or one batch when a batch is larger): what
/// compaction hands, window by window, to a blocking thread.
pub struct Windows<'a> {
    file: &'a DmaFile,
    pos: u64,
    end: u64,
}

impl<'a> Windows<'a> {
    /// Bytes read per window.
    pub const WINDOW: usize = 1 << 20;

    /// Windows from `start` (a batch boundary) to `end`.
    pub fn new(file: &'a DmaFile, start: u64, end: u64) -> Self {
        Self { file, pos: start, end }
    }

    /// The next window's position and bytes (whole batches back to back),
    /// or `None` at `end`.
    pub async fn next(&mut self) -> io::Result<Option<(u64, Vec<u8>)>> {
        Ok(self.read_next().await?.map(|(pos, buf, whole)| (pos, buf[..whole].to_vec())))
    }

    /// The next window as read (its position, the read, and how many of its
    /// bytes are whole batches), without copying it.
    async fn read_next(&mut self) -> io::Result<Option<(u64, ReadResult, usize)>> {
        let (pos, end) = (self.pos, self.end);
        if pos >= end {
            return Ok(None);
        }
        let head = self.file.read_at(pos, HEADER_LEN.min((end - pos) as usize)).await?;
        let p = batch::peek(&head).ok_or_else(|| corrupt(pos))?;
        let len = ((end - pos) as usize).min(Self::WINDOW.max(p.total_len));
        let buf = self.file.read_at(pos, len).await?;
        let whole: usize = batches(&buf).map(<[u8]>::len).sum();
        if whole == 0 {
            return Err(corrupt(pos));
        }
        self.pos += whole as u64;
        Ok(Some((pos, buf, whole)))
    }
}

/// Bytes of the whole batches at the start of `bytes` that begin below
/// `offset` (headers only are read).
pub fn len_below(bytes: &[u8], offset: i64) -> usize {
    let mut rel = 0usize;
    while let Some(p) = batch::peek(&bytes[rel..]) {
        if p.base_offset >= offset || rel + p.total_len > bytes.len() {
            break;
        }
        rel += p.total_len;
    }
    rel
}

/// The whole batches at the start of `bytes`, back to back.
pub fn batches(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rel = 0usize;
    std::iter::from_fn(move || {
        let p = batch::peek(&bytes[rel..])?;
        let b = bytes.get(rel..rel + p.total_len)?;
        rel += p.total_len;
        Some(b)
    })
}
