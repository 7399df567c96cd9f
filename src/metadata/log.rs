//! The metadata log as sluice wrote it before the quorum: an append-only
//! file of framed `MetaRecord`s in the data directory. It is only read now,
//! once, to import it into the quorum (see `controller::import_file_log`);
//! a torn or corrupt tail (a crash mid-append, never acknowledged) ends it.

use std::path::Path;

use tracing::warn;

use super::record::{self, MetaRecord};

/// File name inside the data directory.
pub const FILE_NAME: &str = "__cluster_metadata.log";

/// Every intact record of the file log in `data_dir`.
pub fn read(data_dir: &Path) -> std::io::Result<Vec<MetaRecord>> {
    let path = data_dir.join(FILE_NAME);
    let buf = std::fs::read(&path)?;
    let mut records = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        match record::decode(&buf[pos..]) {
            Ok((rec, n)) => {
                records.push(rec);
                pos += n;
            }
            Err(e) => {
                warn!(path = %path.display(), at = pos, dropped = buf.len() - pos, "metadata log tail is unreadable ({e}); ignoring it");
                break;
            }
        }
    }
    Ok(records)
}
