//! Clean shutdown on SIGTERM or SIGINT: every shard flushes its partitions,
//! cuts active segments to size and writes their index files; then a marker
//! file tells the next start that it may trust those indexes instead of
//! scanning (Kafka's `.kafka_cleanshutdown`). The marker is removed as soon
//! as a broker starts, so a crash later on never leaves a stale one.

use std::io;
use std::path::Path;
use std::time::Duration;

use tracing::{error, info};

use crate::metadata::controller::ShardCommand;
use crate::storage::partition_dir::sync_dir;

/// Marker file in the data directory.
pub const MARKER: &str = ".clean-shutdown";

/// How long a shard may take to flush and write its indexes.
const SHARD_TIMEOUT: Duration = Duration::from_secs(60);

/// Blocks SIGTERM and SIGINT in this thread and every thread it starts
/// afterwards, so that only [`wait_for_signal`] receives them. Call first.
pub fn block_signals() -> libc::sigset_t {
    // SAFETY: plain libc signal-set manipulation on a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Waits for one of the blocked signals and returns its number.
pub fn wait_for_signal(set: &libc::sigset_t) -> i32 {
    let mut sig = 0;
    // SAFETY: `set` was built by `block_signals`; sigwait writes `sig`.
    unsafe { libc::sigwait(set, &mut sig) };
    sig
}

/// Whether the previous run shut down cleanly; removes the marker.
pub fn take_marker(data_dir: &Path) -> io::Result<bool> {
    match std::fs::remove_file(data_dir.join(MARKER)) {
        Ok(()) => {
            sync_dir(data_dir)?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Asks every shard to shut its partitions down and, if all succeed, writes
/// the marker.
pub fn shut_down(shards: &[flume::Sender<ShardCommand>], data_dir: &Path) {
    let mut waits = Vec::new();
    for shard in shards {
        let (done, rx) = flume::bounded(1);
        if shard.send(ShardCommand::Shutdown { done }).is_ok() {
            waits.push(rx);
        }
    }
    let mut clean = waits.len() == shards.len();
    for (k, w) in waits.into_iter().enumerate() {
        match w.recv_timeout(SHARD_TIMEOUT) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                error!(shard = k, "shard did not shut down cleanly: {e}");
                clean = false;
            }
            Err(_) => {
                error!(shard = k, "shard did not finish shutting down in time");
                clean = false;
            }
        }
    }
    // The shards' logs are closed: these are the high watermarks they end at.
    super::hw_checkpoint_task::checkpoint(shards, data_dir);
    if !clean {
        return;
    }
    let marker = data_dir.join(MARKER);
    let written = std::fs::write(&marker, b"")
        .and_then(|()| std::fs::File::open(&marker)?.sync_all())
        .and_then(|()| sync_dir(data_dir));
    match written {
        Ok(()) => info!("clean shutdown complete"),
        Err(e) => error!("cannot write the clean-shutdown marker: {e}"),
    }
}
