#!/usr/bin/python3
"""bench/objrepl.py - object replication lag (issue 10 section 7).

Two tandem regions on this machine (eu, us) with an artificial one-way delay
on their link ([replication] link_delay_ms, 40 ms by default: each request of
the shipper waits one round trip, 80 ms). An open-loop load of PUTs of 1 MiB
objects at eu (--rate, 50/s by default, for --duration seconds); for each
acknowledged PUT a watcher polls us (anonymous HEAD of the public-read
object, one persistent connection per watcher, every POLL_MS) until it is
there. Measured:

  lag from ack    the first moment us answers 200, minus the moment eu's 200
                  reached the client
  lag from send   the same, minus the moment the PUT was sent
  eu histogram    tandem_objects_replication_seconds at eu (commit of the
                  local write to us's acknowledgement), its count and sum

Target (the issue): p99 lag from ack < 1 s at 50 PUT/s with the 40 ms delay.
The machine has 2 cores shared with everything else: quote medians of the
rounds. Usage, from the repository root:

    /usr/bin/python3 bench/objrepl.py --tandem build/tandem [--quick]
        [--duration S] [--rounds N] [--rate N] [--delay MS] [--keep] [--out FILE]

Writes build/bench/objrepl.json (--quick: build/bench/quick/objrepl.json).
Exit status: non-zero only when the benchmark could not run.
"""
import argparse
import http.client
import json
import os
import re
import shutil
import ssl
import statistics
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "build", "bench")
sys.path.insert(0, os.path.join(ROOT, "bench"))

from objects import S3, dev_key  # noqa: E402  (bench/objects.py: signed S3 requests)
from replication import BenchError, Tandem, fail, log, set_ini  # noqa: E402  (bench/replication.py: two regions)

BUCKET = "objrepl"
SIZE = 1024 * 1024
POLL_MS = 5
WATCHERS = 32
TARGET_P99_S = 1.0


def pct(xs, q):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100.0 * (len(xs) - 1))))]


class Watcher(threading.Thread):
    """Polls us for keys handed to it; records when each appears."""

    def __init__(self, port, ctx, jobs, results, stop):
        super().__init__(daemon=True)
        self.port, self.ctx, self.jobs, self.results, self.stop_evt = port, ctx, jobs, results, stop
        self.conn = None

    def head(self, key):
        for _ in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=10)
                self.conn.request("HEAD", "/%s/%s" % (BUCKET, key))
                r = self.conn.getresponse()
                r.read()
                return r.status
            except (OSError, http.client.HTTPException):
                self.conn = None
        return 0

    def run(self):
        while not self.stop_evt.is_set():
            with self.jobs["lock"]:
                job = self.jobs["queue"].pop(0) if self.jobs["queue"] else None
            if job is None:
                time.sleep(0.002)
                continue
            key, sent, acked = job
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not self.stop_evt.is_set():
                if self.head(key) == 200:
                    seen = time.monotonic()
                    with self.jobs["lock"]:
                        self.results.append((seen - acked, seen - sent))
                    break
                time.sleep(POLL_MS / 1000.0)
            else:
                with self.jobs["lock"]:
                    self.results.append((None, None))


def put_loop(s3, rate, duration, jobs, errors, prefix):
    """Open loop: PUT k at its scheduled time (threads, so a slow PUT does
    not delay the next)."""
    body = os.urandom(SIZE)
    t0 = time.monotonic()
    threads = []

    def one(k):
        key = "%s-%06d" % (prefix, k)  # new keys each round: an old one is at us already
        sent = time.monotonic()
        try:
            st, b = s3.request("PUT", "/%s/%s" % (BUCKET, key), body=body)
        except OSError as e:
            st, b = 0, str(e).encode()
        acked = time.monotonic()
        if st != 200:
            errors.append((st, b[:200]))
            return
        with jobs["lock"]:
            jobs["queue"].append((key, sent, acked))

    n = int(rate * duration)
    for k in range(n):
        due = t0 + k / float(rate)
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        t = threading.Thread(target=one, args=(k,), daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join(60)
    return n


def metrics(t, name):
    import urllib.request
    body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % t.metrics_ports[name], timeout=5).read().decode()
    out = {}
    for m in re.finditer(r"^(tandem_objects_replication_seconds_(?:count|sum))\{[^}]*\} ([0-9.e+]+)$", body, re.M):
        out[m.group(1)] = float(m.group(2))
    return out


def one_round(t, s3_eu, ctx, args, rnd):
    jobs = {"lock": threading.Lock(), "queue": []}
    results, errors = [], []
    stop = threading.Event()
    watchers = [Watcher(t.base + 8, ctx, jobs, results, stop) for _ in range(WATCHERS)]
    for w in watchers:
        w.start()
    before = metrics(t, "eu")
    n = put_loop(s3_eu, args.rate, args.duration, jobs, errors, "r%d" % rnd)
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        with jobs["lock"]:
            if len(results) + len(errors) >= n and not jobs["queue"]:
                break
        time.sleep(0.05)
    stop.set()
    after = metrics(t, "eu")
    ok = [r for r in results if r[0] is not None]
    from_ack = [r[0] for r in ok]
    from_send = [r[1] for r in ok]
    cnt = after.get("tandem_objects_replication_seconds_count", 0) - before.get("tandem_objects_replication_seconds_count", 0)
    sm = after.get("tandem_objects_replication_seconds_sum", 0) - before.get("tandem_objects_replication_seconds_sum", 0)
    return {
        "puts": n, "put_errors": len(errors), "seen": len(ok), "missing": len(results) - len(ok),
        "lag_from_ack_s": {"p50": pct(from_ack, 50), "p99": pct(from_ack, 99), "max": max(from_ack) if from_ack else None},
        "lag_from_send_s": {"p50": pct(from_send, 50), "p99": pct(from_send, 99)},
        "eu_histogram": {"count": cnt, "mean_s": sm / cnt if cnt else None},
        "first_error": errors[0][1].decode(errors="replace") if errors else None,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tandem", default=os.path.join(ROOT, "build", "tandem"))
    ap.add_argument("--duration", type=int, help="seconds of load per round (10; --quick: 3)")
    ap.add_argument("--rounds", type=int, help="rounds (3; --quick: 1)")
    ap.add_argument("--rate", type=int, default=50, help="PUTs of 1 MiB per second at eu (50)")
    ap.add_argument("--delay", type=int, default=40, help="one-way link delay, ms (40)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 round of 3 s")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--out", help="results file")
    # accepted and ignored, as the other scripts do with each other's options
    ap.add_argument("--idle-connections", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--connections", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--no-nginx-auto", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    a.duration = a.duration or (3 if a.quick else 10)
    a.rounds = a.rounds or (1 if a.quick else 3)
    a.out = a.out or os.path.join(OUT_DIR, "quick" if a.quick else "", "objrepl.json")
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    tandem = os.path.abspath(a.tandem)
    if not os.access(tandem, os.X_OK):
        fail("%s: not an executable (run make first)" % a.tandem)
    os.makedirs(OUT_DIR, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="objrepl-", dir=OUT_DIR)
    t = None
    rounds = []
    try:
        t = Tandem(tandem, workdir, a.delay)
        with open(t.config) as f:
            text = f.read()
        # the shipper's back-off stays short, as the tests', so a slow start does not skew a round
        text = set_ini(text, "replication", "reconnect_max_ms", "500")
        with open(t.config, "w") as f:
            f.write(text)
        t.start()
        ctx = ssl.create_default_context(cafile=t.ca)
        akid, secret = dev_key(t.dir)
        s3_eu = S3(t.base + 7, ctx, akid, secret)
        st, body = s3_eu.request("PUT", "/" + BUCKET, headers={"x-amz-acl": "public-read"})
        if st != 200:
            fail("CreateBucket at eu: %d %s" % (st, body[:200]))
        deadline = time.monotonic() + 20
        while True:  # the bucket reaches us (anonymous HEAD: its ACL came along)
            c = http.client.HTTPSConnection("127.0.0.1", t.base + 8, context=ctx, timeout=5)
            c.request("HEAD", "/" + BUCKET)
            r = c.getresponse()
            r.read()
            c.close()
            if r.status == 200:
                break
            if time.monotonic() > deadline:
                fail("the bucket did not reach us (HEAD %d)" % r.status)
            time.sleep(0.05)
        log("objrepl bench: %d round(s) of %d s, %d PUT/s of 1 MiB at eu, link delay %d ms each way"
            % (a.rounds, a.duration, a.rate, a.delay))
        for i in range(a.rounds):
            res = one_round(t, s3_eu, ctx, a, i + 1)
            t.check_alive("round %d" % (i + 1))
            rounds.append(res)
            log("round %d: %s" % (i + 1, json.dumps(res)))
    finally:
        if t:
            t.stop()
        if not a.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    def med(path):
        vals = []
        for r in rounds:
            v = r
            for p in path:
                v = v.get(p) if isinstance(v, dict) else None
            if v is not None:
                vals.append(v)
        return statistics.median(vals) if vals else None

    p50, p99, mx = med(["lag_from_ack_s", "p50"]), med(["lag_from_ack_s", "p99"]), med(["lag_from_ack_s", "max"])
    s50, s99 = med(["lag_from_send_s", "p50"]), med(["lag_from_send_s", "p99"])
    missing = sum(r["missing"] for r in rounds)
    errors = sum(r["put_errors"] for r in rounds)
    ok = p99 is not None and p99 < TARGET_P99_S and not missing
    print()
    print("Object replication lag: %d PUT/s of 1 MiB at eu, link delay %d ms each way, median of %d round(s)"
          % (a.rate, a.delay, len(rounds)))
    print("| figure | p50 | p99 | max |")
    print("|---|---:|---:|---:|")
    f = lambda v: "-" if v is None else "%.0f ms" % (v * 1000)  # noqa: E731
    print("| lag from eu's ack to visible at us | %s | %s | %s |" % (f(p50), f(p99), f(mx)))
    print("| lag from the PUT's send | %s | %s | |" % (f(s50), f(s99)))
    print("p99 from ack < %.0f ms: %s; objects never seen at us: %d; PUT errors: %d"
          % (TARGET_P99_S * 1000, "PASS" if ok else "MISS", missing, errors))
    out = {"rate": a.rate, "delay_ms": a.delay, "duration_s": a.duration, "rounds": rounds,
           "median": {"lag_from_ack_p50_s": p50, "lag_from_ack_p99_s": p99, "lag_from_ack_max_s": mx,
                      "lag_from_send_p50_s": s50, "lag_from_send_p99_s": s99},
           "target_p99_s": TARGET_P99_S, "pass": ok}
    with open(a.out, "w") as fh:
        json.dump(out, fh, indent=2)
    log("results: " + os.path.relpath(a.out, ROOT))


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        print("bench/objrepl.py: %s" % e, file=sys.stderr)
        sys.exit(1)
