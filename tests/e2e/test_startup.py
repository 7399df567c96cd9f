"""Start-up failures give a clear message and a non-zero exit, not a panic."""

import subprocess

import pytest

from conftest import sluice_bin


def _run(tmp_path, shell_prefix, *args):
    cmd = f"{shell_prefix} exec {sluice_bin()} broker --data-dir {tmp_path / 'data'} --host 127.0.0.1 --port 0 {' '.join(args)}"
    return subprocess.run(["bash", "-c", cmd], capture_output=True, timeout=30, text=True)


def test_locked_memory_limit_too_low_is_explained(tmp_path):
    r = _run(tmp_path, "ulimit -l 0;")
    assert r.returncode == 1, r
    assert "io_uring is unavailable" in r.stderr
    assert "ulimit -l" in r.stderr and "LimitMEMLOCK" in r.stderr
    assert "panicked" not in r.stderr


@pytest.mark.parametrize("args, needle", [
    (["--override", "num.partitions=abc"], "invalid value"),
    (["--override", "no.such.setting=1"], "unknown config key"),
    (["--shards", "0"], "--shards must be at least 1"),
])
def test_bad_settings_are_refused(tmp_path, args, needle):
    r = _run(tmp_path, "", *args)
    assert r.returncode != 0
    assert needle in r.stderr, r.stderr
    assert "panicked" not in r.stderr


IO_URING_SYSCTL = "/proc/sys/kernel/io_uring_disabled"


def test_io_uring_disabled_is_explained(tmp_path):
    """Regression: glommio panicked (and the release build aborted) when the
    kernel refused io_uring; the broker must explain instead."""
    try:
        with open(IO_URING_SYSCTL) as f:
            before = f.read().strip()
        with open(IO_URING_SYSCTL, "w") as f:
            f.write("2")
    except OSError as e:
        pytest.skip(f"cannot toggle {IO_URING_SYSCTL}: {e}")
    try:
        r = _run(tmp_path, "")
    finally:
        with open(IO_URING_SYSCTL, "w") as f:
            f.write(before)
    assert r.returncode == 1, r
    assert "io_uring is unavailable" in r.stderr and "io_uring_disabled" in r.stderr
    assert "panicked" not in r.stderr


def test_second_broker_on_same_data_dir_or_ports_is_refused(broker, tmp_path):
    """Two brokers on one data directory would corrupt each other's logs, and
    two on one port would split the clients between them (glommio's own bind
    sets SO_REUSEPORT, which allowed exactly that)."""
    same_dir = subprocess.run(
        [str(sluice_bin()), "broker", "--data-dir", str(broker.data_dir), "--host", "127.0.0.1",
         "--port", str(broker.port + 10), "--shards", "1"],
        capture_output=True, timeout=30, text=True)
    assert same_dir.returncode == 1 and "in use by another sluice broker" in same_dir.stderr, same_dir
    same_port = subprocess.run(
        [str(sluice_bin()), "broker", "--data-dir", str(tmp_path / "other"), "--host", "127.0.0.1",
         "--port", str(broker.port), "--shards", "1"],
        capture_output=True, timeout=30, text=True)
    assert same_port.returncode == 1 and "cannot listen" in same_port.stderr, same_port
    broker.assert_alive()
