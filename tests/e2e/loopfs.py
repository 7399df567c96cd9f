"""A small ext4 filesystem on a loop device, mounted where a test wants a
disk it can fill (root only): for disk-full and unwritable-directory
faults."""

import contextlib
import os
import shutil
import subprocess
import time

import pytest


def _run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


@contextlib.contextmanager
def mounted(img, mnt, size="48M"):
    """Makes an ext4 filesystem of `size` in file `img` and loop-mounts it at
    `mnt` (created if missing, left empty: no lost+found); unmounts it and
    removes `img` on the way out, even on failure. Skips the test where
    that cannot be done."""
    if os.geteuid() != 0:
        pytest.skip("needs root to loop-mount a small filesystem")
    for tool in ("mkfs.ext4", "mount", "umount"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not found")
    mnt.mkdir(parents=True, exist_ok=True)
    r = _run(["truncate", "-s", size, str(img)])
    assert r.returncode == 0, f"truncate failed: {r.stderr}"
    # -m 0: no blocks reserved for root (the broker runs as root here)
    r = _run(["mkfs.ext4", "-q", "-F", "-m", "0", str(img)])
    assert r.returncode == 0, f"mkfs.ext4 failed: {r.stderr}"
    r = _run(["mount", "-o", "loop", str(img), str(mnt)])
    if r.returncode != 0:
        img.unlink()
        pytest.skip(f"cannot loop-mount a test filesystem: {r.stderr.strip()}")
    try:
        (mnt / "lost+found").rmdir()
        yield mnt
    finally:
        for _ in range(20):
            if _run(["umount", str(mnt)]).returncode == 0:
                break
            time.sleep(0.25)
        else:
            _run(["umount", "-l", str(mnt)])  # detach anyway; freed once unused
        img.unlink(missing_ok=True)


class Filler:
    """Takes all but `leave` bytes of the filesystem at `mnt` with one file,
    and gives them back."""

    def __init__(self, mnt, leave=0):
        self.path = mnt / "filler"
        self.leave = leave

    def fill(self):
        """Takes the space (in steps: ext4 cannot hand out its last blocks
        in one allocation); returns the bytes that were free."""
        free = free_bytes(self.path.parent)
        with open(self.path, "wb") as f:
            size = 0
            for step in (1 << 20, 4096):
                while free_bytes(self.path.parent) > self.leave:
                    try:
                        os.posix_fallocate(f.fileno(), size, step)
                    except OSError:
                        break
                    size += step
        return free

    def free(self):
        self.path.unlink(missing_ok=True)
