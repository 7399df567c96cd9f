"""A Kafka KRaft node's own server.properties starts a sluice broker
(issue 23: operators' configs carry over). The file is the settings lines
of Kafka 4.0's config/server.properties, with its port and log dir moved
to free ones."""

import subprocess
import time

from confluent_kafka.admin import ConfigResource, ResourceType

import helpers as h
from conftest import pick_base_port, sluice_bin

KAFKA_40 = """\
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=localhost:{controller}
listeners=PLAINTEXT://:{port},CONTROLLER://:{controller}
inter.broker.listener.name=PLAINTEXT
advertised.listeners=PLAINTEXT://localhost:{port},CONTROLLER://localhost:{controller}
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL
num.network.threads=3
num.io.threads=8
socket.send.buffer.bytes=102400
socket.receive.buffer.bytes=102400
socket.request.max.bytes=104857600
log.dirs={log_dir}
num.partitions=1
num.recovery.threads.per.data.dir=1
offsets.topic.replication.factor=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
log.retention.hours=168
log.segment.bytes=1073741824
log.retention.check.interval.ms=300000
"""


class Node:
    """A sluice broker started from a file alone (no --port, --data-dir)."""

    def __init__(self, tmp_path, text):
        self.conf = tmp_path / "server.properties"
        self.conf.write_text(text)
        self.log = tmp_path / "broker.log"
        self.proc = subprocess.Popen([str(sluice_bin()), "broker", "--config", str(self.conf), "--shards", "2"],
                                     stdout=open(self.log, "w"), stderr=subprocess.STDOUT)

    def wait_ready(self):
        deadline = time.time() + 30
        while "sluice broker ready" not in self.log.read_text():
            assert self.proc.poll() is None, self.log.read_text()
            assert time.time() < deadline, self.log.read_text()
            time.sleep(0.1)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)


class _Addr:
    def __init__(self, port):
        self.bootstrap = f"localhost:{port}"


def test_kafkas_own_server_properties_starts_a_broker(tmp_path):
    port = pick_base_port(3)
    log_dir = tmp_path / "kraft-combined-logs"
    node = Node(tmp_path, KAFKA_40.format(port=port, controller=port + 2, log_dir=log_dir))
    try:
        node.wait_ready()
        text = node.log.read_text()
        assert "num.network.threads" in text and "do not apply" in text, "the warning names what is ignored"
        broker = _Addr(port)
        topic = h.unique("kraftconf")
        h.create_topic(broker, topic, 2)
        acked = h.produce_records(broker, topic, [(f"k{i}".encode(), b"v") for i in range(100)])
        assert len(h.consume_all(broker, topic, 2, expect=100)) == len(acked)
        assert (log_dir / "meta.properties").exists(), "log.dirs is the data dir"
        resource = ConfigResource(ResourceType.BROKER, "0")
        admin = h.admin(broker)
        entry = admin.describe_configs([resource])[resource].result(timeout=10)["log.retention.ms"]
        assert entry.value == str(168 * 3600 * 1000), "log.retention.hours became log.retention.ms"
    finally:
        node.stop()


def test_a_broker_that_does_not_vote_with_a_voters_id_is_refused_with_the_reason(tmp_path):
    """process.roles=broker with node.id=2 among voters 2, 3 and 4: a
    broker that does not vote cannot hold a voter's id, so it refuses to
    start and names the key. (A controller whose id is not among the voters
    joins as an observer: test_cluster.py.)"""
    port = pick_base_port(3)
    text = KAFKA_40.format(port=port, controller=port + 2, log_dir=tmp_path / "d").replace(
        f"controller.quorum.bootstrap.servers=localhost:{port + 2}",
        "controller.quorum.voters=2@a:9093,3@b:9093,4@c:9093",
    ).replace("process.roles=broker,controller", "process.roles=broker").replace("node.id=1", "node.id=2")
    node = Node(tmp_path, text)
    assert node.proc.wait(timeout=30) != 0
    out = node.log.read_text()
    assert "node.id" in out and "not a voter's" in out, out
