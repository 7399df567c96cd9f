"""The checker for fault tests (issue 24): given what producers were told
was acknowledged and what consumers read back, report every record that
was lost, duplicated, reordered, moved, or never sent at all, and every
gap in a partition's offsets. A fault round passes only when every list
is empty.

Records are identified by their value, which the test makes unique (for
example b"seed-3/p1/42"). A record sent but never acknowledged may be read
back or not (its fate was unknown to the producer): neither counts against
the broker; read back twice, it is a duplicate like any other. Pass only
the acknowledged records at or past where reading began. Sent records are passed separately from acknowledged ones so
that a value never sent is told apart from one sent but not acknowledged.
"""

from collections import Counter, defaultdict
from dataclasses import dataclass, field


@dataclass
class Report:
    """What went wrong; all empty when nothing did."""
    # Acknowledged (partition, offset, value) never read back.
    lost: list = field(default_factory=list)
    # Values read back more than once: value -> times.
    duplicated: dict = field(default_factory=dict)
    # (partition, offset, value) read at another offset or partition than
    # the acknowledgement said: (acked, read).
    moved: list = field(default_factory=list)
    # (partition, previous offset, offset) where a partition's offsets did
    # not rise as read.
    reordered: list = field(default_factory=list)
    # (partition, expected offset, offset read) where offsets skip.
    gaps: list = field(default_factory=list)
    # (partition, offset, value) read but never sent.
    phantom: list = field(default_factory=list)

    @property
    def clean(self):
        return not (self.lost or self.duplicated or self.moved or self.reordered or self.gaps or self.phantom)

    def summary(self, limit=5):
        parts = []
        for name in ("lost", "duplicated", "moved", "reordered", "gaps", "phantom"):
            items = getattr(self, name)
            if items:
                shown = list(items.items())[:limit] if isinstance(items, dict) else items[:limit]
                parts.append(f"{len(items)} {name} (e.g. {shown})")
        return "; ".join(parts) or "clean"

    def assert_clean(self):
        assert self.clean, self.summary()


def check(acked, read, sent=None, start_offsets=None, dense=True):
    """Compares `acked` [(partition, offset, value)] with `read` [(partition,
    offset, value)] in the order each partition was read. `sent` is every
    value any producer sent (acknowledged or not); without it, only
    acknowledged values count as sent. `start_offsets` {partition: offset}
    is where reading began (default: the first offset read); with `dense`,
    each partition's offsets must follow one another without a gap."""
    report = Report()
    sent = set(sent) if sent is not None else {v for _, _, v in acked}
    sent |= {v for _, _, v in acked}
    times = Counter(v for _, _, v in read)
    report.duplicated = {v: n for v, n in times.items() if n > 1}
    where = {}
    for p, o, v in read:
        where.setdefault(v, (p, o))
    for p, o, v in acked:
        got = where.get(v)
        if got is None:
            report.lost.append((p, o, v))
        elif got != (p, o):
            report.moved.append(((p, o, v), (*got, v)))
    report.phantom = [(p, o, v) for p, o, v in read if v not in sent]
    by_partition = defaultdict(list)
    for p, o, _ in read:
        by_partition[p].append(o)
    for p, offsets in sorted(by_partition.items()):
        expected = (start_offsets or {}).get(p, offsets[0])
        previous = None
        for o in offsets:
            if previous is not None and o <= previous:
                report.reordered.append((p, previous, o))
            elif dense and o != expected:
                report.gaps.append((p, expected, o))
            previous = o
            expected = max(expected, o + 1)
    return report
