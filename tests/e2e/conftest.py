"""pytest fixtures that run a real ``sluice broker`` process.

Environment:
  SLUICE_BIN   path to the sluice binary (default: <repo>/target/release/sluice)
  SLUICE_KEEP_LOGS=1  print the broker log tail for passing tests too (-rP)
"""

import atexit
import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
LOG_TAIL_LINES = 80


def sluice_bin():
    p = Path(os.environ.get("SLUICE_BIN", REPO_ROOT / "target" / "release" / "sluice"))
    if not p.is_absolute():
        p = REPO_ROOT / p
    return p


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _port_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # No SO_REUSEADDR: also reject ports with lingering TIME_WAIT sockets.
        s.bind((HOST, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def pick_base_port(n):
    """Find n consecutive free ports below the ephemeral range (so that no
    client socket grabs them between our check and the broker's bind)."""
    hi = min(_ephemeral_low(), 65536) - n - 1
    lo = 19092
    for _ in range(500):
        base = random.randrange(lo, hi)
        if all(_port_free(base + k) for k in range(n)):
            return base
    raise RuntimeError(f"could not find {n} consecutive free ports")


class BrokerError(AssertionError):
    pass


_LIVE_PROCS = set()


@atexit.register
def _kill_leftover_brokers():
    """Never leave broker processes behind (e.g. after a pytest-timeout)."""
    for proc in list(_LIVE_PROCS):
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class Broker:
    """One ``sluice broker`` process (with N shards) under test."""

    def __init__(self, workdir, shards=2, overrides=None, name="broker", data_dir=None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.shards = shards
        self.overrides = dict(overrides or {})
        # The data dir may live elsewhere (e.g. on a small test filesystem);
        # the broker log always stays in workdir.
        self.data_dir = Path(data_dir) if data_dir is not None else self.workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / f"{name}.log"
        # Where the process's stdout and stderr go; None: log_path. A test may
        # point it elsewhere (e.g. /dev/full) before start().
        self.output = None
        self.port = None
        # The address it binds and advertises, and a command prefix to run
        # it with (`ip netns exec NS`: a network namespace of its own).
        self.host = HOST
        self.prefix = []
        self.proc = None
        self._log_file = None
        self._expected_exit = False
        self.starts = 0

    # -- addresses ---------------------------------------------------------
    @property
    def bootstrap(self):
        return f"{self.host}:{self.port}"

    def shard_port(self, k):
        return self.port + k

    @property
    def ports(self):
        return [self.port + k for k in range(self.shards)]

    # -- lifecycle ---------------------------------------------------------
    def command(self):
        cmd = [str(sluice_bin()), "broker", "--data-dir", str(self.data_dir)]
        # A node that only votes (process.roles=controller) has no shards
        # and no client ports; `port` is then its controller listener's.
        if self.overrides.get("process.roles") != "controller":
            cmd += ["--host", self.host,
                    "--port", str(self.port),
                    "--shards", str(self.shards),
                    "--advertised-host", self.host]
        for k, v in self.overrides.items():
            cmd += ["--override", f"{k}={v}"]
        return cmd

    def start(self, timeout=READY_TIMEOUT_S, wait=True):
        """Starts the process; with wait, returns once every shard's port
        accepts connections (see wait_ready)."""
        binary = sluice_bin()
        if not binary.exists():
            raise BrokerError(
                f"sluice binary not found at {binary}; run `cargo build --release` "
                f"or set SLUICE_BIN")
        if self.running:
            raise BrokerError("broker already running")
        if self.port is None:
            self.port = pick_base_port(self.shards)
        cmd = self.prefix + self.command()
        self._log_file = open(self.log_path, "ab", buffering=0)
        self._log_file.write(
            f"\n===== [harness] start #{self.starts + 1} at {time.strftime('%H:%M:%S')}: "
            f"{' '.join(cmd)}\n".encode())
        env = dict(os.environ)
        env.setdefault("RUST_BACKTRACE", "1")
        self._expected_exit = False
        out = self._log_file if self.output is None else open(self.output, "wb", buffering=0)
        try:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, env=env, start_new_session=True)
        finally:
            if out is not self._log_file:
                out.close()
        _LIVE_PROCS.add(self.proc)
        self.starts += 1
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=READY_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        pending = list(self.ports)
        while pending:
            rc = self.proc.poll()
            if rc is not None:
                self._expected_exit = True  # reported here, not again at teardown
                raise BrokerError(
                    f"broker exited with code {rc} during startup\n{self.log_tail()}")
            port = pending[0]
            try:
                socket.create_connection((self.host, port), timeout=0.5).close()
                pending.pop(0)
                continue
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"broker not ready after {timeout}s: port(s) {pending} not "
                    f"accepting connections\n{self.log_tail()}")
            time.sleep(0.05)
        # A node that only votes binds its controller listener before it
        # has caught up with the quorum: it is ready when it says so.
        if self.overrides.get("process.roles") == "controller":
            while "sluice controller ready" not in self._log_since_start():
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self._expected_exit = self.proc.poll() is not None
                    raise BrokerError(f"controller not ready after {timeout}s\n{self.log_tail()}")
                time.sleep(0.05)

    def _log_since_start(self):
        """This process's log since its last start."""
        text = self.log_path.read_text(errors="replace")
        return text.rsplit("===== [harness] start #", 1)[-1]

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def assert_alive(self):
        if self.proc is None:
            raise BrokerError("broker was never started")
        rc = self.proc.poll()
        if rc is not None:
            raise BrokerError(f"broker process died (exit code {rc})\n{self.log_tail()}")

    def stop(self, timeout=STOP_TIMEOUT_S):
        """SIGTERM and wait. Fails if the broker hangs or exits with an error."""
        if self.proc is None:
            return None
        if self.proc.poll() is not None and not self._expected_exit:
            self._close_log()
            self._expected_exit = True  # report once
            raise BrokerError(
                f"stop(): broker had already died on its own (exit code "
                f"{self.proc.returncode})\n{self.log_tail()}")
        if self.proc.poll() is not None:
            # Killed by the test (kill9) and not started again.
            self._close_log()
            return self.proc.returncode
        if self.proc.poll() is None:
            self._expected_exit = True
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self._close_log()
                raise BrokerError(
                    f"broker did not exit within {timeout}s of SIGTERM (killed)\n"
                    f"{self.log_tail()}")
        rc = self.proc.returncode
        self._close_log()
        if rc not in (0, -signal.SIGTERM):
            raise BrokerError(
                f"broker exited with code {rc} after SIGTERM\n{self.log_tail()}")
        return rc

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            self._expected_exit = True
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self._close_log()

    def restart(self, timeout=READY_TIMEOUT_S):
        """Restart on the same data dir and ports (SIGTERM first if running)."""
        if self.running:
            self.stop()
        elif self.proc is not None and not self._expected_exit:
            raise BrokerError(
                f"restart(): broker had already died on its own (exit code "
                f"{self.proc.returncode})\n{self.log_tail()}")
        self._close_log()
        # Same ports as before: the broker must bind with SO_REUSEADDR, since
        # connections it dropped may still be in TIME_WAIT.
        return self.start(timeout)

    def _close_log(self):
        if self._log_file is not None:
            try:
                self._log_file.close()
            except OSError:
                pass
            self._log_file = None

    def teardown(self):
        """Stop at test end; complain if the broker had died on its own."""
        if self.proc is None:
            return
        died = self.proc.poll() is not None and not self._expected_exit
        rc = self.proc.returncode
        if not died:
            try:
                self.stop()
            finally:
                self._close_log()
        else:
            self._close_log()
            raise BrokerError(
                f"broker exited unexpectedly during the test (code {rc})\n"
                f"{self.log_tail()}")

    # -- diagnostics -------------------------------------------------------
    def log_tail(self, lines=LOG_TAIL_LINES):
        try:
            data = self.log_path.read_bytes()
        except OSError as e:
            return f"<no broker log: {e}>"
        text = data.decode("utf-8", "replace").splitlines()
        tail = "\n".join(text[-lines:])
        return f"----- tail of {self.log_path} ({len(text)} lines) -----\n{tail}\n-----"

    def __repr__(self):
        return f"<Broker {self.bootstrap} shards={self.shards} dir={self.workdir}>"


# ---------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------


@pytest.fixture
def broker_factory(request, tmp_path):
    """Call ``broker_factory(shards=2, overrides={...})`` to start a broker
    (``data_dir=...`` puts its data somewhere other than its work dir)."""
    brokers = []
    request.node._sluice_brokers = brokers

    def make(shards=2, overrides=None, start=True, name=None, data_dir=None):
        name = name or f"broker{len(brokers)}"
        b = Broker(tmp_path / name, shards=shards, overrides=overrides, name=name,
                   data_dir=data_dir)
        brokers.append(b)
        if start:
            b.start()
        return b

    yield make

    errors = []
    for b in brokers:
        try:
            b.teardown()
        except Exception as e:  # noqa: BLE001
            errors.append(f"{b}: {e}")
    if errors:
        pytest.fail("broker teardown problems:\n" + "\n".join(errors), pytrace=False)


@pytest.fixture
def broker(broker_factory):
    """A running 2-shard broker with default settings."""
    return broker_factory()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed or os.environ.get("SLUICE_KEEP_LOGS") == "1":
        for b in getattr(item, "_sluice_brokers", []):
            rep.sections.append((f"sluice broker log ({b.name}, {rep.when})", b.log_tail()))


class FsyncFaults:
    """Arms and disarms the fsync shim (`faults/fsync_fault.c`) of brokers
    started in this test: while armed for a path, fsync of that path fails
    with EIO."""

    def __init__(self, control):
        self.control = control

    def arm(self, path):
        tmp = self.control.with_suffix(".tmp")
        tmp.write_text(f"{path}\n")
        tmp.rename(self.control)

    def disarm(self):
        self.control.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def fsync_fault_shim(tmp_path_factory):
    """The fsync shim, compiled once (cc is there: cargo links with it)."""
    src = Path(__file__).parent / "faults" / "fsync_fault.c"
    out = tmp_path_factory.mktemp("faults") / "fsync_fault.so"
    r = subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", str(out), str(src), "-ldl"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"cannot build the fsync shim: {r.stderr}"
    return out


@pytest.fixture
def fsync_faults(fsync_fault_shim, tmp_path, monkeypatch):
    """Brokers started after this fixture run with the fsync shim preloaded
    (request it before `broker_factory`, and start the broker in the test)."""
    control = tmp_path / "fsync-faults"
    monkeypatch.setenv("LD_PRELOAD", str(fsync_fault_shim))
    monkeypatch.setenv("SLUICE_FSYNC_FAULTS", str(control))
    faults = FsyncFaults(control)
    yield faults
    faults.disarm()
