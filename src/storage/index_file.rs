//! The on-disk form of a segment's indexes, in Kafka's formats:
//! `<base>.index` holds (relative offset: u32, position: u32) pairs and
//! `<base>.timeindex` holds (timestamp: i64, relative offset: u32) pairs.
//! They are written whole (temp file, fsync, rename) soon after a segment is
//! sealed (in the background) and at clean shutdown, and checked when loaded: an index that does not
//! check out is rebuilt from the log. Blocking calls: run them off the reactor.

use std::io;
use std::path::{Path, PathBuf};

use super::atomic_file::{self, Replacement};
use super::index::{OffsetEntry, SegmentIndex};

fn path(dir: &Path, base: i64, ext: &str) -> PathBuf {
    dir.join(format!("{base:020}.{ext}"))
}

/// `<dir>/<base>.index`.
pub fn offset_path(dir: &Path, base: i64) -> PathBuf {
    path(dir, base, "index")
}

/// `<dir>/<base>.timeindex`.
pub fn time_path(dir: &Path, base: i64) -> PathBuf {
    path(dir, base, "timeindex")
}

/// The base offset an index file's name (`<base>.index` or
/// `<base>.timeindex`, 20 digits) stands for.
pub fn parse_name(name: &str) -> Option<i64> {
    super::segment::parse_base(name.strip_suffix(".index").or_else(|| name.strip_suffix(".timeindex"))?)
}

/// Both index files of the segment based at `base`, encoded, for
/// [`atomic_file::replace`].
pub fn encode(dir: &Path, base: i64, index: &SegmentIndex) -> [Replacement; 2] {
    let mut offsets = Vec::with_capacity(index.offsets.len() * 8);
    for e in &index.offsets {
        offsets.extend_from_slice(&((e.offset - base) as u32).to_be_bytes());
        offsets.extend_from_slice(&(e.position as u32).to_be_bytes());
    }
    let mut times = Vec::with_capacity(index.times.len() * 12);
    for t in &index.times {
        times.extend_from_slice(&t.timestamp.to_be_bytes());
        times.extend_from_slice(&((t.offset - base) as u32).to_be_bytes());
    }
    [
        Replacement { path: offset_path(dir, base), bytes: offsets },
        Replacement { path: time_path(dir, base), bytes: times },
    ]
}

/// Writes both index files of the segment based at `base`.
pub fn write(dir: &Path, base: i64, index: &SegmentIndex) -> io::Result<()> {
    atomic_file::replace(dir, &encode(dir, base, index))
}

/// Index files as read, before they are checked against the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// Offset entries.
    pub offsets: Vec<OffsetEntry>,
    /// (timestamp, offset) entries.
    pub times: Vec<(i64, i64)>,
}

/// Reads both index files; `None` if either is missing or malformed (wrong
/// length, entries out of order), which means "rebuild".
pub fn read(dir: &Path, base: i64) -> io::Result<Option<Loaded>> {
    let (Some(o), Some(t)) = (read_opt(&offset_path(dir, base))?, read_opt(&time_path(dir, base))?) else {
        return Ok(None);
    };
    if o.is_empty() || o.len() % 8 != 0 || t.len() % 12 != 0 {
        return Ok(None);
    }
    let offsets: Vec<OffsetEntry> = o
        .chunks_exact(8)
        .map(|c| OffsetEntry {
            offset: base + i64::from(u32::from_be_bytes(c[0..4].try_into().expect("4"))),
            position: u64::from(u32::from_be_bytes(c[4..8].try_into().expect("4"))),
        })
        .collect();
    let times: Vec<(i64, i64)> = t
        .chunks_exact(12)
        .map(|c| {
            let ts = i64::from_be_bytes(c[0..8].try_into().expect("8"));
            (ts, base + i64::from(u32::from_be_bytes(c[8..12].try_into().expect("4"))))
        })
        .collect();
    let ordered = offsets[0] == OffsetEntry { offset: base, position: 0 }
        && offsets.windows(2).all(|w| w[0].offset < w[1].offset && w[0].position < w[1].position)
        && times.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
        && times.first().is_none_or(|t| t.1 >= base);
    Ok(ordered.then_some(Loaded { offsets, times }))
}

fn read_opt(p: &Path) -> io::Result<Option<Vec<u8>>> {
    match std::fs::read(p) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes both index files (the segment is gone).
pub fn remove(dir: &Path, base: i64) -> io::Result<()> {
    for p in [offset_path(dir, base), time_path(dir, base)] {
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::index::BatchEntry;

    #[test]
    fn index_file_names_parse_to_their_base() {
        assert_eq!(parse_name("00000000000000000042.index"), Some(42));
        assert_eq!(parse_name("00000000000000000042.timeindex"), Some(42));
        for other in ["00000000000000000042.log", "42.index", "00000000000000000042.index.tmp", "x.timeindex"] {
            assert_eq!(parse_name(other), None, "{other}");
        }
    }

    #[test]
    fn round_trip_and_rejects_garbage() {
        let dir = std::env::temp_dir().join(format!("sluice-ixf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut ix = SegmentIndex::new();
        for i in 0..50 {
            let e = BatchEntry {
                base_offset: 100 + i,
                last_offset: 100 + i,
                max_timestamp: 5000 + i,
                segment_base: 100,
                position: (i * 300) as u64,
                len: 300,
            };
            ix.append(&e, 1000);
        }
        write(&dir, 100, &ix).unwrap();
        let loaded = read(&dir, 100).unwrap().unwrap();
        assert_eq!(loaded.offsets, ix.offsets);
        assert_eq!(loaded.times, ix.times.iter().map(|t| (t.timestamp, t.offset)).collect::<Vec<_>>());
        std::fs::write(offset_path(&dir, 100), [0u8; 12]).unwrap();
        assert_eq!(read(&dir, 100).unwrap(), None, "torn length");
        std::fs::write(offset_path(&dir, 100), [0u8; 16]).unwrap();
        assert_eq!(read(&dir, 100).unwrap(), None, "entries out of order");
        remove(&dir, 100).unwrap();
        assert_eq!(read(&dir, 100).unwrap(), None, "missing");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
