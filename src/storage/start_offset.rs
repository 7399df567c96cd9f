//! The persisted log start offset of a partition: DeleteRecords and
//! retention can move it into the middle of a segment, and it must stay
//! there across restarts (Kafka keeps `log-start-offset-checkpoint`).
//! Blocking file calls: run them off the reactor.

use std::io;
use std::path::Path;

use super::atomic_file::{self, Replacement};

/// File name inside the partition directory.
pub const FILE_NAME: &str = "log-start-offset";

/// The recorded start offset, if any.
pub fn read(dir: &Path) -> io::Result<Option<i64>> {
    match std::fs::read_to_string(dir.join(FILE_NAME)) {
        Ok(text) => Ok(text.trim().parse().ok()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Records `offset`, atomically; durable once the caller fsyncs `dir`.
pub fn write_unsynced(dir: &Path, offset: i64) -> io::Result<()> {
    atomic_file::replace_unsynced(&[Replacement {
        path: dir.join(FILE_NAME),
        bytes: format!("{offset}\n").into_bytes(),
    }])
}
