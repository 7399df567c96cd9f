//! Compaction of `raft.log`: the file only grows (every operation is
//! appended), while openraft purges the entries a snapshot covers. Once the
//! file passes `COMPACT_AT` bytes (and twice what the last compaction
//! left), a purge rewrites it as the few operations that rebuild what is
//! left (the vote, the committed id, the purge point and the remaining
//! entries): into a temporary file, synced and opened, then renamed over the
//! log and the directory synced. A crash before the rename leaves the old
//! file whole; after it, the new one. Once renamed, the new file is the log
//! whatever fails next: appends never go to the replaced one.

use std::io::{self, Write};
use std::path::Path;

use super::{Inner, LogFile, Op};
use crate::metadata::raft::frame;

/// The file size past which a purge compacts it.
pub const COMPACT_AT: u64 = 4 << 20;

/// The compacted file's name while it is written.
pub const TEMP_NAME: &str = "raft.log.compact";

/// Whether a file of `len` bytes, `base` bytes right after its last
/// compaction (or open), is due: past `COMPACT_AT`, and grown to twice
/// `base`, so that a log whose live part is large is not rewritten at
/// every purge.
pub fn due(len: u64, base: u64) -> bool {
    len >= COMPACT_AT.max(base.saturating_mul(2))
}

/// Rewrites the log at `path` as the operations that rebuild `inner`, and
/// returns the new file to append to. An error before the rename leaves
/// the old file as the log (and no temporary file behind).
pub fn rewrite(path: &Path, inner: &Inner) -> io::Result<LogFile> {
    let dir = path.parent().expect("the log lives in a directory");
    let temp = dir.join(TEMP_NAME);
    let written = write_temp(&temp, inner).and_then(|file| {
        fail::fail_point!("metadata_log::compact_before_rename", |_| Err(io::Error::other(
            "injected failure at metadata_log::compact_before_rename"
        )));
        std::fs::rename(&temp, path)?;
        Ok(file)
    });
    let mut file = match written {
        Ok(file) => file,
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            return Err(e);
        }
    };
    // Renamed: this is the log now. A failed directory sync only leaves
    // the rename less durable (a crash may bring back the old, whole file).
    if let Err(e) = crate::storage::partition_dir::sync_dir(dir) {
        tracing::warn!("the metadata log's directory was not synced after compaction: {e}");
    }
    file.reserve();
    Ok(file)
}

/// Writes, syncs and opens (for appending) the compacted log at `temp`.
fn write_temp(temp: &Path, inner: &Inner) -> io::Result<LogFile> {
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
    let mut f = std::fs::OpenOptions::new().create(true).write(true).truncate(true).open(temp)?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    drop(f);
    let file = std::fs::OpenOptions::new().append(true).open(temp)?;
    let len = bytes.len() as u64;
    Ok(LogFile {
        file,
        len,
        reserved_to: len,
        base: len,
        #[cfg(test)]
        tearable: false,
    })
}
