"""Network namespaces for fault tests that cut links: one namespace per
host (each broker, and one for the test's clients), each joined by a veth
pair to a bridge in a switch namespace of its own. Nothing is made outside
these namespaces (the root namespace gets no interface). Cutting a host's
link (its port on the bridge set down) isolates it from every other host,
the clients included; healing sets it up again. Parting two hosts
(blackhole routes) cuts them off from each other only.

The test's own thread enters the client namespace (`enter`), so that the
clients it creates, the threads they start and the processes it runs
(tools, `ip netns exec` for brokers) all start there. Needs root and
iproute2."""

import ctypes
import os
import secrets
import subprocess
import threading

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _ip(*args):
    r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout


def _setns(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


class Net:
    """Hosts on one bridge, each in its own namespace, at 10.231.<net>.<i>.
    Use as a context manager: everything is removed at exit, and the
    calling thread returns to the namespace it came from."""

    def __init__(self, hosts):
        self.tag = secrets.token_hex(2)
        self.subnet = f"10.231.{secrets.randbelow(250) + 1}"
        self.hosts = {name: i for i, name in enumerate(hosts, 1)}
        self.switch = f"sl{self.tag}sw"
        self._made = []
        self._home = None

    def ns(self, host):
        return f"sl{self.tag}{host}"

    def addr(self, host):
        return f"{self.subnet}.{self.hosts[host]}"

    def prefix(self, host):
        """The command prefix that runs a process on `host`."""
        return ["ip", "netns", "exec", self.ns(host)]

    def _port(self, host):
        return f"p{self.hosts[host]}"

    def __enter__(self):
        try:
            self._make()
        except Exception:
            self.close()
            raise
        return self

    def _make(self):
        _ip("netns", "add", self.switch)
        self._made.append(self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        for host in self.hosts:
            ns = self.ns(host)
            _ip("netns", "add", ns)
            self._made.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
            port = self._port(host)
            _ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", self.switch)
            _ip("-n", ns, "addr", "add", f"{self.addr(host)}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", self.switch, "link", "set", port, "master", "br0")
            _ip("-n", self.switch, "link", "set", port, "up")

    def enter(self, host):
        """Moves the calling thread into `host`'s namespace (until close)."""
        if self._home is None:
            self._home = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
        _setns(f"/var/run/netns/{self.ns(host)}")

    def cut(self, host):
        """Isolates `host`: its link to the bridge goes down."""
        _ip("-n", self.switch, "link", "set", self._port(host), "down")

    def heal(self, host):
        _ip("-n", self.switch, "link", "set", self._port(host), "up")

    def part(self, host, others):
        """Cuts `host` off from each of `others` (both ways; packets are
        dropped, not refused) while every other host still reaches it: a
        blackhole route to each in its namespace, and to it in theirs."""
        for other in others:
            _ip("-n", self.ns(host), "route", "add", "blackhole", f"{self.addr(other)}/32")
            _ip("-n", self.ns(other), "route", "add", "blackhole", f"{self.addr(host)}/32")

    def unpart(self, host, others):
        """Undoes `part`."""
        for other in others:
            _ip("-n", self.ns(host), "route", "del", "blackhole", f"{self.addr(other)}/32")
            _ip("-n", self.ns(other), "route", "del", "blackhole", f"{self.addr(host)}/32")

    def close(self):
        try:
            if self._home is not None:
                try:
                    if _libc.setns(self._home, CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), "setns back home")
                finally:
                    os.close(self._home)
                    self._home = None
        finally:
            for ns in reversed(self._made):
                subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
            self._made.clear()

    def __exit__(self, *exc):
        self.close()


def available():
    """Whether this machine lets the tests make namespaces (root, iproute2)."""
    try:
        return os.geteuid() == 0 and subprocess.run(["ip", "netns", "list"], capture_output=True,
                                                    timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
