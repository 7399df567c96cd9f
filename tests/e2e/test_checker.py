"""The fault tests' checker (checker.py) finds each kind of fault it
reports, and passes a clean run: no broker needed."""

from checker import check


def _acked(n, partition=0):
    return [(partition, i, f"v{i}".encode()) for i in range(n)]


def test_a_clean_run_passes():
    acked = _acked(5)
    # An unacknowledged record read back is not a fault.
    read = acked + [(0, 5, b"maybe")]
    report = check(acked, read, sent={v for *_, v in acked} | {b"maybe"})
    assert report.clean, report.summary()
    report.assert_clean()


def test_each_fault_is_reported():
    acked = _acked(6)
    read = [
        (0, 0, b"v0"),
        (0, 1, b"v1"),
        (0, 2, b"v3"),      # v3 moved from offset 3; v2 lost
        (0, 4, b"v4"),      # gap: offset 3 skipped
        (0, 4, b"v4"),      # duplicated, and not rising
        (0, 6, b"ghost"),   # never sent
        (0, 7, b"v5"),      # moved
    ]
    r = check(acked, read)
    assert not r.clean
    assert r.lost == [(0, 2, b"v2")]
    assert r.duplicated == {b"v4": 2}
    assert [a for a, _ in r.moved] == [(0, 3, b"v3"), (0, 5, b"v5")]
    assert (0, 4, 4) in r.reordered
    assert (0, 3, 4) in r.gaps and (0, 2, 4) not in r.gaps
    assert r.phantom == [(0, 6, b"ghost")]
    s = r.summary()
    for word in ("lost", "duplicated", "moved", "reordered", "gaps", "phantom"):
        assert word in s, s


def test_partitions_are_checked_apart_and_from_their_start():
    acked = _acked(3, 0) + [(1, 10, b"w10"), (1, 11, b"w11")]
    read = [(1, 10, b"w10"), (0, 0, b"v0"), (1, 11, b"w11"), (0, 1, b"v1"), (0, 2, b"v2")]
    assert check(acked, read).clean
    # Read from offset 9 on, partition 1 lacks offset 9: a gap.
    r = check(acked, read, start_offsets={1: 9})
    assert r.gaps == [(1, 9, 10)]
