"""The kafka-python snippets from the project's seed documents, run verbatim
(only the bootstrap address is substituted) as separate Python processes."""

import subprocess
import sys
import threading
import time

import pytest

SEED_ADDRESS = "localhost:9092"

# --- snippet pair 1 (JSON) ---------------------------------------------------
JSON_PRODUCER = """\
import json
from kafka import KafkaProducer
producer = KafkaProducer(bootstrap_servers=['localhost:9092'])
topic = 'test-topic'
message = json.dumps({'name': 'John Doe', 'age': 30})
producer.send(topic, message.encode('utf-8'))
producer.close()
"""

JSON_CONSUMER = """\
import json
from kafka import KafkaConsumer
consumer = KafkaConsumer('test-topic', bootstrap_servers=['localhost:9092'])
for message in consumer:
    data = json.loads(message.value.decode('utf-8'))
    print(f'Name: {data["name"]}, Age: {data["age"]}')
consumer.close()
"""

# --- snippet pair 2 (hello world) ----------------------------------------------
HELLO_PRODUCER = """\
from kafka import KafkaProducer
producer = KafkaProducer(bootstrap_servers='localhost:9092')
producer.send('test', b'hello world')
producer.flush()
"""

HELLO_CONSUMER = """\
from kafka import KafkaConsumer
consumer = KafkaConsumer('test', bootstrap_servers='localhost:9092')
for msg in consumer:
    print(msg.value)
"""

# --- snippet pair 3 (my-topic) -------------------------------------------------
MY_TOPIC_PRODUCER = """\
from kafka import KafkaProducer
producer = KafkaProducer(bootstrap_servers='localhost:9092')
producer.send('my-topic', b'Hello, Kafka!')
producer.close()
"""

MY_TOPIC_CONSUMER = """\
from kafka import KafkaConsumer
consumer = KafkaConsumer('my-topic', bootstrap_servers='localhost:9092')
for message in consumer:
    print(message.value)
"""

CASES = {
    "json": (JSON_PRODUCER, JSON_CONSUMER, "Name: John Doe, Age: 30"),
    "hello-world": (HELLO_PRODUCER, HELLO_CONSUMER, "b'hello world'"),
    "my-topic": (MY_TOPIC_PRODUCER, MY_TOPIC_CONSUMER, "b'Hello, Kafka!'"),
}

OVERALL_TIMEOUT_S = 60
PRODUCER_TIMEOUT_S = 45


def _write(tmp_path, name, snippet, bootstrap):
    assert snippet.count(SEED_ADDRESS) == 1
    path = tmp_path / name
    path.write_text(snippet.replace(SEED_ADDRESS, bootstrap))
    return path


@pytest.mark.parametrize("case", list(CASES))
def test_seed_snippet(broker, tmp_path, case):
    producer_src, consumer_src, expected = CASES[case]
    prod = _write(tmp_path, "producer.py", producer_src, broker.bootstrap)
    cons = _write(tmp_path, "consumer.py", consumer_src, broker.bootstrap)
    cons_err_path = tmp_path / "consumer.stderr"

    # -u: the consumer is killed at the end, so its stdout must not be buffered.
    with open(cons_err_path, "wb") as cons_err:
        consumer = subprocess.Popen([sys.executable, "-u", str(cons)],
                                    stdout=subprocess.PIPE, stderr=cons_err,
                                    cwd=tmp_path)
    lines = []
    found = threading.Event()

    def reader():
        for raw in consumer.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            lines.append(line)
            if line == expected:
                found.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()

    producer_runs = []
    try:
        # kafka-python's KafkaConsumer without group_id starts at 'latest', so
        # keep running the producer snippet until the consumer prints the line.
        deadline = time.monotonic() + OVERALL_TIMEOUT_S
        while not found.is_set() and time.monotonic() < deadline:
            if consumer.poll() is not None:
                break
            try:
                r = subprocess.run([sys.executable, str(prod)], capture_output=True,
                                   timeout=PRODUCER_TIMEOUT_S, cwd=tmp_path)
            except subprocess.TimeoutExpired as e:
                pytest.fail(f"producer snippet hung for {PRODUCER_TIMEOUT_S}s\n"
                            f"stderr:\n{(e.stderr or b'').decode(errors='replace')[-4000:]}")
            producer_runs.append(r)
            assert r.returncode == 0, (
                f"producer snippet exited {r.returncode}\nstdout:\n{r.stdout.decode()}\n"
                f"stderr:\n{r.stderr.decode(errors='replace')[-4000:]}")
            found.wait(1.0)
    finally:
        if consumer.poll() is None:
            consumer.kill()
        consumer.wait()
        t.join(5)

    cons_stderr = cons_err_path.read_text(errors="replace")
    assert found.is_set(), (
        f"consumer never printed {expected!r} within {OVERALL_TIMEOUT_S}s "
        f"({len(producer_runs)} producer runs; consumer exit={consumer.returncode})\n"
        f"consumer stdout:\n{chr(10).join(lines[-20:])}\n"
        f"consumer stderr (tail):\n{cons_stderr[-4000:]}")
    # Nothing but the expected line may be printed.
    unexpected = [ln for ln in lines if ln != expected]
    assert not unexpected, f"unexpected consumer output: {unexpected[:10]}"
    broker.assert_alive()
