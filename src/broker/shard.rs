//! A shard: one executor pinned to one core, one Kafka node. It opens the
//! partitions it owns, applies the controller's commands, and serves every
//! connection accepted on its own port.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use glommio::net::TcpListener;
use tracing::{error, info, warn};

use crate::broker::context::ShardCtx;
use crate::broker::{connection, retention_task};
use crate::metadata::controller::{OpenPartition, ShardCommand, ShardError};
use crate::storage::iopoll_probe;

/// Runs shard `ctx.setup.node_id` until the process ends. `ready` reports whether
/// its partitions opened and its port is bound.
pub async fn run(
    ctx: Rc<ShardCtx>,
    commands: flume::Receiver<ShardCommand>,
    bind: SocketAddr,
    ready: flume::Sender<Result<(), String>>,
) {
    if let Err(e) = iopoll_probe::prime(&ctx.setup.data_dir).await {
        let _ = ready.send(Err(format!("shard {}: cannot open the I/O probe file: {e}", ctx.setup.node_id)));
        return;
    }
    let snapshot = ctx.setup.snapshot.load_full();
    let me = ctx.setup.node_id;
    for topic in snapshot.topics.values() {
        for p in 0..topic.replicas.len() {
            if topic.replicas[p].contains(&me)
                && let Err(e) = ctx.open_partition(topic, p as i32, &snapshot.replica_dir(topic, p, me)).await
            {
                let _ = ready.send(Err(format!("shard {me}: cannot open partition {}-{p}: {e}", topic.name)));
                return;
            }
        }
    }
    let listener = match listen(bind).await {
        Ok((l, fd)) => {
            ctx.listener_fd.set(Some(fd));
            l
        }
        Err(e) => {
            let _ = ready.send(Err(format!("shard {}: cannot listen on {bind}: {e}", ctx.setup.node_id)));
            return;
        }
    };
    info!(shard = ctx.setup.node_id, %bind, "listening");
    let _ = ready.send(Ok(()));
    // Retention runs in a task queue of its own with a small share, so that
    // deleting segments never delays request handling.
    let background = glommio::executor().create_task_queue(
        glommio::Shares::Static(10),
        glommio::Latency::NotImportant,
        "background",
    );
    if let Err(e) = glommio::spawn_local_into(retention_task::run(ctx.clone()), background).map(|t| t.detach()) {
        error!(shard = ctx.setup.node_id, "cannot start the retention task: {e}");
    }
    glommio::spawn_local(crate::group::timer_task::run(ctx.clone())).detach();
    glommio::spawn_local(crate::replication::isr::run(ctx.clone())).detach();
    let cmd_ctx = ctx.clone();
    glommio::spawn_local(async move {
        while let Ok(cmd) = commands.recv_async().await {
            apply(&cmd_ctx, cmd).await;
        }
    })
    .detach();
    let mut backoff = AcceptBackoff::default();
    loop {
        match listener.accept().await {
            Ok(stream) => {
                backoff.reset();
                glommio::spawn_local(connection::serve(ctx.clone(), stream)).detach();
            }
            Err(_) if ctx.listener_fd.get().is_none() => {
                // A clean shutdown closed the listener (ShardCommand::Shutdown):
                // nothing more to accept. Not a return: the executor must keep
                // running the shutdown's own tasks until the process exits.
                futures_lite::future::pending::<()>().await;
            }
            Err(e) => {
                // Typically EMFILE: back off instead of spinning, and say so
                // once per interval rather than once per failure.
                let (pause, report) = backoff.failed();
                if let Some(failures) = report {
                    warn!(shard = ctx.setup.node_id, failures, "accept failed: {e}; retrying in {pause:?}");
                }
                glommio::timer::sleep(pause).await;
            }
        }
    }
}

/// Pauses after failed accepts: doubling from 10 ms to 1 s, with a log
/// line at most every 10 s.
#[derive(Default)]
struct AcceptBackoff {
    pause: Option<Duration>,
    failures: u64,
    last_report: Option<std::time::Instant>,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(1);
    const REPORT_EVERY: Duration = Duration::from_secs(10);

    fn reset(&mut self) {
        self.pause = None;
    }

    /// The pause after one more failure, and the failures since the last
    /// report if one is due now.
    fn failed(&mut self) -> (Duration, Option<u64>) {
        let pause = self.pause.map_or(Self::FIRST, |p| (p * 2).min(Self::MAX));
        self.pause = Some(pause);
        self.failures += 1;
        let due = self.last_report.is_none_or(|t| t.elapsed() >= Self::REPORT_EVERY);
        if !due {
            return (pause, None);
        }
        self.last_report = Some(std::time::Instant::now());
        (pause, Some(std::mem::take(&mut self.failures)))
    }
}

/// How long a start waits for its port to be released.
const BIND_PATIENCE: Duration = Duration::from_secs(5);

/// Binds the shard's port. Not glommio's `TcpListener::bind`: that sets
/// SO_REUSEPORT, which lets a second broker bind the same port and silently
/// take half the connections. std's listener sets only SO_REUSEADDR (so a
/// restart can rebind while old connections sit in TIME_WAIT). A killed
/// broker's listening sockets outlive the process for a moment (its io_uring
/// rings are torn down asynchronously), so EADDRINUSE is retried briefly.
async fn listen(addr: SocketAddr) -> std::io::Result<(TcpListener, std::os::fd::RawFd)> {
    use std::os::fd::{FromRawFd, IntoRawFd};
    let deadline = std::time::Instant::now() + BIND_PATIENCE;
    let std_listener = loop {
        match std::net::TcpListener::bind(addr) {
            Ok(l) => break l,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && std::time::Instant::now() < deadline => {
                glommio::timer::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e),
        }
    };
    let fd = std_listener.into_raw_fd();
    // SAFETY: the fd is a bound, listening TCP socket that we give away.
    Ok((unsafe { TcpListener::from_raw_fd(fd) }, fd))
}

async fn apply(ctx: &Rc<ShardCtx>, cmd: ShardCommand) {
    match cmd {
        ShardCommand::Open { partitions, done } => {
            let mut result = Ok(());
            for OpenPartition { topic, partition: p, dir } in partitions {
                if let Err(e) = ctx.open_partition(&topic, p, &dir).await {
                    error!(shard = ctx.setup.node_id, topic = %topic.name, partition = p, "cannot open partition: {e}");
                    let (topic, partition, shard) = (topic.name.clone(), p, ctx.setup.node_id);
                    result = Err(ShardError::Open { topic, partition, shard, cause: (&e).into() });
                    break;
                }
            }
            let _ = done.send(result);
        }
        ShardCommand::Shutdown { done } => {
            // Stop listening first. Left to process exit, the socket lives on
            // until io_uring's teardown finishes, and a client of the next
            // broker on this port could be accepted by it and then reset.
            if let Some(fd) = ctx.listener_fd.take() {
                // SAFETY: shutdown(2) on our own listening socket; the fd stays
                // open (owned by the accept loop) and only stops accepting.
                unsafe {
                    libc::shutdown(fd, libc::SHUT_RDWR);
                }
            }
            let mut result = Ok(());
            for log in ctx.all_logs() {
                if let Err(e) = log.shutdown().await {
                    error!(shard = ctx.setup.node_id, "clean shutdown of a partition failed: {e}");
                    result = Err(ShardError::Shutdown { shard: ctx.setup.node_id, cause: (&e).into() });
                }
            }
            let _ = done.send(result);
        }
        ShardCommand::HighWatermarks { done } => {
            let _ = done.send(ctx.high_watermarks());
        }
        ShardCommand::DropTopic { name, done } => {
            ctx.drop_topic(&name).await;
            ctx.groups.drop_topic_offsets(ctx, &name).await;
            let _ = done.send(());
        }
        ShardCommand::ClosePartition { topic, partition, done } => {
            ctx.close_partition(&topic, partition).await;
            let _ = done.send(());
        }
        ShardCommand::Reconfigure { topic, done } => {
            ctx.reconfigure(&topic);
            let _ = done.send(());
        }
        ShardCommand::ReconfigureAll { done } => {
            for topic in ctx.setup.snapshot.load().topics.values() {
                ctx.reconfigure(topic);
            }
            // A shorter retention deletes what it no longer keeps now, not
            // at the next timed pass.
            ctx.retention_due.notify_all();
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_failures_back_off_to_a_second_and_report_rarely() {
        let mut b = AcceptBackoff::default();
        let (first, report) = b.failed();
        assert_eq!((first, report), (AcceptBackoff::FIRST, Some(1)));
        let mut reports = 0;
        let mut last = first;
        for _ in 0..20 {
            let (pause, report) = b.failed();
            assert!(pause >= last && pause <= AcceptBackoff::MAX);
            reports += usize::from(report.is_some());
            last = pause;
        }
        assert_eq!(last, AcceptBackoff::MAX);
        assert_eq!(reports, 0, "at most one line per interval");
        b.reset();
        assert_eq!(b.failed().0, AcceptBackoff::FIRST);
    }
}
