"""A confluent-kafka group member run as its own process by test_groups.py,
so that a test can SIGKILL it. Prints one line per event, flushed:
  ASSIGN p,p,..   partitions added (eager: the whole new assignment)
  REVOKE p,p,..   partitions taken away
  MSG p offset    a record consumed
  COMMIT p next   a committed position (synchronous commit succeeded)
Commits synchronously every --commit-every records (and on revoke).

usage: group_member.py BOOTSTRAP TOPIC GROUP [--strategy S] [--instance ID]
                       [--session-ms N] [--commit-every N]
"""

import argparse
import sys

from confluent_kafka import Consumer, KafkaException, TopicPartition


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("topic")
    ap.add_argument("group")
    ap.add_argument("--strategy", default="range")
    ap.add_argument("--instance")
    ap.add_argument("--session-ms", type=int, default=6000)
    ap.add_argument("--commit-every", type=int, default=20)
    a = ap.parse_args()

    conf = {
        "bootstrap.servers": a.bootstrap,
        "group.id": a.group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": a.session_ms,
        "heartbeat.interval.ms": 500,
        "partition.assignment.strategy": a.strategy,
        "log_level": 4,
    }
    if a.instance:
        conf["group.instance.id"] = a.instance
    c = Consumer(conf)
    positions = {}  # partition -> next offset to commit
    uncommitted = [0]

    def out(line):
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def commit():
        todo = [TopicPartition(a.topic, p, o) for p, o in positions.items()]
        if not todo:
            return
        try:
            c.commit(offsets=todo, asynchronous=False)
        except KafkaException as e:
            out(f"COMMITFAIL {e}")
            return
        for tp in todo:
            out(f"COMMIT {tp.partition} {tp.offset}")
        positions.clear()
        uncommitted[0] = 0

    def on_assign(consumer, parts):
        out("ASSIGN " + ",".join(str(p.partition) for p in parts))

    def on_revoke(consumer, parts):
        commit()
        out("REVOKE " + ",".join(str(p.partition) for p in parts))

    c.subscribe([a.topic], on_assign=on_assign, on_revoke=on_revoke)
    try:
        while True:
            m = c.poll(0.2)
            if m is None:
                if uncommitted[0]:
                    commit()
                continue
            if m.error():
                out(f"ERROR {m.error()}")
                continue
            out(f"MSG {m.partition()} {m.offset()}")
            positions[m.partition()] = m.offset() + 1
            uncommitted[0] += 1
            if uncommitted[0] >= a.commit_every:
                commit()
    except KeyboardInterrupt:
        pass
    finally:
        commit()
        c.close()
        out("CLOSED")


if __name__ == "__main__":
    main()
