//! The one framing of the quorum's bytes, on disk (the log store's
//! operations) and on the wire (RPCs between controllers):
//! `[len: u32][crc32c: u32][JSON]`, big-endian. A length past `MAX` is
//! refused before anything is allocated for it, and a crc mismatch marks a
//! torn or damaged frame.

use std::io;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest frame body accepted: the metadata image and log are small, so a
/// larger length is damage (or a hostile peer), not data.
pub const MAX: usize = 64 << 20;

/// Header bytes before the body.
const HEADER: usize = 8;

/// `value` framed.
pub fn encode<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    let json = serde_json::to_vec(value).map_err(io::Error::other)?;
    if json.len() > MAX {
        return Err(io::Error::other(format!("a {} byte frame is over the {MAX} byte limit", json.len())));
    }
    let mut frame = Vec::with_capacity(json.len() + HEADER);
    frame.extend_from_slice(&(json.len() as u32).to_be_bytes());
    frame.extend_from_slice(&crate::crc::crc32c(&json).to_be_bytes());
    frame.extend_from_slice(&json);
    Ok(frame)
}

/// The value framed at the start of `buf` and the frame's size; `None` at
/// the end or at a torn or damaged frame.
pub fn decode<T: DeserializeOwned>(buf: &[u8]) -> Option<(T, usize)> {
    let len = u32::from_be_bytes(buf.get(0..4)?.try_into().ok()?) as usize;
    let crc = u32::from_be_bytes(buf.get(4..8)?.try_into().ok()?);
    if len > MAX {
        return None;
    }
    let json = buf.get(HEADER..HEADER + len)?;
    if crate::crc::crc32c(json) != crc {
        return None;
    }
    Some((serde_json::from_slice(json).ok()?, HEADER + len))
}

/// Writes `value` as one frame.
pub async fn write<T: Serialize, W: AsyncWrite + Unpin>(w: &mut W, value: &T) -> io::Result<()> {
    w.write_all(&encode(value)?).await?;
    w.flush().await
}

/// Reads one frame; an error for a length past `MAX`, a crc mismatch or a
/// body that is not a `T`.
pub async fn read<T: DeserializeOwned, R: AsyncRead + Unpin>(r: &mut R) -> io::Result<T> {
    let mut header = [0u8; HEADER];
    r.read_exact(&mut header).await?;
    let len = u32::from_be_bytes(header[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_be_bytes(header[4..8].try_into().expect("4 bytes"));
    if len > MAX {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("a frame of {len} bytes is over the limit")));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    if crate::crc::crc32c(&body) != crc {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "a frame's crc does not match"));
    }
    serde_json::from_slice(&body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}
