#!/usr/bin/python3
"""bench/edge.py - the edge's benchmarks (issue 12 section 6), tandem and its
baseline back to back in one run:

  HIT   cache hits of a 1 KB object over TLS, wrk -t2 -c64 (bench/wrk.lua),
        through `tandem edge` and through nginx with proxy_cache (Debian
        nginx-light, 1 worker as the edge's one event loop; workers auto for
        information), both in front of the same origin (nginx, plain HTTP,
        serving the file with Cache-Control: public, max-age=3600). Each is
        warmed first and checked to answer from its cache. Target: >= 1.0x
        nginx with 1 worker.
  H2    the same hits over HTTP/2 with h2load (-c 64 -m 10: 64 connections,
        10 streams each), through the edge and through nginx (http2 on the
        same proxy_cache server): the ratio, reported (no target of its own).
  MISS  the latency a miss adds: a region's /healthz (no-store, so every
        request is a miss) asked one at a time over one keep-alive TLS
        connection, directly and through the edge; p50 and p99 of each and
        the difference.
  KILL  GETs through the edge (wrk -t2 -c16, /healthz: never cached, every
        request reaches a region) in front of two regions, eu tried first;
        eu is killed (SIGKILL) a third of the way in: the requests that
        failed (non-2xx and socket errors). Target: 0.

    /usr/bin/python3 bench/edge.py [--tandem build/tandem] [--rounds 3]
        [--duration 10] [--quick] [--keep] [--out F]

--quick (make bench-smoke): 1 round of 3 s, no nginx auto. Results:
build/bench/edge.json (--quick: build/bench/quick/). Exits non-zero only on
errors (a missed target is reported as MISS).
"""
import argparse
import datetime
import http.client
import json
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_DIR = os.path.join(ROOT, "bench")
OUT_DIR = os.path.join(ROOT, "build", "bench")
sys.path.insert(0, BENCH_DIR)
import run as common  # noqa: E402  (bench/run.py: Region, Server, wrk, CPU meter)

OBJECT = b"x" * 1000 + b"\n" * 24  # 1 KiB
TARGET_HIT = 1.0


def log(msg):
    print("edge bench: " + msg, file=sys.stderr, flush=True)


def fail(msg):
    log("ERROR: " + msg)
    sys.exit(1)


def nginx_common(d):
    # started as root, nginx's workers would run as nobody, who cannot read
    # our 0700 work directory (nor write the cache there): they run as we do
    user = "user root;\n" if os.geteuid() == 0 else ""
    return user + f"""daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{
    worker_connections 4096;
}}
"""


def nginx_http_common(d):
    return f"""    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_timeout 60s;
    keepalive_requests 10000000;
"""


def start_nginx(name, d, conf_text, port, tls_ctx):
    os.makedirs(d, exist_ok=True)
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(conf_text)
    srv = common.Server(name, ["/usr/sbin/nginx", "-e", os.path.join(d, "error.log"), "-c", conf, "-p", d],
                        os.path.join(d, "stderr.log"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not srv.alive():
            fail("%s exited at start:\n%s" % (name, srv.tail()))
        try:
            status, _, _ = get(port, "/obj", tls_ctx)
            if status == 200:
                return srv
        except OSError:
            pass
        time.sleep(0.1)
    fail("%s did not answer (its log: %s)" % (name, os.path.join(d, "error.log")))


def get(port, path, ctx=None, conn=None):
    """(status, headers dict lowercased, body) of one GET."""
    own = conn is None
    if own:
        conn = (http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10) if ctx
                else http.client.HTTPConnection("127.0.0.1", port, timeout=10))
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        if own:
            conn.close()


def origin_conf(d, port, root):
    return nginx_common(d) + "worker_processes 1;\nhttp {\n" + nginx_http_common(d) + f"""    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{
            add_header Cache-Control "public, max-age=3600";
        }}
    }}
}}
"""


def proxy_conf(d, port, origin_port, cert, key, workers):
    return nginx_common(d) + f"worker_processes {workers};\nhttp {{\n" + nginx_http_common(d) + f"""    proxy_cache_path {d}/cache levels=1:2 keys_zone=bench:10m max_size=64m inactive=60m use_temp_path=off;
    upstream origin {{
        server 127.0.0.1:{origin_port};
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache bench;
            add_header X-Cache $upstream_cache_status;
        }}
    }}
}}
"""


def add_edge(config, name, port, origins, extra=""):
    with open(config, "a") as f:
        f.write("\n[edge %s]\nlisten = 127.0.0.1:%d\ntls_cert = certs/eu.pem\ntls_key = certs/eu.key\n"
                "origins = %s\nprobe_interval_ms = 500\n%s" % (name, port, origins, extra))


def start_edge(tandem, config, name, port, ctx, workdir, path="/healthz"):
    srv = common.Server("tandem edge %s" % name, [tandem, "edge", "--config", config, "--name", name],
                        os.path.join(workdir, "edge-%s.log" % name))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if not srv.alive():
            fail("the edge exited at start:\n" + srv.tail())
        try:
            if get(port, path, ctx)[0] == 200:
                return srv
        except OSError:
            pass
        time.sleep(0.1)
    fail("the edge did not answer:\n" + srv.tail())


def start_region(tandem, config, name, port, ctx, workdir):
    srv = common.Server("tandem region %s" % name, [tandem, "region", "--config", config, "--region", name],
                        os.path.join(workdir, "region-%s.log" % name))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not srv.alive():
            fail("region %s exited at start:\n%s" % (name, srv.tail()))
        try:
            if get(port, "/healthz", ctx)[0] == 200:
                return srv
        except OSError:
            pass
        time.sleep(0.1)
    fail("region %s did not answer:\n%s" % (name, srv.tail()))


def sequential_latency(port, ctx, n):
    """Milliseconds of n GET /healthz, one at a time on one connection."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    out = []
    try:
        get(port, "/healthz", conn=conn)  # the handshake, out of the figures
        for _ in range(n):
            t0 = time.perf_counter()
            status, _, _ = get(port, "/healthz", conn=conn)
            out.append((time.perf_counter() - t0) * 1000.0)
            if status != 200:
                fail("GET /healthz answered %d" % status)
    finally:
        conn.close()
    return out


def run_h2load(url, duration, connections, streams, log_path, server):
    """h2load over TLS (ALPN h2) for duration seconds: req/s, and the
    requests that did not get a 2xx."""
    argv = ["h2load", "-D", str(duration), "-c", str(connections), "-m", str(streams), "-t", "2", url]
    with common.CpuMeter(server) as cpu:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 120)
    with open(log_path, "a") as f:
        f.write("$ %s\n%s%s\n" % (" ".join(argv), r.stdout, r.stderr))
    out = {"rps": None, "failed": None, "errored": None, "non_2xx": None, **cpu.result}
    for line in r.stdout.splitlines():
        line = line.strip()
        if line.startswith("finished in"):  # finished in 3.00s, 41234.33 req/s, 12.34MB/s
            out["rps"] = float(line.split(",")[1].split()[0])
        elif line.startswith("requests:"):  # requests: N total, N started, N done, N succeeded, N failed, N errored
            parts = dict((p.split()[1], int(p.split()[0])) for p in line[len("requests:"):].split(","))
            out["failed"], out["errored"] = parts.get("failed"), parts.get("errored")
        elif line.startswith("status codes:"):  # status codes: N 2xx, N 3xx, N 4xx, N 5xx
            codes = dict((p.split()[1], int(p.split()[0])) for p in line[len("status codes:"):].split(","))
            out["non_2xx"] = sum(v for k, v in codes.items() if k != "2xx")
    if r.returncode != 0 or out["rps"] is None:
        fail("h2load failed (%d): %s" % (r.returncode, (r.stdout + r.stderr)[-800:]))
    return out


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tandem", default=os.path.join(ROOT, "build", "tandem"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 round of 3 s, no nginx auto")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--out")
    a = ap.parse_args()
    if a.quick:
        a.rounds, a.duration = 1, 3
    for tool in ("wrk", "/usr/sbin/nginx"):
        if not shutil.which(tool):
            fail("%s is missing (deps/bench.txt: make bench installs it)" % tool)
    common.raise_fd_limit(16384)
    workdir = tempfile.mkdtemp(prefix="tandem-bench-edge-")
    wrk_log = os.path.join(workdir, "wrk.log")
    servers = []
    result = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "rounds": a.rounds, "duration_s": a.duration, "connections": a.connections,
              "loadavg_before": common.loadavg()}
    try:
        # a deployment's config and certificates (both regions, no witness: fixed roles)
        dep = common.Region(a.tandem, workdir, "deploy")
        config, ca, certs = dep.config, dep.ca, dep.certs
        ctx = ssl.create_default_context(cafile=ca)
        insecure = ssl.create_default_context()
        insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE
        base = dep.port
        eu_port, us_port = base, base + 1

        # ---------------------------------------------------------------- HIT
        root = os.path.join(workdir, "origin-root")
        os.makedirs(root)
        with open(os.path.join(root, "obj"), "wb") as f:
            f.write(OBJECT)
        origin_port = common.free_port()
        servers.append(start_nginx("origin", os.path.join(workdir, "origin"),
                                   origin_conf(os.path.join(workdir, "origin"), origin_port, root), origin_port,
                                   None))
        edge_port = common.free_port()
        add_edge(config, "hit", edge_port, "http://127.0.0.1:%d" % origin_port)
        edge = start_edge(a.tandem, config, "hit", edge_port, insecure, workdir, path="/obj")
        servers.append(edge)
        proxies = [("tandem_edge", "tandem edge", edge_port, edge)]
        for workers in ([1] if a.quick else [1, "auto"]):
            d = os.path.join(workdir, "nginx-%s" % workers)
            port = common.free_port()
            srv = start_nginx("nginx proxy_cache (%s)" % workers, d,
                              proxy_conf(d, port, origin_port, os.path.join(certs, "eu.pem"),
                                         os.path.join(certs, "eu.key"), workers), port, insecure)
            servers.append(srv)
            proxies.append(("nginx_%s" % workers, "nginx proxy_cache, %s worker%s" % (workers, "" if workers == 1 else "s"),
                            port, srv))
        for key, label, port, _ in proxies:  # warm, and check that hits are hits
            get(port, "/obj", insecure)
            status, h, body = get(port, "/obj", insecure)
            if status != 200 or body != OBJECT or h.get("x-cache", "").lower() != "hit":
                fail("%s: GET /obj after a warm-up: %d, X-Cache %r" % (label, status, h.get("x-cache")))
        hits = {key: [] for key, _, _, _ in proxies}
        for rnd in range(a.rounds):
            for key, label, port, srv in proxies:
                r = common.run_wrk("https://127.0.0.1:%d/obj" % port, a.duration, a.threads, a.connections, {},
                                   wrk_log, srv)
                if r["error_count"]:
                    fail("%s: %d errors under load: %s" % (label, r["error_count"], r["errors"]))
                hits[key].append(r)
                log("round %d: %-32s %9.0f req/s  p50 %.2f ms  p99 %.2f ms  (server %.2f cores)" % (
                    rnd + 1, label, r["rps"], r["p50_ms"], r["p99_ms"], r["server_cpu"] or 0))
        med = {k: statistics.median(x["rps"] for x in v) for k, v in hits.items()}
        ratio = med["tandem_edge"] / med["nginx_1"] if med["nginx_1"] else None
        h2 = {"tandem_edge": [], "nginx_1": []}
        if shutil.which("h2load"):
            for rnd in range(a.rounds):
                for key, label, port, srv in proxies:
                    if key not in h2:
                        continue
                    r = run_h2load("https://127.0.0.1:%d/obj" % port, a.duration, a.connections, 10, wrk_log, srv)
                    if r["failed"] or r["errored"] or r["non_2xx"]:
                        fail("%s over HTTP/2: %s" % (label, r))
                    h2[key].append(r)
                    log("round %d: %-32s %9.0f req/s over HTTP/2 (server %.2f cores)" % (
                        rnd + 1, label, r["rps"], r["server_cpu"] or 0))
            h2med = {k: statistics.median(x["rps"] for x in v) for k, v in h2.items()}
            result["h2"] = {"median_rps": h2med, "streams_per_connection": 10,
                            "ratio_vs_nginx_1": h2med["tandem_edge"] / h2med["nginx_1"] if h2med["nginx_1"] else None,
                            "runs": h2}
        result["hit"] = {"object_bytes": len(OBJECT), "median_rps": med, "ratio_vs_nginx_1": ratio,
                         "target": TARGET_HIT, "met": ratio is not None and ratio >= TARGET_HIT,
                         "runs": {k: [{kk: vv for kk, vv in x.items() if kk != "raw"} for x in v]
                                  for k, v in hits.items()}}
        edge.stop()
        servers.remove(edge)

        # ---------------------------------------------------------------- MISS and KILL
        eu = start_region(a.tandem, config, "eu", eu_port, ctx, workdir)
        servers.append(eu)
        us = start_region(a.tandem, config, "us", us_port, ctx, workdir)
        servers.append(us)
        front_port = common.free_port()
        add_edge(config, "front", front_port,
                 "eu=https://127.0.0.1:%d, us=https://127.0.0.1:%d" % (eu_port, us_port),
                 "connect_timeout_ms = 1000\n")
        front = start_edge(a.tandem, config, "front", front_port, insecure, workdir)
        servers.append(front)
        n = 300 if a.quick else 2000
        direct, via = [], []
        for _ in range(a.rounds):
            direct += sequential_latency(eu_port, ctx, n)
            via += sequential_latency(front_port, insecure, n)
        result["miss"] = {
            "requests": len(direct),
            "direct_p50_ms": pct(direct, 50), "direct_p99_ms": pct(direct, 99),
            "edge_p50_ms": pct(via, 50), "edge_p99_ms": pct(via, 99),
            "added_p50_ms": pct(via, 50) - pct(direct, 50), "added_p99_ms": pct(via, 99) - pct(direct, 99)}
        m = result["miss"]
        log("miss: direct p50 %.3f ms p99 %.3f ms; through the edge p50 %.3f ms p99 %.3f ms (added %.3f / %.3f ms)" % (
            m["direct_p50_ms"], m["direct_p99_ms"], m["edge_p50_ms"], m["edge_p99_ms"], m["added_p50_ms"],
            m["added_p99_ms"]))

        duration = max(a.duration, 6)
        killer = threading.Timer(duration / 3.0, lambda: eu.proc.kill())
        killer.start()
        r = common.run_wrk("https://127.0.0.1:%d/healthz" % front_port, duration, a.threads, 16, {}, wrk_log, front)
        killer.join()
        failed = r["error_count"]
        result["kill"] = {"duration_s": duration, "connections": 16, "requests": r["requests"], "failed": failed,
                          "errors": r["errors"], "rps": r["rps"], "p99_ms": r["p99_ms"], "target": 0,
                          "met": failed == 0}
        log("kill: eu killed at %.1f s of %d s: %d requests, %d failed (target 0), p99 %.1f ms" % (
            duration / 3.0, duration, r["requests"], failed, r["p99_ms"]))
    finally:
        for s in servers:
            s.stop()
        if not a.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log("kept " + workdir)
    result["loadavg_after"] = common.loadavg()
    h = result["hit"]
    print("\nedge benchmarks (%d round(s) of %d s, wrk -t%d -c%d; medians)" % (a.rounds, a.duration, a.threads,
                                                                           a.connections))
    for k, v in h["median_rps"].items():
        print("  HIT 1 KiB over TLS  %-14s %10.0f req/s" % (k, v))
    print("  HIT ratio tandem edge / nginx proxy_cache (1 worker): %.2fx (target >= %.1f: %s)" % (
        h["ratio_vs_nginx_1"] or 0, TARGET_HIT, "met" if h["met"] else "MISS"))
    if result.get("h2"):
        h2r = result["h2"]
        print("  H2 hits (h2load -c %d -m 10): tandem edge %.0f req/s, nginx 1 worker %.0f req/s: %.2fx" % (
            a.connections, h2r["median_rps"]["tandem_edge"], h2r["median_rps"]["nginx_1"],
            h2r["ratio_vs_nginx_1"] or 0))
    m = result["miss"]
    print("  MISS added latency (region /healthz, sequential): p50 +%.3f ms, p99 +%.3f ms "
          "(direct %.3f/%.3f ms, through the edge %.3f/%.3f ms)" % (
              m["added_p50_ms"], m["added_p99_ms"], m["direct_p50_ms"], m["direct_p99_ms"], m["edge_p50_ms"],
              m["edge_p99_ms"]))
    k = result["kill"]
    print("  KILL region eu killed under GETs through the edge: %d of %d requests failed (target 0: %s)" % (
        k["failed"], k["requests"], "met" if k["met"] else "MISS"))
    out = a.out or os.path.join(OUT_DIR, "quick" if a.quick else "", "edge.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
    print("  results: " + out)


if __name__ == "__main__":
    main()
