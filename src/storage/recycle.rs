//! A deleted segment's file kept, zeroed in place, to hold the partition's
//! next segment.
//!
//! Why: on thin-provisioned disks (a VM's virtio disk backed by a sparse
//! host file, most cloud volumes) the first write to a block costs far more
//! than overwriting one: on the development VM fio writes never-written space
//! at ~1.5 GiB/s and overwrites at ~2.7 (docs/BENCHMARKS.md). A log under
//! retention deletes its oldest segment as it writes new ones, and deleting
//! gives the blocks back (with `discard`, to the host too). Keeping one such
//! file and zeroing it with `FALLOC_FL_ZERO_RANGE`, which turns its extents
//! into unwritten ones but keeps the blocks and discards nothing, lets the
//! next segment be written at overwrite speed.
//!
//! Zeroing first matters for safety: a recycled file holds another
//! segment's valid batches, which a crash could otherwise leave behind the
//! new segment's end for recovery to read as log. So the spare is zeroed and
//! synced before it is kept, and only then may it take a segment's name.
//! Its own name never parses as a segment's, so at any moment a crash leaves
//! either a stale spare (zeroed again when the partition opens) or a
//! zero-filled segment (which recovery takes as empty).
//!
//! Blocking file calls: run them off the reactor.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use tracing::warn;

use super::partition_dir;

/// The spare's file name in a partition directory (not a segment's name).
pub const SPARE_NAME: &str = "recycled.segment";

/// `<dir>/recycled.segment`.
pub fn spare_path(dir: &Path) -> PathBuf {
    dir.join(SPARE_NAME)
}

/// Turns the file at `from` (a deleted segment) into the partition's spare:
/// renamed, zeroed in place and synced; returns its length. When it cannot
/// be kept (a filesystem that cannot zero a range) it is deleted as any
/// other deleted segment, and `None` returned; an error means it could not
/// be deleted either. The caller fsyncs the directory.
pub fn keep_or_delete(dir: &Path, from: &Path) -> io::Result<Option<u64>> {
    let to = spare_path(dir);
    let kept = std::fs::rename(from, &to).and_then(|()| zero(&to));
    match kept {
        Ok(len) => Ok(Some(len)),
        Err(e) => {
            warn!(dir = %dir.display(), "cannot keep a deleted segment's file to recycle: {e}");
            for p in [from, to.as_path()] {
                if p.exists() {
                    std::fs::remove_file(p)?;
                }
            }
            Ok(None)
        }
    }
}

/// Zeroes a leftover spare found when the partition opens (a crash may have
/// come between its rename and its zeroing). Returns its length, or `None`
/// when there is none.
pub fn adopt_leftover(dir: &Path) -> io::Result<Option<u64>> {
    let path = spare_path(dir);
    if !path.exists() {
        return Ok(None);
    }
    zero(&path).map(Some)
}

/// Gives the spare the name `to` (a new segment's), durably. When that
/// fails the spare is removed (best effort) and the caller creates a new file.
pub fn take_spare(dir: &Path, to: &Path) -> io::Result<()> {
    let taken = std::fs::rename(spare_path(dir), to);
    if taken.is_err() {
        let _ = remove_spare(dir);
    }
    taken?;
    partition_dir::sync_dir(dir)
}

/// Removes the spare, if any (recycling is off, or it could not be used).
pub fn remove_spare(dir: &Path) -> io::Result<()> {
    match std::fs::remove_file(spare_path(dir)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Zeroes the whole file in place, keeping its size and its blocks, and
/// makes that durable.
fn zero(path: &Path) -> io::Result<u64> {
    let file: File = OpenOptions::new().write(true).open(path)?;
    let len = file.metadata()?.len();
    if len > 0 {
        let len_arg = libc::off_t::try_from(len).map_err(|_| io::Error::other("file too large to zero"))?;
        // SAFETY: a valid open descriptor; fallocate reads no memory of ours.
        let rc = unsafe {
            libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE, 0, len_arg)
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    file.sync_data()?;
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sluice-recycle-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_kept_file_reads_as_zeros_with_its_size() {
        let d = tmpdir("keep");
        let seg = d.join("00000000000000000000.log");
        std::fs::write(&seg, vec![0xab; 3 * 4096 + 100]).unwrap();
        match keep_or_delete(&d, &seg).unwrap() {
            Some(len) => {
                assert_eq!(len, 3 * 4096 + 100);
                assert!(!seg.exists());
                let bytes = std::fs::read(spare_path(&d)).unwrap();
                assert_eq!(bytes.len() as u64, len);
                assert!(bytes.iter().all(|&b| b == 0), "a spare holds no stale batches");
                let next = d.join("00000000000000000042.log");
                take_spare(&d, &next).unwrap();
                assert!(next.exists() && !spare_path(&d).exists());
            }
            // tmpfs and some other filesystems cannot zero a range: the
            // file goes as a deleted segment would.
            None => assert!(!seg.exists() && !spare_path(&d).exists()),
        }
        assert_eq!(adopt_leftover(&d).unwrap(), None);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
