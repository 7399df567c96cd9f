"""sluice-bench (first cut) drives a real broker and what it wrote is there."""

import subprocess

from conftest import REPO_ROOT

import helpers as h


def test_sluice_bench_produce_smoke(broker):
    bench = REPO_ROOT / "target" / "release" / "sluice-bench"
    r = subprocess.run([str(bench), "produce", "--bootstrap", broker.bootstrap, "--topic", "bench-smoke",
                        "--partitions", "2", "--duration", "1", "--batch-records", "16", "--record-size", "100"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "produce: 2 partitions" in r.stdout, r.stdout
    lo_hi = []
    c = h.consumer(broker)
    try:
        from confluent_kafka import TopicPartition
        for p in range(2):
            lo_hi.append(c.get_watermark_offsets(TopicPartition("bench-smoke", p), timeout=10, cached=False))
    finally:
        c.close()
    assert all(hi > 0 and hi % 16 == 0 for _lo, hi in lo_hi), lo_hi
