#!/usr/bin/python3
"""`tandem dns` next to Knot DNS (Debian's knotd) serving the same static zone
with the same number of threads, measured with dnsperf (Debian) in the same
run: queries per second and latency, medians of alternating rounds, and the
ratio (issue 11's target: tandem >= 0.8x Knot).

    /usr/bin/python3 bench/dns.py [--tandem build/tandem] [--rounds 3]
        [--duration 10] [--threads 2] [--quick] [--keep]

Both servers listen on 127.0.0.1 (their own ports), answer the same query
mix (answers, a CNAME chain, NXDOMAIN, NODATA, a wildcard) from the same
records; tandem's response rate limiting is off for the run (rrl_rate = 0;
Knot's is off by default): one client address asking at full speed is what
RRL exists to stop. dnsperf runs with 4 clients and 2 threads for
--duration seconds per round. --quick (make bench-smoke): 1 round of 3 s.
Results: build/bench/dns.json (--quick: build/bench/quick/dns.json).
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORDS = [
    ("@", "NS", "ns1"), ("ns1", "A", "127.0.0.5"), ("api", "A", "127.0.0.2"), ("api", "AAAA", "::1"),
    ("www", "CNAME", "api"), ("*.wild", "A", "127.0.0.9"), ("@", "MX", "10 mail.example.com."),
    ("@", "TXT", '"v=spf1 -all"'), ("a.b.ent", "A", "127.0.0.10"),
]
QUERIES = ["api.tandem.test A", "api.tandem.test AAAA", "www.tandem.test A", "nothere.tandem.test A",
           "api.tandem.test TXT", "x.wild.tandem.test A", "tandem.test MX", "b.ent.tandem.test A"]


def fail(msg):
    print("dns bench: " + msg, file=sys.stderr, flush=True)
    sys.exit(1)


def free_port():
    base = 16000 + (os.getpid() * 19) % 16000  # below the ephemeral range (32768-)
    while True:
        ok = True
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            s = socket.socket(socket.AF_INET, kind)
            try:
                s.bind(("127.0.0.1", base))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return base
        base = base + 1 if base + 1 < 32768 else 16000


def wait_answer(port, what, timeout=15):
    """A UDP query for api.tandem.test A until one answers."""
    q = bytes.fromhex("beef0000000100000000000003617069" "0674616e64656d0474657374" "0000010001")
    deadline = time.time() + timeout
    while time.time() < deadline:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.3)
        try:
            s.sendto(q, ("127.0.0.1", port))
            if s.recv(512)[:2] == b"\xbe\xef":
                return
        except OSError:
            pass
        finally:
            s.close()
        time.sleep(0.1)
    fail("%s does not answer on port %d" % (what, port))


def start_tandem(tandem, work, threads):
    data = os.path.join(work, "tandem")
    port = free_port()
    subprocess.run([tandem, "init", "--address", "127.0.0.1", "--data", data, "--port-base", "17000"], check=True,
                   capture_output=True)
    conf = os.path.join(data, "tandem.ini")
    # the generated config's own zone and DNS servers (the local
    # deployment's) give way to the benchmark's
    with open(conf) as f:
        text = re.sub(r"(?ms)^\[(zone|dns) [^\]]*\].*?(?=^\[|\Z)", "", f.read())
    with open(conf, "w") as f:
        f.write(text + "\n[zone tandem.test]\nsoa = ns1 hostmaster 1 3600 600 86400 30\nttl = 300\n")
        for owner, t, rdata in RECORDS:
            f.write("record = %s %s %s\n" % (owner, t, rdata))
        f.write("\n[dns bench]\nlisten = 127.0.0.1:%d\nthreads = %d\nrrl_rate = 0\n" % (port, threads))
    log = open(os.path.join(work, "tandem-dns.log"), "w")
    p = subprocess.Popen([tandem, "dns", "--config", conf, "--name", "bench"], stdout=log,
                         stderr=subprocess.STDOUT)
    wait_answer(port, "tandem dns")
    return p, port


def start_knot(work, threads):
    port = free_port() + 1
    kd = os.path.join(work, "knot")
    os.makedirs(kd, exist_ok=True)
    with open(os.path.join(kd, "tandem.test.zone"), "w") as f:
        f.write("$ORIGIN tandem.test.\n$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 86400 30\n")
        for owner, t, rdata in RECORDS:
            f.write("%s %s %s\n" % (owner, t, rdata))
    conf = os.path.join(kd, "knot.conf")
    with open(conf, "w") as f:
        f.write("server:\n  rundir: %s\n  listen: 127.0.0.1@%d\n  udp-workers: %d\n  tcp-workers: 1\n"
                "  background-workers: 1\n" % (kd, port, threads))
        f.write("database:\n  storage: %s\n" % kd)
        f.write("log:\n  - target: stderr\n    any: warning\n")
        f.write("zone:\n  - domain: tandem.test\n    file: %s\n" % os.path.join(kd, "tandem.test.zone"))
    log = open(os.path.join(work, "knot.log"), "w")
    p = subprocess.Popen([shutil.which("knotd") or "/usr/sbin/knotd", "-c", conf], stdout=log,
                         stderr=subprocess.STDOUT)
    wait_answer(port, "knotd")
    return p, port


def dnsperf(port, qfile, duration):
    out = subprocess.run(["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", qfile, "-l", str(duration),
                          "-c", "4", "-T", "2", "-q", "500"], capture_output=True, text=True,
                         timeout=duration + 60).stdout
    qps = re.search(r"Queries per second:\s+([\d.]+)", out)
    lat = re.search(r"Average Latency \(s\):\s+([\d.]+)", out)
    lost = re.search(r"Queries lost:\s+(\d+)", out)
    if not qps:
        fail("dnsperf said:\n" + out)
    return {"qps": float(qps.group(1)), "avg_latency_ms": float(lat.group(1)) * 1000 if lat else None,
            "lost": int(lost.group(1)) if lost else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tandem", default="build/tandem")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--duration", type=int)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (configs, logs)")
    a = ap.parse_args()
    a.rounds = a.rounds or (1 if a.quick else 3)
    a.duration = a.duration or (3 if a.quick else 10)
    for tool in ("dnsperf", "knotd"):
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            fail("%s not found (Debian packages dnsperf and knot: deps/bench.txt)" % tool)
    work = tempfile.mkdtemp(prefix="tandem-dns-bench-")
    procs = []
    try:
        tp, tport = start_tandem(os.path.abspath(a.tandem), work, a.threads)
        procs.append(tp)
        kp, kport = start_knot(work, a.threads)
        procs.append(kp)
        qfile = os.path.join(work, "queries.txt")
        with open(qfile, "w") as f:
            f.write("\n".join(QUERIES) + "\n")
        rows = {"tandem": [], "knot": []}
        for r in range(a.rounds):
            for name, port in (("tandem", tport), ("knot", kport)) if r % 2 == 0 else (("knot", kport), ("tandem", tport)):
                res = dnsperf(port, qfile, a.duration)
                rows[name].append(res)
                print("  round %d  %-6s %9.0f q/s  avg %.3f ms  lost %s" % (r + 1, name, res["qps"],
                      res["avg_latency_ms"] or 0, res["lost"]), flush=True)
        med = {n: statistics.median(x["qps"] for x in v) for n, v in rows.items()}
        ratio = med["tandem"] / med["knot"] if med["knot"] else 0
        print("static zone, %d threads each: tandem %.0f q/s, knot %.0f q/s (medians of %d): ratio %.2f  %s"
              " (target >= 0.8)" % (a.threads, med["tandem"], med["knot"], a.rounds, ratio,
                                    "PASS" if ratio >= 0.8 else "MISS"))
        out_dir = os.path.join(ROOT, "build", "bench", "quick" if a.quick else "")
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "dns.json"), "w") as f:
            json.dump({"threads": a.threads, "duration_s": a.duration, "rounds": rows, "median_qps": med,
                       "ratio": ratio}, f, indent=1)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        if a.keep:
            print("work dir kept: " + work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
