"""A member whose session timeout ran out leaves its group on time: within
the coordinator's bound (one clock tick, 100 ms, after the deadline), static
members (group.instance.id) included, so that an admin can then delete the
group."""

import time

from confluent_kafka import KafkaException

import helpers as h

SESSION_MS = 6000
HEARTBEAT_MS = 300
# The coordinator's clock ticks every 100 ms; the rest is the admin round
# trips of this test on a loaded 2-core machine.
BOUND_S = 0.1 + 0.6


def try_delete(admin, group):
    try:
        admin.delete_consumer_groups([group], request_timeout=5)[group].result(10)
        return True
    except KafkaException as e:
        assert "NON_EMPTY_GROUP" in str(e) or e.args[0].name() == "NON_EMPTY_GROUP", e
        return False


def test_static_member_that_closes_is_gone_at_its_session_timeout(broker):
    topic, group = h.unique("exp"), h.unique("g")
    h.create_topic(broker, topic, 1)
    c = h.consumer(broker, **{"group.id": group, "group.instance.id": "inst-1",
                              "session.timeout.ms": SESSION_MS, "heartbeat.interval.ms": HEARTBEAT_MS})
    c.subscribe([topic])
    deadline = time.monotonic() + 30
    while not c.assignment():
        assert time.monotonic() < deadline, "never assigned"
        c.poll(0.2)
    c.poll(1.0)
    # A static member sends no LeaveGroup on close: only its session ends it.
    c.close()
    closed = time.monotonic()
    admin = h.admin(broker)
    assert not try_delete(admin, group), "the member's session has not run out yet"
    while not try_delete(admin, group):
        assert time.monotonic() - closed < SESSION_MS / 1000 + BOUND_S, "the member outlived its session"
        time.sleep(0.05)
    gone = time.monotonic() - closed
    print(f"member gone {gone:.3f} s after close")
    # Its last heartbeat was at most one interval before close.
    assert gone >= (SESSION_MS - HEARTBEAT_MS) / 1000 - 0.05, f"expelled early, {gone:.2f} s after close"
