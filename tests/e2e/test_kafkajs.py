"""KafkaJS (Node.js) creates a topic and produces to sluice unchanged; the
records read back through confluent-kafka. (KafkaJS consumers need consumer
groups, issue 4.)"""

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
