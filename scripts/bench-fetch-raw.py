#!/usr/bin/env python3
"""Raw Fetch v4 throughput of one partition, read sequentially from offset 0
to the end, one request at a time (no client library in the way).
Usage: scripts/bench-fetch-raw.py LABEL TOPIC [PORT]  (partition 0; run it
once right after producing, when the batches are in the cache, and once
after restarting the broker, when they come from disk)."""
import time, sys
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "tests" / "e2e"))
import kafka_wire as kw
def run(label):
    with kw.WireConn("127.0.0.1", PORT) as c:
        off=0; n=0; t=time.time(); total=0
        while True:
            body = c.request(kw.API_FETCH, 4, kw.fetch_v4_body(TOPIC, 0, off, max_wait_ms=0))
            fr = kw.parse_fetch_v4_response(body)
            err, hw, recs = fr[(TOPIC, 0)]
            if not recs: break
            # find last offset: walk batch headers
            pos=0; last=off
            while pos + 61 <= len(recs):
                base = int.from_bytes(recs[pos:pos+8],"big"); ln=int.from_bytes(recs[pos+8:pos+12],"big"); d=int.from_bytes(recs[pos+23:pos+27],"big")
                last = base+d; pos += ln+12
            off = last+1; n+=1; total+=len(recs)
        el=time.time()-t
        print(f"{label}: {n} fetches, {total/1048576:.0f} MiB in {el:.2f}s = {total/1048576/el:.0f} MiB/s, avg {total/n/1024:.0f} KiB/fetch")
TOPIC = sys.argv[2]
PORT = int(sys.argv[3]) if len(sys.argv) > 3 else 9092
run(sys.argv[1])
