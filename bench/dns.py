#!/usr/bin/python3
"""`tandem dns` next to Knot DNS (Debian's knotd) serving the same static zone
with the same number of threads, measured with dnsperf (Debian) in the same
run: queries per second and latency, medians of alternating rounds, and the
ratio (issue 11's target: tandem >= 0.8x Knot). Then (issue 11 section 6)
tandem answering latency-routed names with a Client Subnet in every query
and DNSSEC signing on (DO=1, the zone signed online), as a ratio to Knot's
static figure (target >= 0.5x), and the p99 latency of each at a fixed
rate (dnsperf -v, every answer's latency); and the health checks'
detection time: a region killed (kill -9) 10 times under a query load, the
time until answers for its clients leave it out (median and max; bound
interval x failures + 1 s with the defaults 1 s x 3).

    /usr/bin/python3 bench/dns.py [--tandem build/tandem] [--rounds 3]
        [--duration 10] [--threads 2] [--quick] [--keep] [--no-health]
        [--kills 10] [--p99-rate 20000] [--health-only]

A last figure is the worst case of online signing: random names (each a
compact denial at its own name, so no signature comes from the cache).

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
import random
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


# the routed run: api latency-routed, the zone signed; clients of
# 10.2.0.0/16 prefer us (every query carries ECS 10.2.7.0/24)
ROUTED_ZONE = ("dnssec = on\n"
               "route = api latency eu=127.0.0.2 us=127.0.0.3,::3 ttl=10\n")
ROUTED_MAP = "latency_map = 10.1.0.0/16 eu us, 10.2.0.0/16 us eu, default eu us\n"
ECS_OPTION = "8:000118000a0207"  # family 1, source /24, scope 0, 10.2.7


def start_tandem(tandem, work, threads, routed=False):
    data = os.path.join(work, "tandem-routed" if routed else "tandem")
    port = free_port() + (2 if routed else 0)
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
            if not (routed and owner == "api" and t in ("A", "AAAA")):
                f.write("record = %s %s %s\n" % (owner, t, rdata))
        if routed:
            f.write(ROUTED_ZONE)
        f.write("\n[dns bench]\nlisten = 127.0.0.1:%d\nthreads = %d\nrrl_rate = 0\n" % (port, threads))
        if routed:
            # the regions are not started: checks every 10 minutes keep
            # them healthy, so the latency map decides every answer
            f.write(ROUTED_MAP + "health_interval_ms = 600000\n")
    log = open(os.path.join(work, "tandem-routed-dns.log" if routed else "tandem-dns.log"), "w")
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


def dnsperf(port, qfile, duration, extra=()):
    out = subprocess.run(["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", qfile, "-l", str(duration),
                          "-c", "4", "-T", "2", "-q", "500", *extra], capture_output=True, text=True,
                         timeout=duration + 60).stdout
    qps = re.search(r"Queries per second:\s+([\d.]+)", out)
    lat = re.search(r"Average Latency \(s\):\s+([\d.]+)", out)
    lost = re.search(r"Queries lost:\s+(\d+)", out)
    if not qps:
        fail("dnsperf said:\n" + out)
    return {"qps": float(qps.group(1)), "avg_latency_ms": float(lat.group(1)) * 1000 if lat else None,
            "lost": int(lost.group(1)) if lost else None}


def latency_p99(port, qfile, rate, duration, extra=()):
    """p50/p99/max of every answer's latency at a fixed rate (dnsperf -Q,
    -v prints each answer's latency in seconds)."""
    out = subprocess.run(["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", qfile, "-l", str(duration),
                          "-c", "4", "-T", "1", "-Q", str(rate), "-v", *extra], capture_output=True, text=True,
                         timeout=duration + 60).stdout
    lat = sorted(float(m.group(1)) * 1000 for m in re.finditer(r"^> \S+ .* ([\d.]+)$", out, re.M))
    if len(lat) < 100:
        fail("dnsperf -v gave %d latencies:\n%s" % (len(lat), out[-2000:]))
    return {"n": len(lat), "p50_ms": lat[len(lat) // 2], "p99_ms": lat[int(len(lat) * 0.99)], "max_ms": lat[-1]}


# --- health detection: kill a region under a query load ---

def dns_query_ecs(qid, subnet, dnssec_ok=False):
    """api.tandem.test A with EDNS and ECS subnet/24 (IPv4), as bytes."""
    a = bytes(int(x) for x in subnet.split(".")[:3])
    opt = b"\x00\x08" + (4 + 3).to_bytes(2, "big") + b"\x00\x01\x18\x00" + a
    return (qid.to_bytes(2, "big") + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x01"
            + b"\x03api\x06tandem\x04test\x00\x00\x01\x00\x01"
            + b"\x00\x00\x29\x04\xd0\x00\x00" + (b"\x80" if dnssec_ok else b"\x00") + b"\x00"
            + len(opt).to_bytes(2, "big") + opt)


def answer_addresses(msg, types=None):
    """The A addresses of an answer (names compressed to the question);
    the types of its records into types (a list) when given."""
    an = int.from_bytes(msg[6:8], "big")
    off = 12
    while msg[off]:
        off += msg[off] + 1
    off += 5
    out = []
    for _ in range(an):
        off += 2 if msg[off] & 0xc0 == 0xc0 else 0  # (the owner is a pointer to the question)
        rtype, rdlen = int.from_bytes(msg[off:off + 2], "big"), int.from_bytes(msg[off + 8:off + 10], "big")
        if types is not None:
            types.append(rtype)
        if rtype == 1 and rdlen == 4:
            out.append(".".join(str(b) for b in msg[off + 10:off + 14]))
        off += 10 + rdlen
    return sorted(out)


def health_detection(tandem, work, kills):
    import ssl
    import threading
    import urllib.request
    data = os.path.join(work, "health")
    base = free_port() + 100
    subprocess.run([tandem, "init", "--address", "127.0.0.1", "--data", data, "--port-base", str(base)],
                   check=True, capture_output=True)
    conf = os.path.join(data, "tandem.ini")
    dport = base + 20
    with open(conf) as f:
        text = re.sub(r"(?ms)^\[(zone|dns) [^\]]*\].*?(?=^\[|\Z)", "", f.read())
        text = re.sub(r"(?ms)^\[witness\].*?(?=^\[|\Z)", "", text)  # two voters: fixed roles
    with open(conf, "w") as f:
        f.write(text + "\n[zone tandem.test]\nsoa = ns1 hostmaster 1 3600 600 86400 30\n"
                "route = api latency eu=127.0.0.2 us=127.0.0.3 ttl=10\n"
                "\n[dns h]\nlisten = 127.0.0.1:%d\nthreads = 2\nrrl_rate = 0\n" % dport + ROUTED_MAP +
                "health_interval_ms = 1000\nhealth_timeout_ms = 1000\nhealth_failures = 3\nhealth_recoveries = 2\n")
    ctx = ssl.create_default_context(cafile=os.path.join(data, "certs", "ca.pem"))
    procs = {}

    def start_region(name, port):
        log = open(os.path.join(work, "region-%s.log" % name), "a")
        procs[name] = subprocess.Popen([tandem, "region", "--config", conf, "--region", name], stdout=log,
                                       stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with urllib.request.urlopen("https://127.0.0.1:%d/healthz" % port, context=ctx, timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        fail("region %s did not start" % name)

    dns_log = open(os.path.join(work, "health-dns.log"), "w")
    start_region("eu", base)
    start_region("us", base + 1)
    procs["dns"] = subprocess.Popen([tandem, "dns", "--config", conf, "--name", "h"], stdout=dns_log,
                                    stderr=subprocess.STDOUT)
    wait_answer(dport, "tandem dns (health)")
    state = {"addrs": None, "queries": 0, "stop": False}

    def load():  # one client of a us subnet asking all the time
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.5)
        qid = 0
        while not state["stop"]:
            qid = (qid + 1) & 0xffff
            try:
                s.sendto(dns_query_ecs(qid, "10.2.7.0"), ("127.0.0.1", dport))
                m = s.recv(4096)
                if m[:2] == qid.to_bytes(2, "big"):
                    state["addrs"] = answer_addresses(m)
                    state["queries"] += 1
            except OSError:
                pass
        s.close()

    def wait_for(addrs, timeout):
        t0 = time.time()
        while state["addrs"] != addrs:
            if time.time() - t0 > timeout:
                fail("answers stayed %s, not %s" % (state["addrs"], addrs))
            time.sleep(0.005)
        return time.time() - t0

    t = threading.Thread(target=load)
    t.start()
    times = []
    try:
        wait_for(["127.0.0.3"], 20)
        for i in range(kills):
            # at a random phase of the checks' interval (killing right
            # after the recovery was seen would always hit the same phase)
            time.sleep(random.random() * 1.0)
            procs["us"].kill()  # SIGKILL: no goodbye, as a crash or a cut link
            t_kill = time.time()
            procs["us"].wait()
            wait_for(["127.0.0.2"], 15)
            took = time.time() - t_kill
            times.append(took)
            start_region("us", base + 1)
            back = wait_for(["127.0.0.3"], 20)
            print("  kill %2d: us withdrawn after %.2f s, back %.2f s after its restart (%d queries so far)"
                  % (i + 1, took, back, state["queries"]), flush=True)
    finally:
        state["stop"] = True
        t.join()
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
        dns_log.close()
    return {"kills": kills, "detection_s": times, "median_s": statistics.median(times), "max_s": max(times),
            "bound_s": 1.0 * 3 + 1, "queries": state["queries"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tandem", default="build/tandem")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--duration", type=int)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (configs, logs)")
    ap.add_argument("--no-health", action="store_true", help="skip the health detection run")
    ap.add_argument("--health-only", action="store_true", help="only the health detection run")
    ap.add_argument("--kills", type=int)
    ap.add_argument("--p99-rate", type=int, default=20000, help="queries/s of the latency runs")
    a = ap.parse_args()
    a.rounds = a.rounds or (1 if a.quick else 3)
    a.duration = a.duration or (3 if a.quick else 10)
    for tool in ("dnsperf", "knotd"):
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            fail("%s not found (Debian packages dnsperf and knot: deps/bench.txt)" % tool)
    work = tempfile.mkdtemp(prefix="tandem-dns-bench-")
    procs = []
    if a.health_only:
        try:
            h = health_detection(os.path.abspath(a.tandem), work, a.kills or 10)
            print("health detection over %d kills: median %.2f s, max %.2f s (bound %.1f s)  %s"
                  % (h["kills"], h["median_s"], h["max_s"], h["bound_s"],
                     "PASS" if h["max_s"] <= h["bound_s"] else "MISS"), flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return 0
    try:
        tp, tport = start_tandem(os.path.abspath(a.tandem), work, a.threads)
        procs.append(tp)
        rp, rport = start_tandem(os.path.abspath(a.tandem), work, a.threads, routed=True)
        procs.append(rp)
        kp, kport = start_knot(work, a.threads)
        procs.append(kp)
        # the routed instance answers a 10.2/16 client with us, signed
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(2)
        s.sendto(dns_query_ecs(7, "10.2.7.0", dnssec_ok=True), ("127.0.0.1", rport))
        types = []
        got = answer_addresses(s.recv(4096), types)
        s.close()
        if got != ["127.0.0.3"] or 46 not in types:
            fail("the routed instance answered %s with types %s, not us's address and its RRSIG" % (got, types))
        qfile = os.path.join(work, "queries.txt")
        with open(qfile, "w") as f:
            f.write("\n".join(QUERIES) + "\n")
        # the routed+ECS+DO run asks the same mix (api is routed there)
        runs = {"tandem": (tport, ()), "knot": (kport, ()), "tandem_routed_ecs_do": (rport, ("-D", "-E", ECS_OPTION))}
        rows = {n: [] for n in runs}
        order = list(runs)
        for r in range(a.rounds):
            for name in order[r % 3:] + order[:r % 3]:  # each goes first once in 3 rounds
                port, extra = runs[name]
                res = dnsperf(port, qfile, a.duration, extra)
                rows[name].append(res)
                print("  round %d  %-20s %9.0f q/s  avg %.3f ms  lost %s" % (r + 1, name, res["qps"],
                      res["avg_latency_ms"] or 0, res["lost"]), flush=True)
        med = {n: statistics.median(x["qps"] for x in v) for n, v in rows.items()}
        ratio = med["tandem"] / med["knot"] if med["knot"] else 0
        routed_ratio = med["tandem_routed_ecs_do"] / med["knot"] if med["knot"] else 0
        print("static zone, %d threads each: tandem %.0f q/s, knot %.0f q/s (medians of %d): ratio %.2f  %s"
              " (target >= 0.8)" % (a.threads, med["tandem"], med["knot"], a.rounds, ratio,
                                    "PASS" if ratio >= 0.8 else "MISS"))
        print("routed + ECS + DNSSEC (DO=1): tandem %.0f q/s = %.2fx knot's static  %s (target >= 0.5)"
              % (med["tandem_routed_ecs_do"], routed_ratio, "PASS" if routed_ratio >= 0.5 else "MISS"))
        # the worst case of online signing: random names (compact denials
        # at the query name), so that every answer is signed (no cache hit)
        rfile = os.path.join(work, "random.txt")
        with open(rfile, "w") as f:
            f.write("".join("r%08x.tandem.test A\n" % int.from_bytes(os.urandom(4), "big") for _ in range(400000)))
        uncached = dnsperf(rport, rfile, a.duration, ("-D", "-E", ECS_OPTION, "-n", "1"))
        print("  every answer signed (random names, DO=1): %.0f q/s  avg %.3f ms" %
              (uncached["qps"], uncached["avg_latency_ms"] or 0), flush=True)
        lat = {}
        for name in order:
            port, extra = runs[name]
            lat[name] = latency_p99(port, qfile, a.p99_rate, 2 if a.quick else 5, extra)
            print("  latency at %d q/s  %-20s p50 %.3f ms  p99 %.3f ms  max %.3f ms  (%d answers)"
                  % (a.p99_rate, name, lat[name]["p50_ms"], lat[name]["p99_ms"], lat[name]["max_ms"],
                     lat[name]["n"]), flush=True)
        for p in procs:
            p.send_signal(signal.SIGTERM)
            p.wait(10)
        health = None
        if not a.no_health:
            health = health_detection(os.path.abspath(a.tandem), work, a.kills or (3 if a.quick else 10))
            print("health detection over %d kills: median %.2f s, max %.2f s (bound %.1f s)  %s"
                  % (health["kills"], health["median_s"], health["max_s"], health["bound_s"],
                     "PASS" if health["max_s"] <= health["bound_s"] else "MISS"), flush=True)
        out_dir = os.path.join(ROOT, "build", "bench", "quick" if a.quick else "")
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "dns.json"), "w") as f:
            json.dump({"threads": a.threads, "duration_s": a.duration, "rounds": rows, "median_qps": med,
                       "ratio": ratio, "routed_ecs_do_ratio": routed_ratio, "latency": lat,
                       "signed_uncached": uncached,
                       "p99_rate": a.p99_rate, "health": health}, f, indent=1)
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
