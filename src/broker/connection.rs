//! One client connection: read frames, start each request's handling in
//! arrival order, and write responses in that same order while later
//! requests proceed (pipelining), so produce requests on one connection
//! share a group commit instead of waiting for each other's fsync.

use std::cell::{Cell, RefCell};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use glommio::channels::local_channel;
use glommio::net::TcpStream;
use glommio::sync::{Semaphore, StaticPermit};
use kafka_protocol::messages::ApiKey;
use tracing::{debug, warn};

use crate::api::{self, Pending};
use crate::broker::body_pool;
use crate::broker::context::ShardCtx;
use crate::broker::notify::Notify;
use crate::protocol::frame::{self, Frame, FrameError};

/// Most requests in flight per connection before reading pauses.
pub const MAX_IN_FLIGHT: usize = 256;

/// Most request bytes in flight per connection before reading pauses (a
/// larger single request is still admitted alone).
pub const MAX_IN_FLIGHT_BYTES: usize = 64 << 20;

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
    // Kafka shows a member's host as InetAddress.toString(): "/127.0.0.1".
    let client_host: Rc<str> = stream.peer_addr().map(|a| format!("/{}", a.ip())).unwrap_or_default().into();
    let _ = stream.set_nodelay(true);
    let stream = Shared(Rc::new(RefCell::new(stream)));
    let (tx, rx) = local_channel::new_bounded::<(Pending, StaticPermit)>(MAX_IN_FLIGHT);
    // Responses written so far (or skipped, for acks=0), for ordering barriers.
    let done = Rc::new(Cell::new(0u64));
    let progress = Rc::new(Notify::default());
    let budget = Rc::new(Semaphore::new(MAX_IN_FLIGHT_BYTES as u64));
    let mut writer_stream = stream.clone();
    let writer_peer = peer.clone();
    let (writer_done, writer_progress) = (done.clone(), progress.clone());
    let writer = glommio::spawn_local(async move {
        while let Some((pending, permit)) = rx.recv().await {
            if let Some(frame) = pending.await
                && let Err(e) = write_frame(&mut writer_stream, &frame).await
            {
                debug!(peer = %writer_peer, "write failed: {e}");
                break;
            }
            drop(permit);
            writer_done.set(writer_done.get() + 1);
            writer_progress.notify_all();
        }
        // Unblock a reader waiting at a barrier: nothing more will be written.
        writer_done.set(u64::MAX);
        writer_progress.notify_all();
    });
    let max = ctx.cfg.settings.socket_request_max_bytes();
    let mut reader = stream.clone();
    let mut queued = 0u64;
    loop {
        let len = match read_len(&mut reader, max).await {
            Ok(Some(len)) => len,
            Ok(None) => break,
            Err(e) => {
                warn!(peer = %peer, "closing connection: {e}");
                break;
            }
        };
        // Request bytes held by this connection are bounded: a client that
        // sends faster than the disk takes waits here, as Kafka's
        // queued.max.request.bytes makes it wait.
        let Ok(permit) = budget.acquire_static_permit(len.min(MAX_IN_FLIGHT_BYTES) as u64).await else {
            break;
        };
        let frame = match read_body(&mut reader, len).await {
            Ok(frame) => frame,
            Err(e) => {
                warn!(peer = %peer, "closing connection: {e}");
                break;
            }
        };
        let (pending, barrier) = match frame::decode_request(frame) {
            Ok(req) => {
                let barrier = !matches!(req.api_key, ApiKey::Produce | ApiKey::Fetch);
                (api::dispatch(&ctx, req, &client_host), barrier)
            }
            Err(FrameError::UnsupportedVersion { key: ApiKey::ApiVersions, version, correlation_id }) => {
                debug!(peer = %peer, version, "ApiVersions version not supported; answering with v0");
                (api::api_versions::unsupported(correlation_id), false)
            }
            Err(e) => {
                warn!(peer = %peer, "closing connection: {e}");
                break;
            }
        };
        if tx.send((pending, permit)).await.is_err() {
            break;
        }
        queued += 1;
        if barrier {
            // Kafka handles a connection's requests one at a time. Produce
            // appends as soon as it is read, so after an admin or metadata
            // request (which runs when the writer reaches it), wait until it
            // has run before reading on: a pipelined CreateTopics then Produce
            // must see the topic.
            while done.get() < queued {
                let notified = progress.notified();
                if done.get() >= queued {
                    break;
                }
                notified.await;
            }
        }
    }
    drop(tx);
    writer.await;
    // Dropping the last handle closes the socket.
    drop(stream);
}

/// Writes a response: one buffer, or its pieces in turn.
async fn write_frame(w: &mut Shared, frame: &Frame) -> std::io::Result<()> {
    match frame {
        Frame::One(b) => w.write_all(b).await,
        Frame::Pieces(pieces) => {
            for p in pieces {
                w.write_all(p).await?;
            }
            Ok(())
        }
    }
}

/// A frame that cannot be read.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("frame length {len} is outside 0..={max} (socket.request.max.bytes)")]
    BadLength { len: i32, max: usize },
    #[error("connection ended inside a frame: {0}")]
    Truncated(std::io::Error),
}

/// Reads a frame's length prefix; `None` on a clean end of stream.
async fn read_len(r: &mut Shared, max: usize) -> Result<Option<usize>, ReadError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]).await {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(ReadError::Truncated(std::io::ErrorKind::UnexpectedEof.into())),
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
    Ok(Some(len as usize))
}

/// Reads a frame's body of `len` bytes.
async fn read_body(r: &mut Shared, len: usize) -> Result<Bytes, ReadError> {
    let mut body = body_pool::take(len);
    r.read_exact(body.as_mut()).await.map_err(ReadError::Truncated)?;
    Ok(body.freeze())
}
