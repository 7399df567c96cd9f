//! Compaction of `raft.log`: the file only grows (every operation is
//! appended), while openraft purges the entries a snapshot covers. Once the
//! file passes `COMPACT_AT` bytes, a purge rewrites it as the few
//! operations that rebuild what is left (the vote, the committed id, the
//! purge point and the remaining entries): into a temporary file, synced,
//! then renamed over the log and the directory synced. A crash before the
//! rename leaves the old file whole; after it, the new one.

use std::io::{self, Write};
use std::path::Path;

use super::{Inner, LogFile, Op};
use crate::metadata::raft::frame;

/// The file size past which a purge compacts it.
pub const COMPACT_AT: u64 = 4 << 20;

/// The compacted file's name while it is written.
const TEMP_NAME: &str = "raft.log.compact";

/// Rewrites the log at `path` as the operations that rebuild `inner`, and
/// returns the new file to append to.
pub fn rewrite(path: &Path, inner: &Inner) -> io::Result<LogFile> {
    let dir = path.parent().expect("the log lives in a directory");
    let temp = dir.join(TEMP_NAME);
    let mut ops = Vec::new();
    if let Some(v) = inner.vote {
        ops.push(Op::Vote(v));
    }
    ops.push(Op::Committed(inner.committed));
    if let Some(p) = inner.last_purged {
        ops.push(Op::Purge(p));
    }
    if !inner.entries.is_empty() {
        ops.push(Op::Append(inner.entries.values().cloned().collect()));
    }
    let mut bytes = Vec::new();
    for op in &ops {
        bytes.extend_from_slice(&frame::encode(op)?);
    }
    let mut f = std::fs::OpenOptions::new().create(true).write(true).truncate(true).open(&temp)?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    drop(f);
    fail::fail_point!("metadata_log::compact_before_rename", |_| Err(io::Error::other(
        "injected failure at metadata_log::compact_before_rename"
    )));
    std::fs::rename(&temp, path)?;
    crate::storage::partition_dir::sync_dir(dir)?;
    let file = std::fs::OpenOptions::new().append(true).open(path)?;
    let len = bytes.len() as u64;
    let mut file = LogFile { file, len, reserved_to: len };
    file.reserve();
    Ok(file)
}
