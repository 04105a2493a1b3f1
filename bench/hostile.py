#!/usr/bin/python3
"""bench/hostile.py - bounded memory under hostile clients (`make bench`).

Starts one region (the generated config: max_buffered_bytes 128 MiB,
write_timeout_ms 10 s, body_timeout_ms 30 s, max_connections_per_address
256), seeds a collection whose list page is ~4 MB, then measures normal
clients (a steady rate of small authenticated GETs of one record, over
keep-alive TLS connections from 127.0.0.1):

  1. unloaded, for --duration seconds;
  2. loaded: with 1,000 connections that ask for the large list page and
     never read (4 KiB receive buffer, so the answers wait in the region),
     and 1,000 connections trickling request bodies (head + 64 KiB, then one
     byte a second), spread over 127.0.0.2..11 (200 per address, under the
     per-address cap). The hostile clients run in a child process so they do
     not share the measuring process's interpreter.

Prints the region's peak RSS over the loaded phase, p50/p99 of the normal
clients unloaded and loaded, their ratio, and PASS/MISS against the targets
(RSS < 256 MB, loaded p99 < 2x unloaded). --quick: 100 + 100 hostile
connections, 3 s phases (a CI smoke). Writes build/bench/hostile.json.

Python 3.11 standard library only. Usage (from the repository root):

    /usr/bin/python3 bench/hostile.py --tandem build/tandem [--quick]
        [--duration S] [--hostile N] [--keep]
"""

import argparse
import http.client
import json
import os
import resource
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "build", "bench")

TARGET_RSS_MB = 256.0
TARGET_P99_RATIO = 2.0
BIG_RECORDS = 40          # x ~100 KB: a list page of ~4 MB
BIG_RECORD_BYTES = 100 * 1024
TRICKLE_FIRST_BYTES = 64 * 1024
TRICKLE_BODY_BYTES = 1024 * 1024 - 1
PER_ADDRESS = 200         # hostile connections per 127.0.0.x source
NORMAL_CONNECTIONS = 4
NORMAL_RATE = 100         # requests/s in total


def log(msg):
    print(msg, flush=True)


def fail(msg):
    print("hostile bench: " + msg, file=sys.stderr, flush=True)
    sys.exit(1)


def free_port_base(count=10):
    base = 16000 + (os.getpid() * 13) % 16000  # below the ephemeral range (32768-)
    while True:
        ok = True
        for p in range(base, base + count):
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return base
        base += count + 1
        if base + count >= 32768:
            base = 16000


def raise_fd_limit(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(max(soft, want), hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_bytes(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class Region:
    """One region of a `tandem init` deployment, alone (the witness section is
    dropped: one region without it needs no lease, as in the functional tests)."""

    def __init__(self, tandem, workdir):
        self.tandem = tandem
        self.dir = os.path.join(workdir, "eu")
        self.port = free_port_base()
        r = subprocess.run([tandem, "init", "--address", "127.0.0.1", "--data", self.dir, "--port-base", str(self.port)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            fail("tandem init failed: " + r.stderr.strip())
        self.config = os.path.join(self.dir, "tandem.ini")
        with open(self.config) as f:
            text = f.read()
        start = text.find("[witness]")
        if start >= 0:
            end = text.find("\n[", start + 1)
            text = text[:start] + (text[end + 1:] if end >= 0 else "")
        with open(self.config, "w") as f:
            f.write(text)
        self.ca = os.path.join(self.dir, "certs", "ca.pem")
        self.ctx = ssl.create_default_context(cafile=self.ca)
        self.proc = None
        self.log_path = os.path.join(self.dir, "region.log")

    def start(self):
        self.log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.tandem, "region", "--config", self.config, "--region", "eu"],
                                     stdout=self.log_file, stderr=self.log_file)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                fail("the region exited at start:\n" + self.tail())
            try:
                if self.request("GET", "/healthz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        fail("the region did not become healthy:\n" + self.tail())

    def connection(self, timeout=30):
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=timeout)

    def request(self, method, path, body=None, token=None):
        c = self.connection()
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = "Bearer " + token
        try:
            c.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
            r = c.getresponse()
            data = r.read()
            return r.status, json.loads(data) if data else None
        finally:
            c.close()

    def tail(self, n=20):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def seed(region):
    status, body = region.request("POST", "/v1/auth/signup",
                                  {"email": "bench-%d@example.com" % os.getpid(),
                                   "password": "correct horse battery"})
    if status != 201:
        fail("signup failed: %s %s" % (status, body))
    token = body["access_token"]
    blob = "x" * BIG_RECORD_BYTES
    for i in range(BIG_RECORDS):
        status, body = region.request("POST", "/v1/collections/big/records", {"n": i, "blob": blob}, token)
        if status != 201:
            fail("seeding failed: %s %s" % (status, body))
    status, body = region.request("POST", "/v1/collections/small/records",
                                  {"title": "buy milk", "done": False}, token)
    if status != 201:
        fail("seeding failed: %s %s" % (status, body))
    return token, body["id"]


def normal_clients(region, token, rid, duration):
    """NORMAL_CONNECTIONS keep-alive connections sharing NORMAL_RATE requests/s
    of GET one record; latencies in ms and the count of failed requests."""
    latencies, errors = [], [0]
    lock = threading.Lock()
    path = "/v1/collections/small/records/" + rid
    headers = {"Authorization": "Bearer " + token}
    interval = NORMAL_CONNECTIONS / NORMAL_RATE
    end = time.monotonic() + duration

    def client(offset):
        c = region.connection(timeout=10)
        mine = []
        next_at = time.monotonic() + offset
        while next_at < end:
            pause = next_at - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            t0 = time.perf_counter()
            try:
                c.request("GET", path, headers=headers)
                r = c.getresponse()
                r.read()
                ok = r.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                c.close()
                c = region.connection(timeout=10)
            elapsed = (time.perf_counter() - t0) * 1000
            if ok:
                mine.append(elapsed)
            else:
                with lock:
                    errors[0] += 1
            next_at += interval
        c.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(i * interval / NORMAL_CONNECTIONS,))
               for i in range(NORMAL_CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, errors[0]


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(p / 100 * len(values) + 0.5)) - 1))
    return values[k]


# --- the hostile clients (child process) -----------------------------------

def hostile_child(port, ca, token, count):
    """Open `count` never-reading big-list connections and `count` trickling
    bodies, print "ready OPENED REFUSED", then trickle a byte a second on each
    trickler until stdin closes."""
    ctx = ssl.create_default_context(cafile=ca)
    big = ("GET /v1/collections/big/records?limit=%d HTTP/1.1\r\nHost: x\r\n"
           "Authorization: Bearer %s\r\n\r\n" % (BIG_RECORDS, token)).encode()
    trickle_head = ("POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    "Content-Length: %d\r\n\r\n" % TRICKLE_BODY_BYTES).encode()
    first = b" " * TRICKLE_FIRST_BYTES
    readers, tricklers, refused = [], [], 0
    for i in range(2 * count):
        source = ("127.0.0.%d" % (2 + i // PER_ADDRESS), 0)
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            raw.settimeout(30)
            if i % 2 == 0:
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            raw.bind(source)
            raw.connect(("127.0.0.1", port))
            s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
            if i % 2 == 0:
                s.sendall(big)
                readers.append(s)
            else:
                s.sendall(trickle_head + first)
                tricklers.append(s)
        except (OSError, ssl.SSLError):
            refused += 1
            raw.close()
    print("ready %d %d" % (len(readers) + len(tricklers), refused), flush=True)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    cut = 0
    while not stop.wait(1.0):
        for s in list(tricklers):
            try:
                s.sendall(b" ")
            except (OSError, ssl.SSLError):
                tricklers.remove(s)
                cut += 1
    # what the never-readers were answered: the page (200) or 503 overloaded
    # (the first bytes wait in their own receive buffer even when the region
    # has closed the connection since)
    outcome = {"200": 0, "503": 0, "closed": 0, "other": 0}
    for s in readers:
        try:
            s.settimeout(0.2)
            head = s.recv(12)
            key = head[9:12].decode() if head.startswith(b"HTTP/1.1 ") else ("closed" if not head else "other")
            outcome[key if key in outcome else "other"] += 1
        except (OSError, ssl.SSLError):
            outcome["closed"] += 1
    print("done %d %s" % (cut, json.dumps(outcome)), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tandem", default=os.path.join(ROOT, "build", "tandem"))
    ap.add_argument("--quick", action="store_true", help="100 + 100 hostile connections, 3 s phases")
    ap.add_argument("--duration", type=float, help="seconds per phase (10; --quick: 3)")
    ap.add_argument("--hostile", type=int, help="never-readers, and as many tricklers (1000; --quick: 100)")
    ap.add_argument("--keep", action="store_true", help="keep the data directory")
    ap.add_argument("--hostile-child", nargs=4, help=argparse.SUPPRESS)
    # `make bench` passes the same BENCH_ARGS to every script: ignore the
    # other scripts' options (--rounds, --no-nginx-auto, ...)
    args, ignored = ap.parse_known_args()
    if ignored:
        log("hostile bench: ignoring " + " ".join(ignored))
    if args.hostile_child:
        port, ca, token, count = args.hostile_child
        hostile_child(int(port), ca, token, int(count))
        return
    duration = args.duration or (3.0 if args.quick else 10.0)
    count = args.hostile or (100 if args.quick else 1000)
    nofile = raise_fd_limit(2 * count + 1024)
    if nofile < 2 * count + 256:
        fail("the open file limit (%d) is too low for %d connections" % (nofile, 2 * count))
    tandem = os.path.abspath(args.tandem)
    workdir = tempfile.mkdtemp(prefix="tandem-hostile-")
    region = Region(tandem, workdir)
    child = None
    try:
        region.start()
        token, rid = seed(region)
        pid = region.proc.pid
        log("hostile bench: %d never-reading big-list connections + %d trickling bodies, "
            "normal load %d GET/s on %d connections, %.0f s phases"
            % (count, count, NORMAL_RATE, NORMAL_CONNECTIONS, duration))
        unloaded, unloaded_errors = normal_clients(region, token, rid, duration)
        rss_unloaded = rss_bytes(pid)

        peak = [rss_unloaded]
        sampling = threading.Event()

        def sample():
            while not sampling.is_set():
                peak[0] = max(peak[0], rss_bytes(pid))
                time.sleep(0.05)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0 = time.monotonic()
        child = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--hostile-child",
                                  str(region.port), region.ca, token, str(count)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready = child.stdout.readline().split()
        if len(ready) != 3 or ready[0] != "ready":
            fail("the hostile clients did not start: %r" % ready)
        opened, refused = int(ready[1]), int(ready[2])
        setup_s = time.monotonic() - t0
        loaded, loaded_errors = normal_clients(region, token, rid, duration)
        child.stdin.close()
        done = child.stdout.readline().split(" ", 2)
        child.wait(60)
        sampling.set()
        sampler.join()
        outcome = json.loads(done[2]) if len(done) == 3 else {}
        cut = int(done[1]) if len(done) == 3 else -1
        if region.proc.poll() is not None:
            fail("the region died under load:\n" + region.tail())

        p50u, p99u = percentile(unloaded, 50), percentile(unloaded, 99)
        p50l, p99l = percentile(loaded, 50), percentile(loaded, 99)
        ratio = p99l / p99u if p99u else float("inf")
        rss_mb = peak[0] / 1e6
        rss_ok = rss_mb < TARGET_RSS_MB
        p99_ok = ratio < TARGET_P99_RATIO and loaded_errors == 0
        log("  hostile connections: %d opened, %d refused, in %.1f s" % (opened, refused, setup_s))
        log("  never-readers answered: %s; tricklers cut (503 overloaded, 408, closed): %d/%d"
            % (outcome, cut, count))
        log("  normal GETs unloaded: %d ok, %d failed, p50 %.2f ms, p99 %.2f ms"
            % (len(unloaded), unloaded_errors, p50u, p99u))
        log("  normal GETs loaded:   %d ok, %d failed, p50 %.2f ms, p99 %.2f ms"
            % (len(loaded), loaded_errors, p50l, p99l))
        log("  RSS: %.1f MB unloaded, %.1f MB max under load    %s (target < %.0f MB)"
            % (rss_unloaded / 1e6, rss_mb, "PASS" if rss_ok else "MISS", TARGET_RSS_MB))
        log("  p99 loaded / unloaded: %.2fx                        %s (target < %.0fx, no failures)"
            % (ratio, "PASS" if p99_ok else "MISS", TARGET_P99_RATIO))
        os.makedirs(OUT_DIR, exist_ok=True)
        with open(os.path.join(OUT_DIR, "hostile.json"), "w") as f:
            json.dump({"hostile_connections": 2 * count, "opened": opened, "refused": refused,
                       "setup_s": setup_s, "duration_s": duration, "never_readers": outcome,
                       "tricklers_cut": cut,
                       "unloaded": {"ok": len(unloaded), "failed": unloaded_errors,
                                    "p50_ms": p50u, "p99_ms": p99u},
                       "loaded": {"ok": len(loaded), "failed": loaded_errors,
                                  "p50_ms": p50l, "p99_ms": p99l},
                       "p99_ratio": ratio, "rss_unloaded_mb": rss_unloaded / 1e6,
                       "rss_max_mb": rss_mb, "rss_pass": rss_ok, "p99_pass": p99_ok}, f, indent=2)
    finally:
        if child and child.poll() is None:
            child.kill()
            child.wait()
        region.stop()
        if args.keep:
            log("  data kept in " + workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
