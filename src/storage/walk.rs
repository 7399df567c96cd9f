//! Reading batches from a segment file by walking batch headers from an
//! index position: reads are aligned DMA reads of bounded windows, and only
//! the fixed batch headers are looked at.

use std::io;

use bytes::Bytes;
use glommio::io::DmaFile;

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
/// order, reading the file in bounded windows (compaction's full pass).
pub async fn for_each(file: &DmaFile, start: u64, end: u64, mut f: impl FnMut(u64, &[u8])) -> io::Result<()> {
    const WINDOW: usize = 1 << 20;
    let mut pos = start;
    while pos < end {
        let head = file.read_at(pos, HEADER_LEN.min((end - pos) as usize)).await?;
        let p = batch::peek(&head).ok_or_else(|| corrupt(pos))?;
        let len = ((end - pos) as usize).min(WINDOW.max(p.total_len));
        let buf = file.read_at(pos, len).await?;
        let mut rel = 0usize;
        while let Some(p) = batch::peek(&buf[rel..]) {
            if rel + p.total_len > buf.len() {
                break;
            }
            f(pos + rel as u64, &buf[rel..rel + p.total_len]);
            rel += p.total_len;
        }
        if rel == 0 {
            return Err(corrupt(pos));
        }
        pos += rel as u64;
    }
    Ok(())
}
