//! Writes `replication-offset-checkpoint` (see
//! [`crate::storage::hw_checkpoint`]): a thread of its own (the write
//! blocks, and no shard's reactor may) asks every shard for its
//! partitions' high watermarks every
//! `replica.high.watermark.checkpoint.interval.ms`, and the clean shutdown
//! writes it once more after the shards have stopped. A write that fails is
//! logged and tried again at the next interval: a stale file only holds
//! lower high watermarks, which is safe.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tracing::{info, warn};

use crate::metadata::controller::ShardCommand;
use crate::storage::hw_checkpoint::{self, HwEntry};

/// How long one shard may take to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Every shard's partitions' high watermarks; `None` if a shard did not
/// answer (the file is then left as it is rather than written without it).
pub fn gather(shards: &[flume::Sender<ShardCommand>]) -> Option<Vec<HwEntry>> {
    let mut waits = Vec::with_capacity(shards.len());
    for shard in shards {
        let (done, rx) = flume::bounded(1);
        shard.send(ShardCommand::HighWatermarks { done }).ok()?;
        waits.push(rx);
    }
    let mut all = Vec::new();
    for w in waits {
        all.extend(w.recv_timeout(ANSWER_TIMEOUT).ok()?);
    }
    Some(all)
}

/// Gathers and writes the checkpoint; logs what went wrong.
pub fn checkpoint(shards: &[flume::Sender<ShardCommand>], data_dir: &Path) {
    let Some(entries) = gather(shards) else {
        warn!("a shard did not report its high watermarks: {} not written", hw_checkpoint::FILE_NAME);
        return;
    };
    if let Err(e) = hw_checkpoint::write(data_dir, &entries) {
        warn!("cannot write {}: {e}", hw_checkpoint::FILE_NAME);
    }
}

/// Starts the thread that writes the checkpoint every `interval`.
pub fn spawn(shards: Vec<flume::Sender<ShardCommand>>, data_dir: PathBuf, interval: Duration) -> std::io::Result<()> {
    std::thread::Builder::new().name("hw-checkpoint".into()).spawn(move || {
        loop {
            std::thread::sleep(interval);
            checkpoint(&shards, &data_dir);
        }
    })?;
    Ok(())
}

/// The high watermarks the previous run checkpointed, where replicated
/// partitions start (none if the file is missing or unreadable).
pub fn previous(data_dir: &Path) -> HashMap<(String, i32), i64> {
    match hw_checkpoint::read(data_dir) {
        Ok(found) => {
            if !found.is_empty() {
                info!(partitions = found.len(), "high watermark checkpoint found");
            }
            found
        }
        Err(e) => {
            warn!("ignoring {}: {e}", hw_checkpoint::FILE_NAME);
            HashMap::new()
        }
    }
}
