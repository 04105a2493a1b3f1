#!/usr/bin/python3
"""bench/isolation.py - the failover control plane under a saturated API
(issue 9, item 1; `make bench`).

Starts a two-region deployment with the witness (`tandem up`: eu primary, us
secondary streaming), then, for --duration seconds (30; --quick: 5), loads
eu's API with:

  - CPU-bound requests: 1 MiB JSON bodies, each on a new TLS connection
    (handshake + parse), from --cpu-clients processes;
  - heavy list queries (a filtered list over every record, limit 1000);
  - slow clients (--slow, 2,000; --quick: 200): half trickle a request body
    one byte a second, half ask for a large list and never read;
  - a steady writer, 50 writes/s, counting every refusal (anything but 201).

Prints, for eu: lease renewals sent late (tandem_lease_renewals_late_total),
elections (epoch changes; us's elections won, eu's step-downs), write
refusals, and the p99 of both loop-lag histograms over the load (from
/metrics before and after), with PASS/MISS against the targets (0 late, 0
elections, 0 refusals, control-loop p99 < 100 ms). Writes
build/bench/isolation.json.

Python 3.11 standard library only. Usage (from the repository root):

    /usr/bin/python3 bench/isolation.py --tandem build/tandem [--quick]
        [--duration S] [--slow N] [--cpu-clients N] [--keep]
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
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "build", "bench")
PER_ADDRESS = 200          # slow connections per 127.0.0.x source (under the per-address cap)
WRITE_RATE = 50            # writes/s of the steady writer
BIG_BODY = 1000 * 1000     # bytes of each CPU-bound request body
SEED_RECORDS = 300
CONTROL_P99_TARGET_S = 0.1


def log(msg):
    print(msg, flush=True)


def fail(msg):
    print("isolation bench: " + msg, file=sys.stderr, flush=True)
    sys.exit(1)


def free_port_base(count=8):
    base = 16000 + (os.getpid() * 17) % 16000  # below the ephemeral range (32768-)
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


class Deployment:
    """`tandem up` of a fresh directory: eu, us and the witness."""

    def __init__(self, tandem, workdir):
        self.tandem = tandem
        self.dir = os.path.join(workdir, "d")
        self.base = free_port_base()
        self.eu_port, self.eu_link, self.us_link = self.base, self.base + 2, self.base + 3
        self.eu_metrics = self.base + 5
        self.ca = os.path.join(self.dir, "certs", "ca.pem")
        self.proc = None

    def start(self):
        self.log_file = open(os.path.join(os.path.dirname(self.dir), "up.log"), "ab")
        self.proc = subprocess.Popen([self.tandem, "up", "--address", "127.0.0.1", "--data", self.dir, "--port-base", str(self.base)],
                                     stdout=self.log_file, stderr=self.log_file)
        deadline = time.monotonic() + 60
        while not os.path.exists(os.path.join(self.dir, "endpoints.json")):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                fail("tandem up did not start:\n" + self.tail())
            time.sleep(0.1)
        self.ctx = ssl.create_default_context(cafile=self.ca)
        self.admin = ssl.create_default_context(cafile=self.ca)
        self.admin.load_cert_chain(os.path.join(self.dir, "certs", "admin.pem"),
                                   os.path.join(self.dir, "certs", "admin.key"))
        deadline = time.monotonic() + 30
        while True:
            try:
                st = self.status("eu")
                us = self.status("us")
                if st["role"] == "primary" and st["lease"]["valid"] and us["link"]["state"] == "up":
                    return
            except (OSError, ValueError, KeyError):
                pass
            if time.monotonic() > deadline:
                fail("eu did not become a primary with a lease and us a streaming secondary:\n" + self.tail())
            time.sleep(0.1)

    def tail(self, n=30):
        out = []
        for name in ("region-eu.log", "region-us.log", "up.log"):
            for d in (self.dir, os.path.dirname(self.dir)):
                p = os.path.join(d, name)
                if os.path.exists(p):
                    with open(p, errors="replace") as f:
                        out.append("== %s ==\n%s" % (name, "".join(f.readlines()[-n:])))
        return "\n".join(out)

    def status(self, region):
        port = self.eu_link if region == "eu" else self.us_link
        c = http.client.HTTPSConnection("127.0.0.1", port, context=self.admin, timeout=5)
        try:
            c.request("GET", "/internal/v1/status")
            r = c.getresponse()
            return json.loads(r.read())
        finally:
            c.close()

    def metrics(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.eu_metrics, timeout=10) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def request(self, method, path, body=None, token=None):
        c = http.client.HTTPSConnection("127.0.0.1", self.eu_port, context=self.ctx, timeout=30)
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

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def histogram(metrics, name):
    prefix = '%s_bucket{region="eu",le="' % name
    out = sorted((float("inf") if k[len(prefix):-2] == "+Inf" else float(k[len(prefix):-2]), v)
                 for k, v in metrics.items() if k.startswith(prefix))
    return out


def p99(before, after, name):
    b, a = histogram(before, name), histogram(after, name)
    delta = [(le, y - x) for (le, y), (_, x) in zip(a, b)]
    total = delta[-1][1] if delta else 0
    if total <= 0:
        return float("nan"), 0
    for le, cum in delta:
        if cum >= 0.99 * total:
            return le, int(total)
    return float("inf"), int(total)


# --- load (child processes, so the measuring process stays responsive) ----

def child_cpu(port, ca, token, seconds):
    """1 MiB JSON bodies, each on a new TLS connection."""
    ctx = ssl.create_default_context(cafile=ca)
    body = json.dumps({"blob": "x" * (BIG_BODY - 20)}).encode()
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        try:
            c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
            c.request("POST", "/v1/collections/cpu/records", body=body,
                      headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
            c.getresponse().read()
            c.close()
            n += 1
        except (OSError, http.client.HTTPException):
            pass
    print(n, flush=True)


def child_lists(port, ca, token, seconds):
    """Heavy list queries on keep-alive connections."""
    ctx = ssl.create_default_context(cafile=ca)
    end = time.monotonic() + seconds
    n = 0
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
    while time.monotonic() < end:
        try:
            c.request("GET", "/v1/collections/seed/records?limit=1000&filter=n%20%3E%3D%200",
                      headers={"Authorization": "Bearer " + token})
            c.getresponse().read()
            n += 1
        except (OSError, http.client.HTTPException):
            c.close()
            c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
    print(n, flush=True)


def child_slow(port, ca, token, count, seconds):
    """count slow connections: half trickle a body, half never read."""
    ctx = ssl.create_default_context(cafile=ca)
    big = ("GET /v1/collections/seed/records?limit=1000 HTTP/1.1\r\nHost: x\r\n"
           "Authorization: Bearer %s\r\n\r\n" % token).encode()
    head = ("POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: 100000\r\n\r\n").encode()
    tricklers, readers, refused = [], [], 0
    for i in range(count):
        raw = socket.socket()
        try:
            raw.settimeout(30)
            if i % 2 == 0:
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            raw.bind(("127.0.0.%d" % (2 + i // PER_ADDRESS), 0))
            raw.connect(("127.0.0.1", port))
            s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
            if i % 2 == 0:
                s.sendall(big)
                readers.append(s)
            else:
                s.sendall(head + b" ")
                tricklers.append(s)
        except (OSError, ssl.SSLError):
            refused += 1
            raw.close()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(1)
        for s in list(tricklers):
            try:
                s.sendall(b" ")
            except (OSError, ssl.SSLError):
                tricklers.remove(s)
    print("%d %d" % (len(readers) + len(tricklers), refused), flush=True)


def writer(dep, token, seconds, result):
    """WRITE_RATE writes/s on keep-alive connections; refusals counted."""
    ok, refused = 0, []
    c = http.client.HTTPSConnection("127.0.0.1", dep.eu_port, context=dep.ctx, timeout=30)
    interval = 1.0 / WRITE_RATE
    next_at = time.monotonic()
    end = next_at + seconds
    while next_at < end:
        pause = next_at - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        next_at += interval
        try:
            c.request("POST", "/v1/collections/w/records", body=json.dumps({"n": ok}),
                      headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
            r = c.getresponse()
            data = r.read()
            if r.status == 201:
                ok += 1
            else:
                refused.append("%d %s" % (r.status, data[:120].decode(errors="replace")))
        except (OSError, http.client.HTTPException) as e:
            refused.append("connection: %s" % e)
            c.close()
            c = http.client.HTTPSConnection("127.0.0.1", dep.eu_port, context=dep.ctx, timeout=30)
    result["ok"], result["refused"] = ok, refused


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tandem", default=os.path.join(ROOT, "build", "tandem"))
    ap.add_argument("--quick", action="store_true", help="5 s, 200 slow clients")
    ap.add_argument("--duration", type=float, help="seconds of load (30; --quick: 5)")
    ap.add_argument("--slow", type=int, help="slow clients (2000; --quick: 200)")
    ap.add_argument("--cpu-clients", type=int, default=3, help="processes sending 1 MiB bodies (3)")
    ap.add_argument("--keep", action="store_true", help="keep the data directory")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args, ignored = ap.parse_known_args()
    if args.child:
        kind, port, ca, token = args.child[:4]
        rest = [float(x) for x in args.child[4:]]
        if kind == "cpu":
            child_cpu(int(port), ca, token, rest[0])
        elif kind == "lists":
            child_lists(int(port), ca, token, rest[0])
        else:
            child_slow(int(port), ca, token, int(rest[0]), rest[1])
        return
    if ignored:
        log("isolation bench: ignoring " + " ".join(ignored))
    duration = args.duration or (5.0 if args.quick else 30.0)
    slow = args.slow if args.slow is not None else (200 if args.quick else 2000)
    if raise_fd_limit(slow + 1024) < slow + 256:
        fail("the open file limit is too low for %d connections" % slow)
    workdir = tempfile.mkdtemp(prefix="tandem-isolation-")
    dep = Deployment(os.path.abspath(args.tandem), workdir)
    children = []
    try:
        dep.start()
        status, body = dep.request("POST", "/v1/auth/signup", {"email": "iso-%d@example.com" % os.getpid(),
                                                                "password": "correct horse battery"})
        if status != 201:
            fail("signup failed: %s %s" % (status, body))
        token = body["access_token"]
        for i in range(SEED_RECORDS):
            dep.request("POST", "/v1/collections/seed/records", {"n": i, "text": "y" * 2000}, token)
        epoch0 = dep.status("eu")["epoch"]
        before = dep.metrics()
        log("isolation bench: %.0f s on eu: %d CPU-bound clients (1 MiB bodies, new TLS each), 1 list client, "
            "%d slow clients, a writer at %d/s" % (duration, args.cpu_clients, slow, WRITE_RATE))
        me = os.path.abspath(__file__)
        common = [str(dep.eu_port), dep.ca, token]
        children.append(subprocess.Popen([sys.executable, me, "--child", "slow"] + common +
                                         [str(slow), str(duration + 2)], stdout=subprocess.PIPE, text=True))
        for _ in range(args.cpu_clients):
            children.append(subprocess.Popen([sys.executable, me, "--child", "cpu"] + common + [str(duration)],
                                             stdout=subprocess.PIPE, text=True))
        children.append(subprocess.Popen([sys.executable, me, "--child", "lists"] + common + [str(duration)],
                                         stdout=subprocess.PIPE, text=True))
        result = {}
        w = threading.Thread(target=writer, args=(dep, token, duration, result))
        w.start()
        w.join()
        outs = [c.communicate(timeout=120)[0].strip() for c in children]
        after = dep.metrics()
        st_eu, st_us = dep.status("eu"), dep.status("us")
        # (a build without the counter, such as the one before the control
        # thread, reports 0 late renewals: its elections still show)
        key = 'tandem_lease_renewals_late_total{region="eu"}'
        late = after.get(key, 0) - before.get(key, 0)
        elections = (st_eu["epoch"] - epoch0, st_us["failover"]["elections_won"], st_eu["failover"]["step_downs"])
        ctl_p99, ctl_n = p99(before, after, "tandem_control_loop_lag_seconds")
        api_p99, api_n = p99(before, after, "tandem_api_loop_lag_seconds")
        refusals = len(result.get("refused", []))
        cpu_done = sum(int(x or 0) for x in outs[1:1 + args.cpu_clients])
        ok = late == 0 and elections == (0, 0, 0) and refusals == 0 and ctl_p99 <= CONTROL_P99_TARGET_S
        log("  load: slow clients still open at the end / refused at connect: %s; 1 MiB requests %d; "
            "list queries %s"
            % (outs[0], cpu_done, outs[-1]))
        log("  late lease renewals: %d" % late)
        log("  elections: epoch +%d, us elections won %d, eu step-downs %d" % elections)
        log("  writes: %d accepted, %d refused%s" % (result.get("ok", 0), refusals,
                                                     (" (first: %s)" % result["refused"][0]) if refusals else ""))
        log("  control loop lag p99 <= %gs (%d samples); API loop lag p99 <= %gs (%d samples)"
            % (ctl_p99, ctl_n, api_p99, api_n))
        log("  %s (targets: 0 late renewals, 0 elections, 0 refusals, control p99 < %g s)"
            % ("PASS" if ok else "MISS", CONTROL_P99_TARGET_S))
        os.makedirs(OUT_DIR, exist_ok=True)
        with open(os.path.join(OUT_DIR, "isolation.json"), "w") as f:
            json.dump({"duration_s": duration, "slow_clients": slow, "cpu_clients": args.cpu_clients,
                       "late_renewals": late, "epoch_changes": elections[0], "elections_won_us": elections[1],
                       "step_downs_eu": elections[2], "writes_ok": result.get("ok", 0),
                       "write_refusals": refusals, "control_lag_p99_s": ctl_p99, "api_lag_p99_s": api_p99,
                       "pass": ok}, f, indent=2)
    finally:
        for c in children:
            if c.poll() is None:
                c.kill()
                c.wait()
        dep.stop()
        if args.keep:
            log("  data kept in " + workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
