//! An I/O failure kept typed: its kind and OS error code survive, so a
//! caller can still tell a full disk from other failures, and it clones, so
//! that one failed write can fail every produce request waiting on it.

use std::fmt;
use std::io;

/// What went wrong with a file, as `io::Error` said it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoFailure {
    /// The error's kind.
    pub kind: io::ErrorKind,
    /// The OS error number, when the OS gave one.
    pub os_code: Option<i32>,
    /// The error's text.
    pub message: String,
}

impl IoFailure {
    /// Whether the disk (or the file system's quota) is full.
    pub fn is_disk_full(&self) -> bool {
        self.kind == io::ErrorKind::StorageFull || self.os_code == Some(libc::ENOSPC)
    }
}

impl From<&io::Error> for IoFailure {
    fn from(e: &io::Error) -> Self {
        Self { kind: e.kind(), os_code: e.raw_os_error(), message: e.to_string() }
    }
}

impl From<io::Error> for IoFailure {
    fn from(e: io::Error) -> Self {
        Self::from(&e)
    }
}

impl fmt::Display for IoFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_recognised_after_the_conversion() {
        let full = IoFailure::from(io::Error::from_raw_os_error(libc::ENOSPC));
        assert!(full.is_disk_full());
        assert_eq!(full.os_code, Some(libc::ENOSPC));
        let other = IoFailure::from(io::Error::from_raw_os_error(libc::EIO));
        assert!(!other.is_disk_full());
        assert!(other.to_string().contains("Input/output error"), "{other}");
    }
}
