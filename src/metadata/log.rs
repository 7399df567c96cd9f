//! The durable metadata log: an append-only file of framed `MetaRecord`s,
//! replayed on start. It is written only by the controller thread, never by
//! a shard's reactor, so its blocking writes and fsyncs stall no requests.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use tracing::warn;

use super::record::{self, MetaRecord};

/// File name inside the data directory.
pub const FILE_NAME: &str = "__cluster_metadata.log";

/// The open metadata log.
pub struct MetadataLog {
    file: File,
    /// Set when a failed append could not be undone: no more appends.
    broken: Option<String>,
}

impl MetadataLog {
    /// Opens (or creates) the log and returns it with every intact record.
    /// A torn or corrupt tail (a crash mid-append) is truncated away: such a
    /// record was never acknowledged, because acknowledgement follows fsync.
    pub fn open(data_dir: &Path) -> std::io::Result<(Self, Vec<MetaRecord>)> {
        let path = data_dir.join(FILE_NAME);
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(&path)?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        let mut records = Vec::new();
        let mut pos = 0;
        while pos < buf.len() {
            match record::decode(&buf[pos..]) {
                Ok((rec, n)) => {
                    records.push(rec);
                    pos += n;
                }
                Err(e) => {
                    warn!(path = %path.display(), at = pos, dropped = buf.len() - pos, "metadata log tail is unreadable ({e}); truncating it");
                    file.set_len(pos as u64)?;
                    file.sync_all()?;
                    break;
                }
            }
        }
        file.seek(SeekFrom::End(0))?;
        Ok((Self { file, broken: None }, records))
    }

    /// Appends records and makes them durable before returning. On failure
    /// the file is cut back to where it was, so a half-written record cannot
    /// hide every later record from the next replay.
    pub fn append(&mut self, recs: &[MetaRecord]) -> std::io::Result<()> {
        let mut buf = Vec::new();
        for r in recs {
            record::encode(r, &mut buf);
        }
        if let Some(why) = &self.broken {
            return Err(std::io::Error::other(why.clone()));
        }
        let before = self.file.metadata()?.len();
        let written = self.file.write_all(&buf).and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            if let Err(cut) = self.file.set_len(before).and_then(|()| self.file.sync_all()) {
                // The log may now hold a torn record that replay would stop
                // at; refusing further changes keeps later ones from being
                // acknowledged and then lost.
                self.broken = Some(format!("cannot undo a failed metadata write ({e}): {cut}"));
            }
            return Err(e);
        }
        Ok(())
    }
}
