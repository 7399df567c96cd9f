//! Small files replaced whole and atomically: each written to
//! `<name>.tmp`, fsynced, then renamed over `<name>`, so a crash leaves the
//! old contents or the new, never a torn file. Several files replaced
//! together share one directory fsync: on a filesystem without a journal
//! (the development VM's root ext4) every fsync is a synchronous metadata
//! write and a device cache flush, which the partition's data writes queue
//! behind. Blocking file calls: run them off the reactor.

use std::io;
use std::path::{Path, PathBuf};

use super::partition_dir::sync_dir;

/// A file to replace: where it goes, and its contents.
pub struct Replacement {
    /// The file's final path.
    pub path: PathBuf,
    /// Its new contents.
    pub bytes: Vec<u8>,
}

/// What a temp file's name ends with.
const TMP_SUFFIX: &str = ".tmp";

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(TMP_SUFFIX);
    PathBuf::from(name)
}

/// Removes the temp files a crash left in `dir` (mid-replacement, before the
/// rename); they are never read, and one may be as large as a segment (a
/// compacted one). Call it while nothing else writes in `dir` (as a partition
/// opens). Returns their names.
pub fn remove_leftovers(dir: &Path) -> io::Result<Vec<String>> {
    let mut removed = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(TMP_SUFFIX) && e.file_type()?.is_file() {
            std::fs::remove_file(e.path())?;
            removed.push(name);
        }
    }
    Ok(removed)
}

/// Replaces every file of `files` (all in `dir`), then fsyncs `dir` once so
/// that the renames are durable.
pub fn replace(dir: &Path, files: &[Replacement]) -> io::Result<()> {
    replace_unsynced(files)?;
    sync_dir(dir)
}

/// Replaces every file of `files` without fsyncing their directory: each
/// file's contents are durable, the renames only once the caller fsyncs the
/// directory (until then a crash may leave the old files).
pub fn replace_unsynced(files: &[Replacement]) -> io::Result<()> {
    for f in files {
        let tmp = tmp_path(&f.path);
        std::fs::write(&tmp, &f.bytes)?;
        std::fs::File::open(&tmp)?.sync_all()?;
    }
    for (i, f) in files.iter().enumerate() {
        if i > 0 {
            // A crash between two renames (a compacted segment's log
            // renamed, its index files not yet).
            fail::fail_point!("atomic_file::between_renames", |_| Err(super::injected("atomic_file::between_renames")));
        }
        std::fs::rename(tmp_path(&f.path), &f.path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_each_file_and_leaves_no_temp_file() {
        let d = std::env::temp_dir().join(format!("sluice-atomic-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("a"), b"old").unwrap();
        let files = [
            Replacement { path: d.join("a"), bytes: b"new a".to_vec() },
            Replacement { path: d.join("b.index"), bytes: b"new b".to_vec() },
        ];
        replace(&d, &files).unwrap();
        assert_eq!(std::fs::read(d.join("a")).unwrap(), b"new a");
        assert_eq!(std::fs::read(d.join("b.index")).unwrap(), b"new b");
        let mut names: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        assert_eq!(names, ["a", "b.index"], "temp files are renamed, not left behind");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn leftover_temp_files_are_removed_and_nothing_else() {
        let d = std::env::temp_dir().join(format!("sluice-atomic-left-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        for name in ["00000000000000000000.log", "00000000000000000000.log.tmp", "log-start-offset.tmp", "x.tmpy"] {
            std::fs::write(d.join(name), b"bytes").unwrap();
        }
        let mut removed = remove_leftovers(&d).unwrap();
        removed.sort();
        assert_eq!(removed, ["00000000000000000000.log.tmp", "log-start-offset.tmp"]);
        let mut names: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        assert_eq!(names, ["00000000000000000000.log", "x.tmpy"]);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
