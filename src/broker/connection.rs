//! One client connection: read frames, start each request's handling in
//! arrival order, and write responses in that same order while later
//! requests proceed (pipelining), so produce requests on one connection
//! share a group commit instead of waiting for each other's fsync.

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use glommio::channels::local_channel;
use glommio::net::TcpStream;
use tracing::{debug, warn};

use crate::api::{self, Pending};
use crate::broker::context::ShardCtx;
use crate::protocol::frame::{self, FrameError};

/// Most requests in flight per connection before reading pauses.
pub const MAX_IN_FLIGHT: usize = 256;

/// The stream shared by the reading and the writing task. Reads and writes
/// keep separate state inside glommio's stream, and each borrow lasts one
/// poll, so the two tasks never hold it at once.
#[derive(Clone)]
struct Shared(Rc<RefCell<TcpStream>>);

impl AsyncRead for Shared {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_read(cx, buf)
    }
}

impl AsyncWrite for Shared {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_flush(cx)
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_close(cx)
    }
}

/// Serves one connection until the peer closes it or sends something that
/// cannot be answered.
pub async fn serve(ctx: Rc<ShardCtx>, stream: TcpStream) {
    let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_else(|_| "?".into());
    let _ = stream.set_nodelay(true);
    let stream = Shared(Rc::new(RefCell::new(stream)));
    let (tx, rx) = local_channel::new_bounded::<Pending>(MAX_IN_FLIGHT);
    let mut writer_stream = stream.clone();
    let writer_peer = peer.clone();
    let writer = glommio::spawn_local(async move {
        while let Some(pending) = rx.recv().await {
            if let Some(frame) = pending.await
                && let Err(e) = writer_stream.write_all(&frame).await
            {
                debug!(peer = %writer_peer, "write failed: {e}");
                return;
            }
        }
    });
    let max = ctx.settings.socket_request_max_bytes();
    let mut reader = stream.clone();
    loop {
        match read_frame(&mut reader, max).await {
            Ok(Some(frame)) => {
                let pending = match frame::decode_request(frame) {
                    Ok(req) => api::dispatch(&ctx, req),
                    Err(FrameError::UnsupportedVersion {
                        key: kafka_protocol::messages::ApiKey::ApiVersions,
                        version,
                        correlation_id,
                    }) => {
                        debug!(peer = %peer, version, "ApiVersions version not supported; answering with v0");
                        api::api_versions::unsupported(correlation_id)
                    }
                    Err(e) => {
                        warn!(peer = %peer, "closing connection: {e}");
                        break;
                    }
                };
                if tx.send(pending).await.is_err() {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                warn!(peer = %peer, "closing connection: {e}");
                break;
            }
        }
    }
    drop(tx);
    writer.await;
    // Dropping the last handle closes the socket.
    drop(stream);
}

/// A frame that cannot be read.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("frame length {len} is outside 0..={max} (socket.request.max.bytes)")]
    BadLength { len: i32, max: usize },
    #[error("connection ended inside a frame: {0}")]
    Truncated(std::io::Error),
}

/// Reads one length-prefixed frame; `None` on a clean end of stream.
async fn read_frame(r: &mut Shared, max: usize) -> Result<Option<Bytes>, ReadError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]).await {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => {
                return Err(ReadError::Truncated(std::io::ErrorKind::UnexpectedEof.into()));
            }
            Ok(n) => got += n,
            Err(e) if got == 0 => {
                debug!("read failed: {e}");
                return Ok(None);
            }
            Err(e) => return Err(ReadError::Truncated(e)),
        }
    }
    let len = i32::from_be_bytes(len);
    if len < 0 || len as usize > max {
        return Err(ReadError::BadLength { len, max });
    }
    let mut body = BytesMut::zeroed(len as usize);
    r.read_exact(&mut body).await.map_err(ReadError::Truncated)?;
    Ok(Some(body.freeze()))
}
