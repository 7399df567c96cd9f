//! A deleted segment's file kept, as it is, to hold the partition's next
//! segment.
//!
//! Why: on thin-provisioned disks (a VM's virtio disk backed by a sparse
//! host file, most cloud volumes) the first write to a block costs far more
//! than overwriting one: on the development VM fio writes never-written space
//! at ~1.5 GiB/s and overwrites at ~2.7 (docs/BENCHMARKS.md). A log under
//! retention deletes its oldest segment as it writes new ones, and deleting
//! gives the blocks back (with `discard`, to the host too). Keeping one such
//! file lets the next segment be written at overwrite speed. The file is not
//! zeroed: its extents stay written, so an fdatasync after a write has no
//! unwritten extent to convert and only flushes (zeroing it with
//! `FALLOC_FL_ZERO_RANGE`, as sluice first did, cost 5-13% of append
//! throughput under retention with four partitions; docs/BENCHMARKS.md).
//!
//! Safety: past the new segment's end a recycled file holds the deleted
//! segment's bytes, which a crash leaves for recovery to read. Every batch
//! there has offsets below the new segment's base, and recovery of a file
//! carrying the [`MARK`] accepts a batch only if it is intact (CRC-32C) and
//! starts exactly at the next offset due, so old bytes end the log however
//! they look (see `recovery::scan`). The mark is set and made durable before
//! the file is kept, and the spare's own name never parses as a segment's,
//! so a segment file with old bytes always carries the mark: a crash leaves
//! either an unmarked spare (marked when the partition opens) or a marked
//! segment. Where the filesystem keeps no extended attributes the file is
//! deleted instead.
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

/// The extended attribute that says a segment file was recycled: bytes past
/// its log's end may be another segment's.
pub const MARK: &std::ffi::CStr = c"user.sluice.recycled";

/// Turns the file at `from` (a deleted segment) into the partition's spare:
/// renamed, marked and synced; returns its length. When it cannot be kept
/// (a filesystem without extended attributes) it is deleted as any other
/// deleted segment, and `None` returned; an error means it could not be
/// deleted either. The caller fsyncs the directory.
pub fn keep_or_delete(dir: &Path, from: &Path) -> io::Result<Option<u64>> {
    let to = spare_path(dir);
    let kept = std::fs::rename(from, &to).and_then(|()| mark(&to));
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

/// Marks a leftover spare found when the partition opens (a crash may have
/// come between its rename and its marking). Returns its length, or `None`
/// when there is none.
pub fn adopt_leftover(dir: &Path) -> io::Result<Option<u64>> {
    let path = spare_path(dir);
    if !path.exists() {
        return Ok(None);
    }
    mark(&path).map(Some)
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

/// Sets [`MARK`] on the file and makes it durable (fsync: an extended
/// attribute is metadata that fdatasync need not write). Returns the file's
/// length.
fn mark(path: &Path) -> io::Result<u64> {
    let file: File = OpenOptions::new().write(true).open(path)?;
    // SAFETY: a valid open descriptor, a NUL-terminated name and a one-byte
    // value that outlive the call.
    let rc = unsafe { libc::fsetxattr(file.as_raw_fd(), MARK.as_ptr(), b"1".as_ptr().cast(), 1, 0) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    file.sync_all()?;
    Ok(file.metadata()?.len())
}

/// Whether the segment file at `path` carries [`MARK`] (was recycled). A
/// file that cannot be asked (no extended attributes here) was not: such a
/// filesystem never keeps a spare.
pub fn is_recycled(path: &Path) -> io::Result<bool> {
    let file = File::open(path)?;
    let mut value = [0u8; 1];
    // SAFETY: a valid open descriptor, a NUL-terminated name and a buffer of
    // the length given, all outliving the call.
    let rc = unsafe { libc::fgetxattr(file.as_raw_fd(), MARK.as_ptr(), value.as_mut_ptr().cast(), value.len()) };
    if rc >= 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENODATA | libc::ENOTSUP) => Ok(false),
        _ => Err(e),
    }
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
    fn a_kept_file_keeps_its_bytes_and_carries_the_mark() {
        let d = tmpdir("keep");
        let seg = d.join("00000000000000000000.log");
        std::fs::write(&seg, vec![0xab; 3 * 4096 + 100]).unwrap();
        assert!(!is_recycled(&seg).unwrap(), "a new file carries no mark");
        match keep_or_delete(&d, &seg).unwrap() {
            Some(len) => {
                assert_eq!(len, 3 * 4096 + 100);
                assert!(!seg.exists());
                assert_eq!(std::fs::read(spare_path(&d)).unwrap(), vec![0xab; 3 * 4096 + 100], "kept as it is");
                let next = d.join("00000000000000000042.log");
                take_spare(&d, &next).unwrap();
                assert!(next.exists() && !spare_path(&d).exists());
                assert!(is_recycled(&next).unwrap(), "the new segment's file says it was recycled");
            }
            // A filesystem without extended attributes: the file goes as a
            // deleted segment would.
            None => assert!(!seg.exists() && !spare_path(&d).exists()),
        }
        assert_eq!(adopt_leftover(&d).unwrap(), None);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_leftover_spare_is_marked_when_adopted() {
        let d = tmpdir("adopt");
        // As a crash between the rename and the marking leaves it.
        std::fs::write(spare_path(&d), vec![7; 5000]).unwrap();
        if let Ok(len) = adopt_leftover(&d).map(|l| l.expect("a spare")) {
            assert_eq!(len, 5000);
            assert!(is_recycled(&spare_path(&d)).unwrap());
        }
        std::fs::remove_dir_all(&d).unwrap();
    }
}
