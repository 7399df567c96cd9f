//! The persisted log start offset of a partition: DeleteRecords and
//! retention can move it into the middle of a segment, and it must stay
//! there across restarts (Kafka keeps `log-start-offset-checkpoint`).
//! Blocking file calls: run them off the reactor.

use std::io;
use std::path::Path;

use super::partition_dir::sync_dir;

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

/// Records `offset` durably (temp file, fsync, rename, directory fsync).
pub fn write(dir: &Path, offset: i64) -> io::Result<()> {
    let tmp = dir.join(format!("{FILE_NAME}.tmp"));
    std::fs::write(&tmp, format!("{offset}\n"))?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, dir.join(FILE_NAME))?;
    sync_dir(dir)
}
