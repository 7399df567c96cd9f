//! Works around glommio 0.9's detection of polled I/O. The first DMA file a
//! thread opens on a block device decides, for that thread, whether reads use
//! the IOPOLL ring: glommio reads the file's first block and takes success as
//! "polling works". On a new, empty segment that read ends at EOF without
//! touching the device, so it "succeeds" even on devices without polling
//! (virtio, most cloud disks), and every later read of real data fails with
//! EOPNOTSUPP. Opening a non-empty file first makes the probe a real read.

use std::io;
use std::path::{Path, PathBuf};

use glommio::io::DmaFile;

/// Probe file kept in the data directory: one block of zeros.
pub const PROBE_FILE: &str = ".sluice-io-probe";
const PROBE_LEN: usize = 4096;

fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(PROBE_FILE)
}

/// Creates the probe file (blocking; run before the shards start).
pub fn prepare(data_dir: &Path) -> io::Result<()> {
    let p = path(data_dir);
    if std::fs::metadata(&p).map(|m| m.len() as usize >= PROBE_LEN).unwrap_or(false) {
        return Ok(());
    }
    std::fs::write(&p, [0u8; PROBE_LEN])?;
    std::fs::File::open(&p)?.sync_all()
}

/// Opens the probe file on this shard's thread before any segment, so that
/// glommio's per-thread probe reads real data.
pub async fn prime(data_dir: &Path) -> io::Result<()> {
    let f = DmaFile::open(path(data_dir)).await.map_err(io::Error::from)?;
    f.close().await.map_err(io::Error::from)
}
