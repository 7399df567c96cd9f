"""kcat (librdkafka CLI) metadata listing, produce and consume."""

import json
import shutil
import subprocess
from collections import defaultdict

import pytest

import helpers as h

KCAT_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def kcat():
    path = shutil.which("kcat") or shutil.which("kafkacat")
    if path is None:
        pytest.fail("kcat is not installed (apt-get install kcat); these tests must not be skipped",
                    pytrace=False)
    return path


def run_kcat(kcat, args, stdin=None, check=True):
    try:
        r = subprocess.run([kcat, *args], input=stdin, capture_output=True,
                           timeout=KCAT_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"kcat {' '.join(args)} timed out after {KCAT_TIMEOUT_S}s\n"
                    f"stderr:\n{(e.stderr or b'').decode(errors='replace')[-4000:]}")
    if check:
        assert r.returncode == 0, (
            f"kcat {' '.join(args)} exited {r.returncode}\n"
            f"stdout:\n{r.stdout.decode(errors='replace')[-4000:]}\n"
            f"stderr:\n{r.stderr.decode(errors='replace')[-4000:]}")
        assert b"ERROR" not in r.stderr, f"kcat reported errors:\n{r.stderr.decode()[-4000:]}"
    return r


def test_kcat_lists_every_shard_as_broker(broker, kcat):
    topic = h.unique("kcl")
    h.create_topic(broker, topic, 4)

    r = run_kcat(kcat, ["-b", broker.bootstrap, "-L", "-J"])
    md = json.loads(r.stdout)
    brokers = {b["id"]: b["name"] for b in md["brokers"]}
    assert brokers == {0: f"127.0.0.1:{broker.port}", 1: f"127.0.0.1:{broker.port + 1}"}, md
    topics = {t["topic"]: t for t in md["topics"]}
    assert topic in topics, f"{topic} missing from kcat -L: {list(topics)}"
    parts = topics[topic]["partitions"]
    assert sorted(p["partition"] for p in parts) == [0, 1, 2, 3]
    assert {p["leader"] for p in parts} == {0, 1}, parts
    assert all("error" not in p for p in parts), parts

    # the human-readable listing too
    r = run_kcat(kcat, ["-b", broker.bootstrap, "-L"])
    out = r.stdout.decode()
    assert " 2 brokers:" in out, out
    assert f"broker 0 at 127.0.0.1:{broker.port}" in out, out
    assert f"broker 1 at 127.0.0.1:{broker.port + 1}" in out, out
    assert f'topic "{topic}" with 4 partitions:' in out, out


def _consume_json(kcat, broker, topic, extra=()):
    r = run_kcat(kcat, ["-C", "-b", broker.bootstrap, "-t", topic, "-o", "beginning",
                        "-e", "-J", *extra])
    return [json.loads(line) for line in r.stdout.decode().splitlines() if line.strip()]


def test_kcat_produce_and_consume_lines(broker, kcat):
    topic = h.unique("kcp")
    h.create_topic(broker, topic, 3)
    lines = [f"line {i} of kcat input" for i in range(500)]
    run_kcat(kcat, ["-P", "-b", broker.bootstrap, "-t", topic],
             stdin=("\n".join(lines) + "\n").encode())

    msgs = _consume_json(kcat, broker, topic)
    assert sorted(m["payload"] for m in msgs) == sorted(lines)
    assert all(m["key"] is None for m in msgs)
    per_part = defaultdict(list)
    for m in msgs:
        per_part[m["partition"]].append(m)
    for part, ms in per_part.items():
        assert [m["offset"] for m in ms] == list(range(len(ms))), f"partition {part} offsets"
        # single producer: order within a partition follows input order
        idx = [lines.index(m["payload"]) for m in ms]
        assert idx == sorted(idx), f"partition {part} out of input order"

    # plain (non-JSON) output of one partition
    r = run_kcat(kcat, ["-C", "-b", broker.bootstrap, "-t", topic, "-p", "0",
                        "-o", "beginning", "-e"])
    assert r.stdout.decode().splitlines() == [m["payload"] for m in per_part.get(0, [])]


def test_kcat_produce_and_consume_keyed(broker, kcat):
    topic = h.unique("kck")
    h.create_topic(broker, topic, 4)
    rows = [(f"user-{i % 17}", f"event-{i}") for i in range(340)]
    run_kcat(kcat, ["-P", "-b", broker.bootstrap, "-t", topic, "-K", ":"],
             stdin="".join(f"{k}:{v}\n" for k, v in rows).encode())

    msgs = _consume_json(kcat, broker, topic)
    assert sorted((m["key"], m["payload"]) for m in msgs) == sorted(rows)
    key_parts = defaultdict(set)
    for m in msgs:
        key_parts[m["key"]].add(m["partition"])
    assert all(len(p) == 1 for p in key_parts.values()), key_parts

    # key-prefixed text output
    r = run_kcat(kcat, ["-C", "-b", broker.bootstrap, "-t", topic, "-o", "beginning",
                        "-e", "-K", ":"])
    assert sorted(r.stdout.decode().splitlines()) == sorted(f"{k}:{v}" for k, v in rows)


def test_kcat_produce_autocreates_topic(broker, kcat):
    topic = h.unique("kca")
    run_kcat(kcat, ["-P", "-b", broker.bootstrap, "-t", topic], stdin=b"a\nb\nc\n")
    msgs = _consume_json(kcat, broker, topic)
    assert [m["payload"] for m in msgs] == ["a", "b", "c"]
    assert [m["offset"] for m in msgs] == [0, 1, 2]
    t = h.wait_topic(broker, topic, 1)  # default num.partitions=1
    assert len(t.partitions) == 1
