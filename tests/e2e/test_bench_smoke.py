"""sluice-bench and scripts/load-test.sh drive a real broker for a few
seconds: the counts add up (produced = acknowledged = consumed) and the
output files parse."""

import json
import re
import subprocess

from confluent_kafka import TopicPartition

from conftest import REPO_ROOT

import helpers as h

BENCH = REPO_ROOT / "target" / "release" / "sluice-bench"


def parse_hgrm(path):
    """(value, percentile) rows and the total count of a .hgrm file."""
    rows, total = [], None
    for line in path.read_text().splitlines():
        m = re.match(r"^\s+([0-9.]+)\s+([0-9.]+)\s+(\d+)", line)
        if m:
            rows.append((float(m.group(1)), float(m.group(2))))
        m = re.search(r"Total count\s+=\s+(\d+)", line)
        if m:
            total = int(m.group(1))
    assert rows and total is not None, path.read_text()[:500]
    values = [v for v, _ in rows]
    assert values == sorted(values) and rows[-1][1] == 1.0
    return rows, total


def test_e2e_counts_add_up_and_files_parse(broker, tmp_path):
    out = tmp_path / "e2e"
    r = subprocess.run([str(BENCH), "e2e", "--bootstrap", broker.bootstrap, "--topic", "bench-e2e",
                        "--partitions", "2", "--rate", "5000", "--record-size", "200", "--duration", "3",
                        "--keys", "uniform", "--output", str(out)], capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stderr + r.stdout
    s = json.loads((out / "summary.json").read_text())
    assert s["sent"] == s["acknowledged"] == s["consumed"] > 0, s
    assert s["errors"] == 0
    assert 0.7 * 5000 < s["records_per_s"] < 1.3 * 5000, s  # the open-loop schedule holds
    for name in ("produce", "end_to_end", "fetch"):
        lat = s["latency"][name]
        assert 0 < lat["p50_ms"] <= lat["p99_ms"] <= lat["max_ms"], lat
    _, total = parse_hgrm(out / "e2e-latency.hgrm")
    assert total == s["latency"]["end_to_end"]["count"] == s["records"]
    parse_hgrm(out / "produce-latency.hgrm")
    svg = (out / "latency.svg").read_text()
    assert svg.startswith("<svg") and svg.count("<polyline") == 3
    # What the broker holds is what was acknowledged.
    c = h.consumer(broker)
    try:
        stored = sum(c.get_watermark_offsets(TopicPartition("bench-e2e", p), timeout=10, cached=False)[1]
                     for p in range(2))
    finally:
        c.close()
    assert stored == s["acknowledged"]
    assert "latency (ms)" in r.stdout and "harness CPU" in r.stdout


def test_max_rate_produce_then_consume(broker, tmp_path):
    r = subprocess.run([str(BENCH), "produce", "--bootstrap", broker.bootstrap, "--topic", "bench-max",
                        "--partitions", "2", "--producers", "2", "--duration", "2", "--batch-records", "16",
                        "--record-size", "100", "--compression", "lz4", "--output", str(tmp_path / "p")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "p" / "summary.json").read_text())
    assert s["sent"] == s["acknowledged"] > 0 and s["acknowledged"] % 16 == 0
    r = subprocess.run([str(BENCH), "consume", "--bootstrap", broker.bootstrap, "--topic", "bench-max",
                        "--partitions", "2", "--records", str(s["acknowledged"]), "--record-size", "100",
                        "--output", str(tmp_path / "c")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    c = json.loads((tmp_path / "c" / "summary.json").read_text())
    assert c["consumed"] == s["acknowledged"]


def test_load_test_script_latency_profile(broker, tmp_path):
    out = tmp_path / "lt"
    r = subprocess.run([str(REPO_ROOT / "scripts" / "load-test.sh"), "--bootstrap-server", broker.bootstrap,
                        "--profile", "latency", "--duration", "2", "--output", str(out)],
                       capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stderr + r.stdout
    assert re.search(r"^produce\s+[0-9.]+\s+[0-9.]+", r.stdout, re.M), r.stdout
    s = json.loads((out / "summary.json").read_text())
    assert s["target_rate"] == 20000 and s["acknowledged"] == s["sent"]
    parse_hgrm(out / "produce-latency.hgrm")
    assert (out / "latency.svg").exists()
