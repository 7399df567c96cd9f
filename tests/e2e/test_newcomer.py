"""A new user follows docs/BENCHMARKS.md's first commands exactly as written:
build, start the broker on its embedded default (port 9092, ./sluice-data),
run the latency profile. Only the duration (5 s) and the output folder
differ. The commands are read from the document, so a change to it that
breaks them fails here."""

import os
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import REPO_ROOT

DOC = REPO_ROOT / "docs" / "BENCHMARKS.md"
DEFAULT_PORT = 9092


def how_to_run_commands():
    """The commands of the document's first code block, comments dropped."""
    block = re.search(r"## How to run.*?\n\n((?:    .*\n)+)", DOC.read_text(), re.S)
    assert block, "docs/BENCHMARKS.md lost its 'How to run' block"
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.split("#")[0].strip()]


def wait_port(port, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the broker exited during start-up"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"nothing listens on {port} after {timeout} s")


def port_free(port):
    s = socket.socket()
    try:
        s.bind(("0.0.0.0", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def test_benchmarks_doc_first_commands_work_as_written(tmp_path):
    build, start, load = how_to_run_commands()[:3]
    assert build == "cargo build --release", build
    assert start == "target/release/sluice broker &", start
    assert load.startswith("scripts/load-test.sh --bootstrap-server 127.0.0.1:9092 --profile latency"), load
    if not port_free(DEFAULT_PORT) or not port_free(DEFAULT_PORT + 1):
        pytest.fail("port 9092 or 9093 is taken on this machine: the documented default cannot start")

    r = subprocess.run(build.split(), cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (REPO_ROOT / "target" / "release" / "sluice-bench").exists(), "the documented build skips sluice-bench"

    # The user's checkout, with its own working directory (./sluice-data lands there).
    home = tmp_path / "checkout"
    home.mkdir()
    for part in ("target", "scripts"):
        (home / part).symlink_to(REPO_ROOT / part)
    env = {k: v for k, v in os.environ.items() if k not in ("SLUICE_BIN", "SLUICE_BENCH")}
    log_path = tmp_path / "broker.log"
    with open(log_path, "w") as log:
        broker = subprocess.Popen(start.rstrip("&").split(), cwd=home, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        wait_port(DEFAULT_PORT, broker)
        out = tmp_path / "results"
        args = load.split()
        args[args.index("--duration") + 1] = "5"
        args[args.index("--output") + 1] = str(out)
        r = subprocess.run(args, cwd=home, capture_output=True, text=True, timeout=120, env=env)
        assert r.returncode == 0, r.stderr + r.stdout
        assert re.search(r"^produce\s+[0-9.]+\s+[0-9.]+", r.stdout, re.M), r.stdout
        assert (out / "produce-latency.hgrm").exists() and (out / "summary.json").exists()
        assert (home / "sluice-data").is_dir(), "the embedded default data dir is ./sluice-data"
    finally:
        broker.send_signal(signal.SIGTERM)
        rc = broker.wait(timeout=30)
    text = log_path.read_text()
    assert rc == 0, text[-3000:]
    # A log written to a file carries no colour codes, and a clean shutdown
    # logs no accept loop.
    assert "\x1b[" not in text, repr(text[:500])
    assert "accept failed" not in text, text[-3000:]
