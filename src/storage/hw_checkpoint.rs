//! `replication-offset-checkpoint`: every partition's high watermark, in
//! the data directory, as Kafka keeps it per log dir. The broker writes it
//! every `replica.high.watermark.checkpoint.interval.ms` and at a clean
//! shutdown (see `broker::hw_checkpoint_task`); a replicated partition
//! (issue 24) starts from it, since its high watermark trails its log end.
//! A checkpointed value lower than the truth is always safe: the leader
//! sends the real one with the next fetch.
//!
//! The format is Kafka's: a version line (0), a count line, then
//! `topic partition offset` per line. File calls block: run them off any
//! shard's reactor.

use std::collections::HashMap;
use std::io;
use std::path::Path;

use thiserror::Error;

use super::atomic_file::{self, Replacement};

/// File name inside the data directory (Kafka's).
pub const FILE_NAME: &str = "replication-offset-checkpoint";

const VERSION: i32 = 0;

/// Most entries a checkpoint may hold: a bound on what a damaged count line
/// can make the reader allocate (Kafka clusters stay far below it).
pub const MAX_ENTRIES: usize = 1 << 22;

/// One partition's high watermark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HwEntry {
    pub topic: String,
    pub partition: i32,
    pub high_watermark: i64,
}

/// A checkpoint file that does not read back.
#[derive(Debug, Error)]
pub enum HwCheckpointError {
    #[error("reading {FILE_NAME}: {0}")]
    Io(#[from] io::Error),
    #[error("{FILE_NAME} line {line}: {why}")]
    Malformed { line: usize, why: &'static str },
}

/// The file's text for `entries` (sorted by topic and partition, so the
/// file reads the same for the same state).
pub fn encode(entries: &[HwEntry]) -> String {
    let mut sorted: Vec<&HwEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    let mut out = format!("{VERSION}\n{}\n", sorted.len());
    for e in sorted {
        out.push_str(&format!("{} {} {}\n", e.topic, e.partition, e.high_watermark));
    }
    out
}

/// Parses the file's text into (topic, partition) → high watermark.
pub fn decode(text: &str) -> Result<HashMap<(String, i32), i64>, HwCheckpointError> {
    let bad = |line: usize, why: &'static str| HwCheckpointError::Malformed { line, why };
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim()));
    let (n, version) = lines.next().ok_or(bad(1, "empty file"))?;
    if version.parse::<i32>().ok() != Some(VERSION) {
        return Err(bad(n, "unknown version"));
    }
    let (n, count) = lines.next().ok_or(bad(2, "no entry count"))?;
    let count: usize = count.parse().map_err(|_| bad(n, "entry count is not a number"))?;
    if count > MAX_ENTRIES {
        return Err(bad(n, "more entries than a broker holds"));
    }
    let mut out = HashMap::new();
    for _ in 0..count {
        let (n, line) = lines.next().ok_or(bad(0, "fewer entries than counted"))?;
        let mut parts = line.split_whitespace();
        let topic = parts.next().filter(|t| !t.is_empty());
        let partition = parts.next().and_then(|p| p.parse::<i32>().ok()).filter(|p| *p >= 0);
        let offset = parts.next().and_then(|o| o.parse::<i64>().ok()).filter(|o| *o >= 0);
        let (Some(topic), Some(partition), Some(offset), None) = (topic, partition, offset, parts.next()) else {
            return Err(bad(n, "expected `topic partition offset`"));
        };
        // Two copies of a partition on one broker (two of its shards) are
        // both listed: the lower high watermark is the safe start for each.
        out.entry((topic.to_string(), partition)).and_modify(|o: &mut i64| *o = (*o).min(offset)).or_insert(offset);
    }
    if let Some((n, _)) = lines.find(|(_, l)| !l.is_empty()) {
        return Err(bad(n, "lines after the entries"));
    }
    Ok(out)
}

/// Writes the checkpoint atomically and durably.
pub fn write(data_dir: &Path, entries: &[HwEntry]) -> io::Result<()> {
    let file = Replacement { path: data_dir.join(FILE_NAME), bytes: encode(entries).into_bytes() };
    atomic_file::replace(data_dir, &[file])
}

/// Reads the checkpoint; no file is an empty one.
pub fn read(data_dir: &Path) -> Result<HashMap<(String, i32), i64>, HwCheckpointError> {
    match std::fs::read_to_string(data_dir.join(FILE_NAME)) {
        Ok(text) => decode(&text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(HashMap::new()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(topic: &str, partition: i32, hw: i64) -> HwEntry {
        HwEntry { topic: topic.into(), partition, high_watermark: hw }
    }

    #[test]
    fn kafkas_format_round_trips_and_damage_is_refused() {
        let text = encode(&[entry("b", 0, 7), entry("a", 1, 42), entry("a", 0, 0)]);
        assert_eq!(text, "0\n3\na 0 0\na 1 42\nb 0 7\n");
        let back = decode(&text).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back[&("a".to_string(), 1)], 42);
        let two_copies = decode(&encode(&[entry("c", 0, 9), entry("c", 0, 5)])).unwrap();
        assert_eq!(two_copies[&("c".to_string(), 0)], 5, "two copies on one broker: the lower");
        for bad in [
            "",
            "1\n0\n",
            "0\n9999999999\n",
            "0\n1\n",
            "0\n1\na x 3\n",
            "0\n1\na 0 -1\n",
            "0\n1\na 0 1 2\n",
            "0\n0\nz\n",
        ] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn written_and_read_in_a_directory() {
        let dir = std::env::temp_dir().join(format!("sluice-hwcp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(read(&dir).unwrap().is_empty());
        write(&dir, &[entry("t", 3, 99)]).unwrap();
        assert_eq!(read(&dir).unwrap()[&("t".to_string(), 3)], 99);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
