"""KafkaJS (Node.js) against sluice unchanged: admin and producer (records
read back through confluent-kafka), and a consumer-group member."""

import json
import shutil
import subprocess

from conftest import REPO_ROOT

import helpers as h

JS = REPO_ROOT / "tests" / "e2e" / "js"


def test_kafkajs_admin_and_producer(broker):
    assert shutil.which("node"), "node is needed for the KafkaJS test"
    assert (JS / "node_modules" / "kafkajs").exists(), "run `npm ci --prefix tests/e2e/js` (scripts/test.sh does)"
    topic = h.unique("kjs")
    r = subprocess.run(["node", str(JS / "produce.js"), broker.bootstrap, topic, "3", "50"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert all(rep["errorCode"] == 0 for rep in out["reports"]), out
    highs = {int(o["partition"]): int(o["high"]) for o in out["offsets"]}
    assert sum(highs.values()) == 50 and len(highs) == 3, out
    got = h.consume_all(broker, topic, range(3), expect=50)
    values = sorted(int(v[1:]) for _k, v, *_ in got)
    assert values == list(range(50))
    # one key, one partition
    parts = {}
    for k, _v, p, *_ in got:
        parts.setdefault(k, set()).add(p)
    assert all(len(ps) == 1 for ps in parts.values()), parts


def test_kafkajs_consumer_group(broker):
    """A KafkaJS group consumer reads everything and its auto-commits land."""
    topic, group = h.unique("kjsg"), h.unique("g")
    h.create_topic(broker, topic, partitions=2)
    h.produce_records(broker, topic, [(None, f"v{i}".encode(), i % 2) for i in range(40)])
    r = subprocess.run(["node", str(JS / "group_consume.js"), broker.bootstrap, topic, group, "40"],
                       capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert sorted((p, o) for p, o, _ in out["seen"]) == [(p, o) for p in range(2) for o in range(20)]
    committed = {c["partitions"][i]["partition"]: int(c["partitions"][i]["offset"])
                 for c in out["committed"] for i in range(len(c["partitions"]))}
    assert committed == {0: 20, 1: 20}, out["committed"]
    assert group in [g["groupId"] for g in out["groups"]["groups"]]
