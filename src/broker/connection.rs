//! One client connection: read frames, start each request's handling in
//! arrival order, and write responses in that same order while later
//! requests proceed (pipelining), so produce requests on one connection
//! share a group commit instead of waiting for each other's fsync.

use std::cell::{Cell, RefCell};
use std::os::fd::RawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

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

/// Bodies at least this large also draw on the shard's budget
/// (`queued.max.request.bytes`); smaller ones (metadata, heartbeats, small
/// produce requests) never wait for it, so that connections holding large
/// partial frames cannot stop every other client.
pub const SHARD_BUDGET_MIN: usize = body_pool::POOLED_MIN;

/// Bodies larger than this are not allocated at their declared size up
/// front: the buffer grows as bytes arrive, so a client that declares
/// 100 MiB and sends little holds little.
pub const GROW_FROM: usize = 4 << 20;

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
    let (tx, rx) = local_channel::new_bounded::<(Pending, Permits)>(MAX_IN_FLIGHT);
    // Responses written so far (or skipped, for acks=0), for ordering barriers.
    let done = Rc::new(Cell::new(0u64));
    let progress = Rc::new(Notify::default());
    let budget = Rc::new(Semaphore::new(MAX_IN_FLIGHT_BYTES as u64));
    let activity = Rc::new(Activity::default());
    let mut writer_stream = stream.clone();
    let writer_peer = peer.clone();
    let (writer_done, writer_progress) = (done.clone(), progress.clone());
    let writer_activity = activity.clone();
    let writer = glommio::spawn_local(async move {
        while let Some((pending, (permit, shard_permit))) = rx.recv().await {
            let response = pending.await;
            // The request is handled and its body dropped: the shard's budget
            // must not wait for a client that reads its responses slowly.
            drop(shard_permit);
            if let Some(frame) = response
                && let Err(e) = write_frame(&mut writer_stream, &frame).await
            {
                debug!(peer = %writer_peer, "write failed: {e}");
                break;
            }
            drop(permit);
            writer_activity.touch();
            writer_done.set(writer_done.get() + 1);
            writer_progress.notify_all();
        }
        // Unblock a reader waiting at a barrier: nothing more will be written.
        writer_done.set(u64::MAX);
        writer_progress.notify_all();
    });
    let max = ctx.setup.settings.load().socket_request_max_bytes();
    let mut reader = stream.clone();
    let watchdog = ctx.setup.settings.load().connections_max_idle().map(|idle| {
        let fd = std::os::fd::AsRawFd::as_raw_fd(&*stream.0.borrow());
        glommio::spawn_local(idle_watchdog(activity.clone(), done.clone(), idle, fd, peer.clone()))
    });
    let shard_budget = ctx.request_budget.clone();
    let shard_max = ctx.setup.settings.load().queued_max_request_bytes();
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
        // And over all of the shard's connections, for large bodies.
        let mut shard_permit = if len >= SHARD_BUDGET_MIN {
            let Ok(p) = shard_budget.acquire_static_permit(len.min(shard_max) as u64).await else {
                break;
            };
            Some(p)
        } else {
            None
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
                let produce = req.api_key == ApiKey::Produce;
                let pending = api::dispatch(&ctx, req, &client_host).await;
                if produce {
                    // Its records are in the log and its body is gone: the
                    // shard's budget need not wait for the fdatasync.
                    shard_permit = None;
                }
                (pending, barrier)
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
        if tx.send((pending, (permit, shard_permit))).await.is_err() {
            break;
        }
        let queued = activity.queued.get() + 1;
        activity.queued.set(queued);
        activity.touch();
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
    // The watchdog must never shut down a descriptor number that a later
    // connection may reuse: it stops before the socket closes.
    activity.closed.set(true);
    if let Some(w) = watchdog {
        w.cancel().await;
    }
    // Dropping the last handle closes the socket.
    drop(stream);
}

/// The per-connection and shard budget permits a request holds until its
/// response is written.
type Permits = (StaticPermit, Option<StaticPermit>);

/// When a connection last did something, for `connections.max.idle.ms`.
struct Activity {
    last: Cell<std::time::Instant>,
    /// Requests handed to the writer so far.
    queued: Cell<u64>,
    closed: Cell<bool>,
}

impl Default for Activity {
    fn default() -> Self {
        Activity { last: Cell::new(std::time::Instant::now()), queued: Cell::new(0), closed: Cell::new(false) }
    }
}

impl Activity {
    fn touch(&self) {
        self.last.set(std::time::Instant::now());
    }
}

/// Closes the connection once it has had no complete request and no
/// response for `idle`, with nothing in flight (a long-polling fetch is not
/// idle). A frame that never finishes arriving does not count as activity,
/// so a client trickling bytes of one frame is closed too.
async fn idle_watchdog(activity: Rc<Activity>, done: Rc<Cell<u64>>, idle: Duration, fd: RawFd, peer: String) {
    let check = (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(10));
    loop {
        glommio::timer::sleep(check).await;
        if activity.closed.get() {
            return;
        }
        if done.get() < activity.queued.get() {
            activity.touch();
            continue;
        }
        if activity.last.get().elapsed() >= idle {
            debug!(peer = %peer, "closing a connection idle for {idle:?} (connections.max.idle.ms)");
            // SAFETY: shutdown(2) on this connection's own socket, which is
            // open: `closed` is set before the stream drops.
            unsafe {
                libc::shutdown(fd, libc::SHUT_RDWR);
            }
            return;
        }
    }
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

/// Reads a frame's body of `len` bytes: into a pooled buffer of its size,
/// or, past [`GROW_FROM`], into one that grows as the bytes arrive.
async fn read_body(r: &mut Shared, len: usize) -> Result<Bytes, ReadError> {
    if len <= GROW_FROM {
        let mut body = body_pool::take(len);
        r.read_exact(body.as_mut()).await.map_err(ReadError::Truncated)?;
        return Ok(body.freeze());
    }
    let mut body: Vec<u8> = Vec::new();
    while body.len() < len {
        // At most doubling, and never past `len`: the buffer holds at most
        // twice what has arrived, and exactly `len` at the end.
        let have = body.len();
        let grow = (len - have).min(have.max(GROW_FROM));
        body.reserve_exact(grow);
        body.resize(have + grow, 0);
        r.read_exact(&mut body[have..]).await.map_err(ReadError::Truncated)?;
    }
    debug_assert_eq!((body.len(), body.capacity()), (len, len));
    Ok(Bytes::from(body))
}
