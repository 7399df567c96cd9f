//! The metadata quorum's latest snapshot on disk (`snapshot` in the quorum's
//! directory): the snapshot's raft metadata and its image, in one frame of
//! `frame.rs`, replaced whole and atomically. Once a snapshot is saved the
//! log store may purge the entries it covers, so a start restores the state
//! from it and replays only the entries after it (openraft installs it into
//! the in-memory state machine, then re-applies the committed log).

use std::io;
use std::path::{Path, PathBuf};

use openraft::type_config::alias::SnapshotMetaOf;
use serde::{Deserialize, Serialize};

use super::{MetaTypes, frame};
use crate::storage::atomic_file::{self, Replacement};

type C = MetaTypes;

/// The file's name in the quorum's directory.
const FILE_NAME: &str = "snapshot";

/// What the file holds.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    meta: SnapshotMetaOf<C>,
    data: Vec<u8>,
}

/// Where snapshots of one quorum node are kept.
#[derive(Debug, Clone)]
pub struct SnapshotFile {
    dir: PathBuf,
}

impl SnapshotFile {
    /// The snapshot file in `dir` (created with the quorum's directory).
    pub fn new(dir: &Path) -> Self {
        Self { dir: dir.to_path_buf() }
    }

    /// The saved snapshot, if any. A damaged file is an error: the entries
    /// it covers may have been purged from the log, so starting without it
    /// would lose metadata.
    pub fn load(&self) -> io::Result<Option<(SnapshotMetaOf<C>, Vec<u8>)>> {
        let bytes = match std::fs::read(self.dir.join(FILE_NAME)) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        match frame::decode::<Stored>(&bytes) {
            Some((s, n)) if n == bytes.len() => Ok(Some((s.meta, s.data))),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the metadata snapshot {} is damaged", self.dir.join(FILE_NAME).display()),
            )),
        }
    }

    /// Saves `meta` and `data` as the latest snapshot, durably, before it is
    /// used (and the log purged up to it).
    pub fn save(&self, meta: &SnapshotMetaOf<C>, data: &[u8]) -> io::Result<()> {
        let bytes = frame::encode(&Stored { meta: meta.clone(), data: data.to_vec() })?;
        atomic_file::replace(&self.dir, &[Replacement { path: self.dir.join(FILE_NAME), bytes }])
    }
}
