//! A log segment: one `.log` file named by its base offset (20 digits, as
//! Kafka names them), opened for direct I/O.

use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use glommio::io::{DmaFile, OpenOptions};

use super::index::SegmentIndex;

/// One segment of a partition's log. A clone shares the file: the spare
/// segment is recycled only once no clone of a deleted one is left.
#[derive(Clone)]
pub struct Segment {
    /// Offset of the first batch this segment holds (or will hold).
    pub base_offset: i64,
    /// The file, shared with in-flight reads.
    pub file: Rc<DmaFile>,
    /// Durable logical size in bytes: everything below it is fsynced.
    pub size: u64,
    /// Sparse offset and time index of its durable batches.
    pub index: SegmentIndex,
}

/// `<dir>/<base offset, 20 digits>.log`.
pub fn log_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{base_offset:020}.log"))
}

/// Removes the segment based at `base`: its `.log` file and its index
/// files (blocking: run it off the reactor). The caller fsyncs `dir`.
pub fn remove(dir: &Path, base: i64) -> io::Result<()> {
    std::fs::remove_file(log_path(dir, base))?;
    super::index_file::remove(dir, base)
}

/// Parses a segment file name back to its base offset.
pub fn parse_log_name(name: &str) -> Option<i64> {
    parse_base(name.strip_suffix(".log")?)
}

/// The base offset a segment's file stem (20 digits, as Kafka names its
/// `.log`, `.index` and `.timeindex` files) stands for.
pub fn parse_base(stem: &str) -> Option<i64> {
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Opens (creating if absent) a segment file for reading and writing.
pub async fn open_file(path: &Path) -> io::Result<DmaFile> {
    OpenOptions::new().read(true).write(true).create(true).dma_open(path).await.map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let p = log_path(Path::new("/d"), 42);
        assert_eq!(p, Path::new("/d/00000000000000000042.log"));
        assert_eq!(parse_log_name("00000000000000000042.log"), Some(42));
        assert_eq!(parse_log_name("42.log"), None);
        assert_eq!(parse_log_name("00000000000000000042.index"), None);
    }
}
