"""Crash torture: SIGKILL the broker at random moments during acks=all
production, many times over, and check after every restart that

  * every acknowledged record is at its offset with identical bytes,
  * offsets are dense in every partition (no holes, starting at 0),
  * nothing appears twice (every value is unique, and only values that
    were actually sent appear),
  * no partition's log end goes backwards: it stays above the highest
    acknowledged offset, and never drops below the end seen after the
    previous restart (what recovery kept was already on disk).

Set SLUICE_TORTURE_SEED to replay a run (the seed is printed).
"""

import os
import random
import re
import time
from collections import defaultdict

import pytest
from confluent_kafka import TopicPartition

import helpers as h

PARTITIONS = 4
ROUNDS = 15
RECYCLE_ROUNDS = 10
MIN_DELAY_S, MAX_DELAY_S = 0.3, 1.5
RATE = 25000  # records/s: plenty of batches in flight at each kill, bounded data
VALUE_RE = re.compile(rb"^r(\d+)-(\d+)$")


def _watermarks(broker, topic):
    c = h.consumer(broker)
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
                for p in range(PARTITIONS)}
    finally:
        c.close()


def _verify(broker, topic, rnd, all_acked, sent, prev_ends, retention=False):
    """Check the log against everything acknowledged so far; return the
    per-partition log ends. With ``retention`` the log may start above 0:
    only what is at or above its start is checked."""
    ctx = f"round {rnd} (after {rnd + 1} kill -9s)"
    # (with retention: once it has stopped moving the log start after the restart)
    marks = h.settled(lambda: _watermarks(broker, topic)) if retention else _watermarks(broker, topic)
    total = sum(hi - lo for lo, hi in marks.values())
    got = h.consume_all(broker, topic, range(PARTITIONS), timeout=60, expect=total)
    after = _watermarks(broker, topic)
    assert after == marks, (
        f"{ctx}: the log changed while nothing was producing: watermarks {marks} "
        f"before reading, {after} after")

    stored = {}
    dup_offsets = []
    for _k, v, p, o, _ts in got:
        if (p, o) in stored:
            dup_offsets.append((p, o))
        stored[(p, o)] = v
    assert not dup_offsets, f"{ctx}: offsets delivered twice by the consumer: {dup_offsets[:5]}"

    # every acknowledged record (that retention keeps), at its offset, byte-identical
    kept = {(p, o): v for (p, o), v in all_acked.items() if o >= marks[p][0]}
    h.assert_acked_readable(kept, stored, ctx, f"consumed={len(got)} watermarks={marks}")

    # dense offsets from the log start (0 without retention) up to the high
    # watermark in every partition
    by_part = defaultdict(list)
    for (p, o) in stored:
        by_part[p].append(o)
    ends = {}
    for p in range(PARTITIONS):
        lo, hi = marks[p]
        offs = sorted(by_part.get(p, []))
        assert lo == 0 or retention, f"{ctx}: partition {p} log start {lo}, expected 0"
        if offs != list(range(lo, hi)):
            holes = sorted(set(range(lo, hi)) - set(offs))
            beyond = [o for o in offs if o >= hi]
            raise AssertionError(
                f"{ctx}: partition {p} offsets not dense {lo}..{hi}: {len(offs)} consumed, "
                f"holes {holes[:10]}, beyond the high watermark {beyond[:10]}")
        ends[p] = hi
        max_acked = max((o for (pp, o) in all_acked if pp == p), default=-1)
        assert hi >= max_acked + 1, \
            f"{ctx}: partition {p} log end {hi} below max acknowledged offset {max_acked} + 1"
        assert hi >= prev_ends.get(p, 0), \
            f"{ctx}: partition {p} log end went backwards: {prev_ends[p]} -> {hi}"

    # nothing twice, and nothing that was never sent
    where = {}
    dups = []
    bogus = []
    for po, v in stored.items():
        m = VALUE_RE.match(v or b"")
        if not m or int(m.group(1)) > rnd or int(m.group(2)) >= sent[int(m.group(1))]:
            bogus.append((po, v))
        if v in where:
            dups.append((v, where[v], po))
        where[v] = po
    assert not dups, f"{ctx}: {len(dups)} values stored twice, first (value, at, at): {dups[:5]}"
    assert not bogus, f"{ctx}: {len(bogus)} stored values never sent, first: {bogus[:5]}"
    return ends, len(stored)


def _torture(broker, topic, rounds, retention=False):
    """Rounds of acks=all production, kill -9 at a random moment, restart and
    check everything acknowledged (see the module's docstring)."""
    seed = int(os.environ.get("SLUICE_TORTURE_SEED", random.randrange(1 << 32)))
    print(f"crash torture seed: {seed} (replay with SLUICE_TORTURE_SEED={seed})")
    rng = random.Random(seed)
    t0 = time.monotonic()
    all_acked = {}
    sent = {}
    ends = {}
    rounds_with_acks = 0
    for rnd in range(rounds):
        delay = rng.uniform(MIN_DELAY_S, MAX_DELAY_S)
        rec = h.AckRecorder(broker, topic, f"r{rnd}", rate=RATE,
                            **{"enable.idempotence": False})
        rec.start()
        time.sleep(delay)
        broker.kill9()
        rec.finish()
        sent[rnd] = rec.sent
        assert not rec.double_acks, \
            f"round {rnd}: offsets acknowledged twice: {rec.double_acks[:5]}"
        again = [(po, all_acked[po], v) for po, v in rec.acked.items() if po in all_acked]
        assert not again, \
            f"round {rnd}: offsets acknowledged in an earlier round acknowledged again: {again[:5]}"
        all_acked.update(rec.acked)
        if rec.acked:
            rounds_with_acks += 1
        n_acked, n_sent, n_err, codes = len(rec.acked), rec.sent, rec.errors, rec.error_codes
        del rec

        broker.restart()
        h.wait_topic(broker, topic, PARTITIONS)
        ends, n_stored = _verify(broker, topic, rnd, all_acked, sent, ends, retention)
        print(f"round {rnd}: killed after {delay:.2f}s; sent {n_sent}, acked {n_acked}, "
              f"failed {n_err} {codes}; stored {n_stored} (acked in total {len(all_acked)}), "
              f"log ends {ends}; t={time.monotonic() - t0:.1f}s")

    assert rounds_with_acks >= rounds // 2, \
        f"only {rounds_with_acks} of {rounds} rounds got any acknowledgement before the kill"
    assert {p for p, _o in all_acked} == set(range(PARTITIONS)), \
        f"acks only for partitions {sorted({p for p, _o in all_acked})}"
    h.assert_healthy(broker)


@pytest.mark.timeout(300)
def test_random_kill9_during_acks_all_production(broker):
    topic = h.unique("torture")
    h.create_topic_on_both_shards(broker, topic, PARTITIONS)
    _torture(broker, topic, ROUNDS)


@pytest.mark.timeout(300)
def test_random_kill9_while_segments_are_recycled(broker_factory):
    """The same, under retention with 64 KiB segments: partitions roll and
    write new segments into recycled files (which keep the deleted
    segment's bytes past their end) all the time, so most kills land while
    the active segment is a recycled file. Nothing acknowledged that
    retention keeps is lost, and none of the old bytes ever reads back."""
    broker = broker_factory(overrides={"log.retention.check.interval.ms": "10"})
    topic = h.unique("recycled")
    seg = 65536
    h.create_topic(broker, topic, PARTITIONS,
                   config={"segment.bytes": str(seg), "retention.bytes": str(3 * seg)})
    _torture(broker, topic, RECYCLE_ROUNDS, retention=True)
    log = broker.log_path.read_text(errors="replace")
    recycled = log.count("writing the new segment into a recycled file")
    assert recycled >= 2 * PARTITIONS, f"only {recycled} segments were written into recycled files"
    assert any(lo > 0 for lo, _hi in _watermarks(broker, topic).values()), "retention never moved a log start"
