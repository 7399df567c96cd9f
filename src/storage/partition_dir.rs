//! A partition's directory and its `partition.metadata` (Kafka's name), which
//! records the topic id so that a re-created topic never reads a deleted
//! one's leftovers. Blocking file calls: run them off the reactor.

use std::io;
use std::path::Path;

use tracing::{info, warn};
use uuid::Uuid;

use super::atomic_file::{self, Replacement};
use super::{index_file, segment};

/// Kafka's file name for the topic id of a partition directory.
pub const PARTITION_METADATA: &str = "partition.metadata";

fn contents(topic_id: Uuid) -> String {
    format!("version: 0\ntopic_id: {topic_id}\n")
}

/// The topic id the file records; `None` when it is missing or unreadable
/// (for example empty after a crash), which is not proof of another topic.
fn recorded_id(path: &Path) -> io::Result<Option<Uuid>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.lines().find_map(|l| l.strip_prefix("topic_id: ")).and_then(|id| id.trim().parse().ok())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// fsyncs a directory so that entries created or renamed in it survive a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Writes `partition.metadata` atomically: temp file, fsync, rename, fsync dir.
fn write_metadata(dir: &Path, topic_id: Uuid) -> io::Result<()> {
    let file = Replacement { path: dir.join(PARTITION_METADATA), bytes: contents(topic_id).into_bytes() };
    atomic_file::replace(dir, &[file])
}

/// Empties `dir` and leaves in it the topic id and one empty segment based
/// at `start`, so that the log opened there begins at `start`: a follower
/// whose whole log lies below its leader's log start begins again there
/// (Kafka's truncateFullyAndStartAt). A crash part way leaves either the
/// old log or an empty one, and the follower finds itself behind again.
/// Blocking: run it off the reactor.
pub fn reset_at(dir: &Path, topic_id: Uuid, start: i64) -> io::Result<()> {
    // What the directory holds, not the directory: it may be a mount point.
    std::fs::create_dir_all(dir)?;
    for e in std::fs::read_dir(dir)? {
        let path = e?.path();
        if path.is_dir() { std::fs::remove_dir_all(&path)? } else { std::fs::remove_file(&path)? }
    }
    write_metadata(dir, topic_id)?;
    std::fs::File::create(segment::log_path(dir, start))?.sync_all()?;
    sync_dir(dir)?;
    match dir.parent() {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}

/// Creates the directory if needed, clears it only if it provably belongs to
/// another topic id, removes the temp files a crash left in it (see
/// [`atomic_file::remove_leftovers`]) and the index files of segments that
/// are gone, and returns the base offsets of its segments, sorted.
pub fn prepare(dir: &Path, topic_id: Uuid) -> io::Result<Vec<i64>> {
    if !dir.exists() {
        std::fs::create_dir_all(dir)?;
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
    }
    let meta = dir.join(PARTITION_METADATA);
    match recorded_id(&meta)? {
        Some(id) if id == topic_id => {}
        Some(other) => {
            warn!(dir = %dir.display(), old = %other, new = %topic_id, "directory holds a deleted topic's data; clearing it");
            for e in std::fs::read_dir(dir)? {
                std::fs::remove_file(e?.path())?;
            }
            write_metadata(dir, topic_id)?;
        }
        None => write_metadata(dir, topic_id)?,
    }
    // Not fatal: a leftover only takes space.
    match atomic_file::remove_leftovers(dir) {
        Ok(files) if !files.is_empty() => info!(dir = %dir.display(), ?files, "removed temp files left by a crash"),
        Ok(_) => {}
        Err(e) => warn!(dir = %dir.display(), "cannot remove the temp files a crash left: {e}"),
    }
    let mut bases = Vec::new();
    let mut indexed = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let name = e?.file_name();
        let name = name.to_str().unwrap_or_default();
        if let Some(b) = segment::parse_log_name(name) {
            bases.push(b);
        } else if let Some(b) = index_file::parse_name(name) {
            indexed.push(b);
        }
    }
    bases.sort_unstable();
    // A crash between unlinking a segment and its index files leaves them:
    // they go, or a later segment of that base could find them. Not fatal.
    indexed.retain(|b| bases.binary_search(b).is_err());
    indexed.sort_unstable();
    indexed.dedup();
    for &base in &indexed {
        match index_file::remove(dir, base) {
            Ok(()) => info!(dir = %dir.display(), segment = base, "removed the index files of a deleted segment"),
            Err(e) => warn!(dir = %dir.display(), segment = base, "cannot remove a deleted segment's index files: {e}"),
        }
    }
    Ok(bases)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("sluice-pdir-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn torn_metadata_file_keeps_segments() {
        let d = tmpdir("torn");
        let id = Uuid::new_v4();
        prepare(&d, id).unwrap();
        std::fs::write(segment::log_path(&d, 0), b"data").unwrap();
        std::fs::write(d.join(PARTITION_METADATA), b"").unwrap(); // as after a crash
        assert_eq!(prepare(&d, id).unwrap(), vec![0], "segments must survive");
        assert_eq!(recorded_id(&d.join(PARTITION_METADATA)).unwrap(), Some(id));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn another_topic_id_is_cleared() {
        let d = tmpdir("other");
        prepare(&d, Uuid::new_v4()).unwrap();
        std::fs::write(segment::log_path(&d, 0), b"old").unwrap();
        let new = Uuid::new_v4();
        assert!(prepare(&d, new).unwrap().is_empty());
        assert_eq!(recorded_id(&d.join(PARTITION_METADATA)).unwrap(), Some(new));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
