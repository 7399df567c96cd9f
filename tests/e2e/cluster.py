"""Several `sluice broker` processes on this machine as one cluster: each a
voter of the metadata quorum (process.roles=broker,controller) with its own
data dir, client ports and controller port, configured with Kafka's KRaft
keys through --override."""

import time

from kafka.admin import KafkaAdminClient

from conftest import HOST, pick_base_port


class Cluster:
    def __init__(self, broker_factory, size=3, shards=1, overrides=None, roles="broker,controller", net=None):
        """`size` voters with `roles`: with "controller" alone they have no
        shards (add brokers with add_broker). With `net` (netns.Net with
        hosts n1..n<size>), node i runs in host n<i>'s namespace at its
        address."""
        self.controller_ports = {}
        self.taken = taken = set()
        host = (lambda i: net.addr(f"n{i}")) if net else (lambda i: HOST)
        for i in range(1, size + 1):
            port = _free_port(taken, 1)
            self.controller_ports[i] = port
        self.voters = ",".join(f"{i}@{host(i)}:{p}" for i, p in self.controller_ports.items())
        self.brokers = {}
        for i in range(1, size + 1):
            b = broker_factory(shards=shards, start=False, name=f"node{i}")
            if net:
                b.host, b.prefix = net.addr(f"n{i}"), net.prefix(f"n{i}")
            controller = f"CONTROLLER://{host(i)}:{self.controller_ports[i]}"
            if roles == "controller":
                # Ready once its controller listener accepts connections.
                b.port, b.shards, listeners = self.controller_ports[i], 1, controller
            else:
                b.port = _free_port(taken, shards)
                listeners = f"PLAINTEXT://{host(i)}:{b.port},{controller}"
            b.overrides.update({
                "process.roles": roles,
                "node.id": str(i),
                "controller.quorum.voters": self.voters,
                "listeners": listeners,
                "controller.listener.names": "CONTROLLER",
                **(overrides or {}),
            })
            self.brokers[i] = b

    def add_broker(self, broker_factory, node_id, shards=1, bootstrap=None):
        """A broker that does not vote (process.roles=broker): it follows the
        quorum's log on a controller listener of its own. Not started. With
        `bootstrap` (host:port list) it is given
        controller.quorum.bootstrap.servers instead of the voters."""
        b = broker_factory(shards=shards, start=False, name=f"node{node_id}")
        b.port = _free_port(self.taken, shards)
        controller = _free_port(self.taken, 1)
        b.overrides.update({
            "process.roles": "broker",
            "node.id": str(node_id),
            "listeners": f"PLAINTEXT://{HOST}:{b.port},CONTROLLER://{HOST}:{controller}",
            "controller.listener.names": "CONTROLLER",
        })
        if bootstrap:
            b.overrides["controller.quorum.bootstrap.servers"] = ",".join(bootstrap)
        else:
            b.overrides["controller.quorum.voters"] = self.voters
        self.brokers[node_id] = b
        return b

    def add_controller(self, broker_factory, node_id):
        """A node with process.roles=controller that is not among the
        voters: given the voters as bootstrap servers, it follows the quorum
        as an observer until AddRaftVoter makes it a voter. Not started."""
        b = broker_factory(shards=1, start=False, name=f"node{node_id}")
        b.port = _free_port(self.taken, 1)
        servers = ",".join(f"{HOST}:{p}" for p in self.controller_ports.values())
        b.overrides.update({
            "process.roles": "controller",
            "node.id": str(node_id),
            "controller.quorum.bootstrap.servers": servers,
            "listeners": f"CONTROLLER://{HOST}:{b.port}",
            "controller.listener.names": "CONTROLLER",
        })
        self.brokers[node_id] = b
        return b

    def start(self):
        """Starts every broker, then waits for all: each waits for a quorum
        leader, which needs a majority of the voters up."""
        for b in self.brokers.values():
            b.start(wait=False)
        for b in self.brokers.values():
            b.wait_ready()
        return self

    def any_running(self, but=()):
        """A running node that serves clients."""
        return next(b for i, b in self.brokers.items()
                    if b.running and i not in but and b.overrides["process.roles"] != "controller")

    def quorum(self, broker, timeout=20):
        """DescribeQuorum's partition of the metadata log, as `broker` sees
        it. kafka-python sends it to a node of its choice, which may be one
        of a broker just killed and not fenced yet: retried."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                a = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
                try:
                    [topic] = a.describe_metadata_quorum()["topics"]
                finally:
                    a.close()
                [p] = topic["partitions"]
                return p
            except Exception:  # noqa: BLE001
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def leader_id(self, timeout=30, but=()):
        """The quorum leader's node.id, once a running broker knows one."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                p = self.quorum(self.any_running(but))
            except Exception as e:  # noqa: BLE001 (a client sent to a node that just died)
                p = e
            if isinstance(p, dict) and p["leader_id"] in self.brokers and p["leader_id"] not in but:
                return p["leader_id"]
            assert time.monotonic() < deadline, f"no quorum leader: {p}"
            time.sleep(0.2)


def _free_port(taken, n):
    while True:
        port = pick_base_port(n)
        span = set(range(port, port + n))
        if not span & taken:
            taken |= span
            return port
