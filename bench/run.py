#!/usr/bin/python3
"""bench/run.py - the benchmark suite of `make bench`.

Measures, in one run, over HTTPS keep-alive with wrk (-t2 -c64):

  (a) tandem: GET a record by id with a valid token
  (b) tandem: durable POST of a small record (fsync'd before the 201)
  (c) tandem: a filtered list of 50 records
  (d) nginx (Debian) returning a fixed ~200-byte JSON body over TLS with the
      same certificate, worker_processes 1 (tandem serves on one loop thread)
  (e) bench/sqlite_insert.c: one durable single-row SQLite insert transaction
      at a time (WAL, synchronous=FULL, like the region)

plus the resident memory of a region holding 1,000 idle keep-alive TLS
connections. Each measurement runs --rounds times, tandem and baselines
alternating; the report gives medians and the ratios of medians against the
targets (a)/(d) >= 0.5 and (b)/(e) >= 2, and RSS < 64 MB.

Python 3.11 standard library only. Usage (from the repository root):

    /usr/bin/python3 bench/run.py --tandem build/tandem [--duration S]
        [--rounds N] [--quick] [--keep] [--no-nginx-auto]

Writes build/bench/results.json. Every process it starts (regions, nginx)
is stopped by its own pid on exit.
"""

import argparse
import http.client
import json
import os
import platform
import resource
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_DIR = os.path.join(ROOT, "bench")
OUT_DIR = os.path.join(ROOT, "build", "bench")

TARGET_GET_VS_NGINX = 0.5
TARGET_POST_VS_SQLITE = 2.0
TARGET_RSS_MB = 64.0

COLLECTION = "todos"          # seeded records, read by (a) and (c)
POST_COLLECTION = "bench_posts"  # (b) writes here, so (c) always scans the same rows
SEED_RECORDS = 400
LIST_FILTER = "done = false && priority >= 2"
LIST_LIMIT = 50
POST_BODY = '{"title":"buy milk","done":false,"priority":2,"tags":["home","errand"]}'

# (d): about 200 bytes of JSON, shaped like a record answer of (a)
NGINX_BODY = ('{"id":"01J0BENCH0000000000000000","collection":"todos",'
              '"owner":"01J0BENCHOWNER000000000000","version":1,'
              '"created_at":"2026-01-01T00:00:00.000Z",'
              '"data":{"title":"buy milk","done":false,"priority":2}}')

WORKLOADS = [
    # key, label
    ("a", "(a) tandem GET record by id"),
    ("d", "(d) nginx static JSON, 1 worker"),
    ("d_auto", "(d') nginx static JSON, workers auto"),
    ("b", "(b) tandem durable POST record"),
    ("e", "(e) SQLite 1 insert txn at a time"),
    ("c", "(c) tandem filtered list, 50 items"),
]


def log(msg):
    print(msg, flush=True)


def fail(msg):
    print(f"bench: error: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def free_port():
    """A currently free TCP port on 127.0.0.1 (in tandem's allowed range)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if 1024 <= port <= 65000:
            return port
    fail("no free port on 127.0.0.1")


def raise_fd_limit(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(max(soft, want), hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def proc_cpu_seconds(pid):
    """utime + stime of a process (all its threads), in seconds; None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def proc_children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def proc_socket_count(pid):
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                n += 1
        except OSError:
            pass
    return n


class Server:
    """A process we started; stopped by its own pid."""

    def __init__(self, name, argv, log_path, cwd=None):
        self.name = name
        self.log_path = log_path
        self.log_file = open(log_path, "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log_file,
                                     stderr=subprocess.STDOUT, cwd=cwd,
                                     start_new_session=True)

    @property
    def pid(self):
        return self.proc.pid

    def pids(self):
        return [self.proc.pid] + proc_children(self.proc.pid)

    def cpu_seconds(self):
        return sum(c for c in (proc_cpu_seconds(p) for p in self.pids()) if c is not None)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()

    def tail(self, n=20):
        try:
            with open(self.log_path, "rb") as f:
                return b"".join(f.readlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return ""


def drop_witness(config):
    """Remove the [witness] section of a generated config. The benchmarks
    measure one region alone: with a witness in the config, that region
    would need a lease from a majority of three voters (the witness or the
    other region, neither of which runs here) and refuse every write with
    503 no_lease. Without it there are two voters and fixed roles, as in a
    single-region deployment (and as the tests run one region)."""
    with open(config) as f:
        text = f.read()
    start = text.find("[witness]")
    if start >= 0:
        end = text.find("\n[", start + 1)
        text = text[:start] + (text[end + 1:] if end >= 0 else "")
        with open(config, "w") as f:
            f.write(text)


class Region:
    """A tandem region on its own data dir and port."""

    def __init__(self, tandem, workdir, name):
        self.tandem = tandem
        self.dir = os.path.join(workdir, name)
        self.port = free_port()
        r = subprocess.run([tandem, "init", "--address", "127.0.0.1", "--data", self.dir, "--port-base", str(self.port)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            fail(f"tandem init failed: {r.stderr.strip()}")
        self.config = os.path.join(self.dir, "tandem.ini")
        drop_witness(self.config)
        self.certs = os.path.join(self.dir, "certs")
        self.ca = os.path.join(self.certs, "ca.pem")
        self.ctx = ssl.create_default_context(cafile=self.ca)
        self.server = None

    def start(self):
        self.server = Server("tandem region",
                             [self.tandem, "region", "--config", self.config, "--region", "eu"],
                             os.path.join(self.dir, "region.log"))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if not self.server.alive():
                fail(f"the region exited at start:\n{self.server.tail()}")
            try:
                status, _ = self.request("GET", "/healthz")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        fail(f"the region did not become healthy:\n{self.server.tail()}")

    def stop(self):
        if self.server:
            self.server.stop()

    def url(self, path):
        return f"https://127.0.0.1:{self.port}{path}"

    def connection(self):
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=30)

    def request(self, method, path, body=None, token=None, conn=None):
        own = conn is None
        conn = conn or self.connection()
        try:
            headers = {}
            if token:
                headers["Authorization"] = f"Bearer {token}"
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            try:
                return resp.status, json.loads(raw) if raw else None
            except ValueError:
                return resp.status, raw
        finally:
            if own:
                conn.close()


def write_metrics(region):
    """The group-commit counters of /metrics: batches, writes, seconds in COMMIT.
    /metrics is plain HTTP on the region's metrics_listen (port base + 5 in the
    generated config), not on the API port."""
    out = {}
    conn = http.client.HTTPConnection("127.0.0.1", region.port + 5, timeout=30)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        status, body = resp.status, resp.read()
    except OSError:
        return out  # the caller notices a dead region
    finally:
        conn.close()
    if status != 200:
        return out
    text = body.decode()
    names = {"tandem_write_batches_total": "batches", "tandem_writes_total": "writes",
             "tandem_commit_seconds_total": "commit_s"}
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in names:
            out[names[name]] = float(line.rsplit(" ", 1)[1])
    return out


def list_path():
    q = urllib.parse.urlencode({"filter": LIST_FILTER, "limit": str(LIST_LIMIT)},
                               quote_via=urllib.parse.quote)
    return f"/v1/collections/{COLLECTION}/records?{q}"


def seed(region):
    """A user, SEED_RECORDS records; returns (email, password, record id)."""
    email = f"bench-{os.getpid()}-{int(time.time())}@example.com"
    password = "bench-password-1"
    status, body = region.request("POST", "/v1/auth/signup", {"email": email, "password": password})
    if status != 201 or not isinstance(body, dict) or "access_token" not in body:
        fail(f"signup answered {status}: {body}")
    token = body["access_token"]
    conn = region.connection()
    ids = []
    try:
        for i in range(SEED_RECORDS):
            rec = {"title": f"task {i}", "done": i % 2 == 1, "priority": i % 5,
                   "tags": ["bench", f"t{i % 7}"]}
            status, body = region.request("POST", f"/v1/collections/{COLLECTION}/records",
                                          rec, token, conn)
            if status != 201:
                fail(f"seeding record {i} answered {status}: {body}")
            ids.append(body["id"])
    finally:
        conn.close()
    return email, password, ids[len(ids) // 2]


def login(region, email, password):
    status, body = region.request("POST", "/v1/auth/login", {"email": email, "password": password})
    if status != 200 or not isinstance(body, dict) or "access_token" not in body:
        fail(f"login answered {status}: {body}")
    return body["access_token"]


def check_workloads(region, token, record_id):
    """Each request once, before measuring: the right answer, not just a 2xx."""
    status, body = region.request("GET", f"/v1/collections/{COLLECTION}/records/{record_id}",
                                  token=token)
    if status != 200 or body.get("id") != record_id:
        fail(f"(a) GET answered {status}: {body}")
    a_bytes = len(json.dumps(body, separators=(",", ":")))
    status, body = region.request("GET", list_path(), token=token)
    if status != 200 or len(body.get("items", [])) != LIST_LIMIT:
        fail(f"(c) list answered {status} with {len(body.get('items', [])) if isinstance(body, dict) else '?'} items")
    for item in body["items"]:
        d = item["data"]
        if d["done"] is not False or d["priority"] < 2:
            fail(f"(c) list returned a record outside the filter: {item}")
    c_bytes = len(json.dumps(body, separators=(",", ":")))
    status, body = region.request("POST", f"/v1/collections/{POST_COLLECTION}/records",
                                  json.loads(POST_BODY), token)
    if status != 201:
        fail(f"(b) POST answered {status}: {body}")
    return {"a_body_bytes": a_bytes, "c_body_bytes": c_bytes}


def nginx_conf(workdir, name, port, cert, key, workers):
    d = os.path.join(workdir, name)
    os.makedirs(d, exist_ok=True)
    body = NGINX_BODY.replace("\\", "\\\\").replace("'", "\\'")
    conf = f"""# generated by bench/run.py
worker_processes {workers};
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_timeout 60s;
    keepalive_requests 10000000;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {{
            default_type application/json;
            return 200 '{body}';
        }}
    }}
}}
"""
    path = os.path.join(d, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return d, path


def start_nginx(workdir, name, region, workers):
    port = free_port()
    d, conf = nginx_conf(workdir, name, port, os.path.join(region.certs, "eu.pem"),
                         os.path.join(region.certs, "eu.key"), workers)
    srv = Server(f"nginx ({workers})",
                 ["/usr/sbin/nginx", "-e", os.path.join(d, "error.log"), "-c", conf, "-p", d],
                 os.path.join(d, "stderr.log"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not srv.alive():
            fail(f"nginx exited at start:\n{srv.tail()}\n"
                 + open(os.path.join(d, "error.log")).read())
        try:
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=region.ctx, timeout=5)
            conn.request("GET", "/")
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
            if resp.status == 200 and json.loads(body)["version"] == 1:
                return srv, port, len(body)
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    fail("nginx did not answer")


def system_cpu_ticks():
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(x) for x in f.readline().split()[1:9]]
    idle = vals[3] + vals[4]  # idle + iowait
    total = sum(vals)
    return total - idle, total


def children_cpu_seconds():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


class CpuMeter:
    """Where the CPU went during one measurement, in cores busy on average:
    the server under test, the load generator (wrk, or the SQLite baseline),
    and everything else on the machine (the noise)."""

    def __init__(self, server=None):
        self.server = server

    def __enter__(self):
        self.t0 = time.monotonic()
        self.srv0 = self.server.cpu_seconds() if self.server else 0.0
        self.cli0 = children_cpu_seconds()
        self.sys0 = system_cpu_ticks()
        return self

    def __exit__(self, *exc):
        self.wall = time.monotonic() - self.t0
        srv = (self.server.cpu_seconds() - self.srv0) if self.server else None
        cli = children_cpu_seconds() - self.cli0
        busy1, total1 = system_cpu_ticks()
        ncpu = os.cpu_count() or 1
        dt = total1 - self.sys0[1]
        busy = (busy1 - self.sys0[0]) / dt * ncpu if dt > 0 else None
        w = self.wall if self.wall > 0 else 1.0
        self.result = {
            "server_cpu": None if srv is None else srv / w,
            "client_cpu": cli / w,
            "machine_busy": busy,
            "other_cpu": None if busy is None else max(0.0, busy - (srv or 0.0) / w - cli / w),
        }
        return False


def run_wrk(url, duration, threads, connections, env_extra, log_path, server):
    env = dict(os.environ)
    env.pop("BENCH_TOKEN", None)
    env.pop("BENCH_BODY", None)
    env.pop("BENCH_METHOD", None)
    env.update(env_extra)
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency",
            "-s", os.path.join(BENCH_DIR, "wrk.lua"), url]
    with CpuMeter(server) as cpu:
        r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=duration + 120)
    with open(log_path, "a") as f:
        f.write(f"$ {' '.join(argv)}\n{r.stdout}{r.stderr}\n")
    if r.returncode != 0:
        fail(f"wrk failed ({r.returncode}): {r.stderr.strip()}")
    line = next((l for l in r.stdout.splitlines() if l.startswith("BENCH_RESULT ")), None)
    if not line:
        fail(f"no result from wrk:\n{r.stdout}\n{r.stderr}")
    res = json.loads(line[len("BENCH_RESULT "):])
    secs = res["duration_us"] / 1e6
    errors = sum(res["errors"].values())
    return {
        "rps": res["requests"] / secs if secs > 0 else 0.0,
        "p50_ms": res["latency_us"]["p50"] / 1000.0,
        "p99_ms": res["latency_us"]["p99"] / 1000.0,
        "requests": res["requests"],
        "errors": res["errors"],
        "error_count": errors,
        **cpu.result,
        "raw": res,
    }


def build_sqlite_baseline():
    src = os.path.join(BENCH_DIR, "sqlite_insert.c")
    out = os.path.join(OUT_DIR, "sqlite_insert")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "sqlite3"], capture_output=True,
                           text=True)
    if flags.returncode != 0:
        fail("pkg-config sqlite3 failed (is libsqlite3-dev installed?)")
    argv = (["cc", "-O2", "-std=c17", "-Wall", "-Wextra", "-o", out, src]
            + flags.stdout.split())
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"cannot build the SQLite baseline:\n{r.stderr}")
    return out


def run_sqlite(binary, workdir, duration, log_path):
    db = os.path.join(workdir, "sqlite-baseline", "insert.db")
    os.makedirs(os.path.dirname(db), exist_ok=True)
    with CpuMeter(None) as cpu:
        r = subprocess.run([binary, db, str(duration)], capture_output=True, text=True,
                           timeout=duration + 120)
    with open(log_path, "a") as f:
        f.write(f"$ {binary} {db} {duration}\n{r.stdout}{r.stderr}\n")
    if r.returncode != 0:
        fail(f"sqlite baseline failed: {r.stderr.strip()}")
    res = json.loads(r.stdout.strip().splitlines()[-1])
    return {
        "rps": res["per_second"],
        "p50_ms": res["p50_us"] / 1000.0,
        "p99_ms": res["p99_us"] / 1000.0,
        "requests": res["transactions"],
        "error_count": 0,
        **cpu.result,
        "raw": res,
    }


def open_idle_connections(region, n):
    """n TLS connections, each with one GET /healthz answered, then left idle.
    They come from several loopback addresses (127.0.0.1, .2, ...; 200 each),
    as many clients would: max_connections_per_address (256) refuses more
    from one address."""
    socks = []
    request = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n"
    for i in range(n):
        source = ("127.0.0.%d" % (1 + i // 200), 0)
        raw = socket.create_connection(("127.0.0.1", region.port), timeout=30,
                                       source_address=source)
        s = region.ctx.wrap_socket(raw, server_hostname="localhost")
        s.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                raise OSError("connection closed before the answer")
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v.strip())
        while len(rest) < length:
            chunk = s.recv(4096)
            if not chunk:
                raise OSError("connection closed in the body")
            rest += chunk
        if not head.startswith(b"HTTP/1.1 200"):
            raise OSError(f"unexpected answer: {head[:40]!r}")
        socks.append(s)
    return socks


def measure_memory(region, n, settle):
    pid = region.server.pid
    before = proc_status(pid)
    sockets_before = proc_socket_count(pid)
    t0 = time.monotonic()
    socks = open_idle_connections(region, n)
    opened_s = time.monotonic() - t0
    time.sleep(settle)
    st = proc_status(pid)
    sockets = proc_socket_count(pid) - sockets_before
    # still open? one more request on the first and last connection
    still_open = True
    for s in (socks[0], socks[-1]):
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            if not s.recv(4096).startswith(b"HTTP/1.1 200"):
                still_open = False
        except OSError:
            still_open = False
    for s in socks:
        try:
            s.close()
        except OSError:
            pass

    def kb(v):
        return int(v.split()[0])
    rss_before = kb(before["VmRSS"]) / 1024
    rss = kb(st["VmRSS"]) / 1024
    return {
        "connections": n,
        "server_sockets_added": sockets,
        "connections_still_open": still_open,
        "open_seconds": round(opened_s, 2),
        "rss_before_mb": round(rss_before, 1),
        "rss_mb": round(rss, 1),
        "rss_hwm_mb": round(kb(st["VmHWM"]) / 1024, 1),
        "per_connection_kb": round((rss - rss_before) * 1024 / n, 1) if n else None,
        "threads": int(st.get("Threads", "0")),
    }


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return f.read().split()[:3]
    except OSError:
        return None


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt_ms(v):
    return "-" if v is None else f"{v:.2f} ms"


def fmt_rps(v):
    return "-" if v is None else f"{v:,.0f}"


def tool_versions(tandem):
    def out(argv):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (r.stdout + r.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "tandem": out([tandem, "version"]),
        "wrk": out(["wrk", "-v"]),
        "nginx": out(["/usr/sbin/nginx", "-v"]),
        "openssl": out(["openssl", "version"]),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
    }


def main():
    ap = argparse.ArgumentParser(description="tandem benchmarks (make bench)")
    ap.add_argument("--tandem", default=os.path.join(ROOT, "build", "tandem"),
                    help="the tandem binary (default build/tandem)")
    ap.add_argument("--duration", type=int, help="seconds per measurement (10; --quick: 3)")
    ap.add_argument("--rounds", type=int, help="rounds of every measurement (3; --quick: 1)")
    ap.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    ap.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    ap.add_argument("--idle-connections", type=int, default=1000,
                    help="idle keep-alive connections for the memory figure (1000)")
    ap.add_argument("--no-nginx-auto", action="store_true",
                    help="skip (d'), nginx with worker_processes auto (informational)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 3 s, 1 round, no (d'), unless given")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--out", help="results file (build/bench/results.json; --quick: "
                    "build/bench/quick/results.json, apart from the real figures)")
    args = ap.parse_args()
    if args.duration is None:
        args.duration = 3 if args.quick else 10
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    if args.quick:
        args.no_nginx_auto = True
    if args.out is None:
        args.out = os.path.join(OUT_DIR, "quick", "results.json") if args.quick else \
            os.path.join(OUT_DIR, "results.json")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    if args.duration < 1 or args.rounds < 1:
        fail("--duration and --rounds must be >= 1")
    tandem = os.path.abspath(args.tandem)
    if not os.access(tandem, os.X_OK):
        fail(f"{args.tandem}: not an executable (run make first)")
    for tool in ("wrk", "/usr/sbin/nginx", "cc", "pkg-config"):
        if not shutil.which(tool):
            fail(f"{tool} not found (make bench installs deps/bench.txt)")

    nofile = raise_fd_limit(args.idle_connections * 2 + 1024)
    if nofile < args.idle_connections + 256:
        fail(f"the open file limit ({nofile}) is too low for {args.idle_connections} connections")

    os.makedirs(OUT_DIR, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="work-", dir=OUT_DIR)  # on the same disk as build/
    wrk_log = os.path.join(workdir, "wrk.log")
    servers = []
    finished = False

    def on_signal(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)

    try:
        versions = tool_versions(tandem)
        load_start = loadavg()
        log(f"tandem bench: {args.rounds} round(s) of {args.duration}s, wrk -t{args.threads} "
            f"-c{args.connections}, {versions['cpus']} CPUs ({versions['cpu']})")
        log(f"work dir: {os.path.relpath(workdir, ROOT)}")
        sqlite_bin = build_sqlite_baseline()

        # memory: a fresh region, 1,000 idle keep-alive TLS connections
        log(f"memory: fresh region, {args.idle_connections} idle keep-alive TLS connections ...")
        fresh = Region(tandem, workdir, "region-fresh")
        fresh.start()
        servers.append(fresh)
        time.sleep(0.5)
        mem_fresh = measure_memory(fresh, args.idle_connections, settle=2.0)
        fresh.stop()
        servers.remove(fresh)
        log(f"  RSS {mem_fresh['rss_before_mb']} MB idle -> {mem_fresh['rss_mb']} MB with "
            f"{mem_fresh['server_sockets_added']} connections open")

        # throughput: one region, seeded; nginx on the same certificate
        region = Region(tandem, workdir, "region")
        region.start()
        servers.append(region)
        log(f"seeding {SEED_RECORDS} records ...")
        email, password, record_id = seed(region)
        token = login(region, email, password)
        sizes = check_workloads(region, token, record_id)
        nginx1, nginx1_port, nginx_bytes = start_nginx(workdir, "nginx-1", region, 1)
        servers.append(nginx1)
        nginx_auto = None
        if not args.no_nginx_auto:
            nginx_auto, nginx_auto_port, _ = start_nginx(workdir, "nginx-auto", region, "auto")
            servers.append(nginx_auto)
        sizes["d_body_bytes"] = nginx_bytes

        rounds = []
        for rnd in range(1, args.rounds + 1):
            token = login(region, email, password)  # a fresh access token every round
            auth = {"BENCH_TOKEN": token}
            res = {}
            for key, label in WORKLOADS:
                if key == "d_auto" and nginx_auto is None:
                    continue
                if key == "a":
                    r = run_wrk(region.url(f"/v1/collections/{COLLECTION}/records/{record_id}"),
                                args.duration, args.threads, args.connections, auth, wrk_log,
                                region.server)
                elif key == "b":
                    m0 = write_metrics(region)
                    r = run_wrk(region.url(f"/v1/collections/{POST_COLLECTION}/records"),
                                args.duration, args.threads, args.connections,
                                {**auth, "BENCH_METHOD": "POST", "BENCH_BODY": POST_BODY},
                                wrk_log, region.server)
                    m1 = write_metrics(region)
                    if all(k in m0 and k in m1 for k in ("batches", "writes", "commit_s")):
                        nb = m1["batches"] - m0["batches"]
                        if nb > 0:
                            r["writes_per_batch"] = (m1["writes"] - m0["writes"]) / nb
                            r["commit_ms_per_batch"] = (m1["commit_s"] - m0["commit_s"]) * 1000 / nb
                elif key == "c":
                    r = run_wrk(region.url(list_path()), args.duration, args.threads,
                                args.connections, auth, wrk_log, region.server)
                elif key == "d":
                    r = run_wrk(f"https://127.0.0.1:{nginx1_port}/", args.duration, args.threads,
                                args.connections, {}, wrk_log, nginx1)
                elif key == "d_auto":
                    r = run_wrk(f"https://127.0.0.1:{nginx_auto_port}/", args.duration,
                                args.threads, args.connections, {}, wrk_log, nginx_auto)
                else:
                    r = run_sqlite(sqlite_bin, workdir, args.duration, wrk_log)
                if not region.server.alive():
                    fail(f"the region exited (status {region.server.proc.returncode}) during "
                         f"{label}; the end of its log:\n{region.server.tail()}")
                res[key] = r
                cpu = ("" if r["server_cpu"] is None else f"  server {r['server_cpu']:.2f}") + \
                    f"  client {r['client_cpu']:.2f}" + \
                    ("" if r["other_cpu"] is None else f"  other {r['other_cpu']:.2f} cores")
                if "writes_per_batch" in r:
                    cpu += (f"  ({r['writes_per_batch']:.1f} writes/commit, "
                            f"{r['commit_ms_per_batch']:.2f} ms/COMMIT)")
                err = f"  ERRORS {r['errors']}" if r["error_count"] else ""
                log(f"  round {rnd}  {label:<38} {fmt_rps(r['rps']):>9} req/s  "
                    f"p50 {fmt_ms(r['p50_ms']):>9}  p99 {fmt_ms(r['p99_ms']):>9}{cpu}{err}")
            rounds.append(res)

        # memory again: the region that just took the load (its caches are warm)
        log(f"memory: the loaded region, {args.idle_connections} idle keep-alive TLS connections ...")
        time.sleep(1.0)
        mem_loaded = measure_memory(region, args.idle_connections, settle=2.0)
        log(f"  RSS {mem_loaded['rss_before_mb']} MB idle -> {mem_loaded['rss_mb']} MB with "
            f"{mem_loaded['server_sockets_added']} connections open")
        load_end = loadavg()
        db_path = os.path.join(region.dir, "data")
        db_bytes = sum(os.path.getsize(os.path.join(dp, f))
                       for dp, _, fs in os.walk(db_path) for f in fs)
        finished = True
    except KeyboardInterrupt:
        fail("interrupted")
    finally:
        for s in reversed(servers):
            s.stop()
        if not finished:
            print(f"bench: logs and data kept in {os.path.relpath(workdir, ROOT)}", file=sys.stderr)

    # --- report ---
    med = {}
    for key, _ in WORKLOADS:
        runs = [r[key] for r in rounds if key in r]
        if not runs:
            continue
        med[key] = {
            "rps": median([r["rps"] for r in runs]),
            "p50_ms": median([r["p50_ms"] for r in runs]),
            "p99_ms": median([r["p99_ms"] for r in runs]),
            "server_cpu": median([r["server_cpu"] for r in runs]),
            "client_cpu": median([r["client_cpu"] for r in runs]),
            "other_cpu": median([r["other_cpu"] for r in runs]),
            "errors": sum(r["error_count"] for r in runs),
            "rounds_rps": [round(r["rps"], 1) for r in runs],
        }
        if any("writes_per_batch" in r for r in runs):
            med[key]["writes_per_batch"] = median([r.get("writes_per_batch") for r in runs])
            med[key]["commit_ms_per_batch"] = median([r.get("commit_ms_per_batch") for r in runs])
    ratio_ad = med["a"]["rps"] / med["d"]["rps"]
    ratio_be = med["b"]["rps"] / med["e"]["rps"]
    total_errors = sum(m["errors"] for m in med.values())
    # the same ratios within each round (neighbours in time): shows the spread
    round_ratios = [{"a_over_d": r["a"]["rps"] / r["d"]["rps"] if r["d"]["rps"] else None,
                     "b_over_e": r["b"]["rps"] / r["e"]["rps"] if r["e"]["rps"] else None}
                    for r in rounds]

    def verdict(ok):
        return "PASS" if ok else "MISS"

    checks = [
        ("(a)/(d) GET vs nginx", f"{ratio_ad:.2f}", f">= {TARGET_GET_VS_NGINX}",
         verdict(ratio_ad >= TARGET_GET_VS_NGINX)),
        ("(b)/(e) POST vs SQLite", f"{ratio_be:.2f}", f">= {TARGET_POST_VS_SQLITE:g}",
         verdict(ratio_be >= TARGET_POST_VS_SQLITE)),
        (f"RSS, fresh region, {mem_fresh['connections']} idle conns", f"{mem_fresh['rss_mb']:.1f} MB",
         f"< {TARGET_RSS_MB:g} MB",
         verdict(mem_fresh["rss_mb"] < TARGET_RSS_MB and mem_fresh["connections_still_open"])),
        (f"RSS, loaded region, {mem_loaded['connections']} idle conns",
         f"{mem_loaded['rss_mb']:.1f} MB", f"< {TARGET_RSS_MB:g} MB",
         verdict(mem_loaded["rss_mb"] < TARGET_RSS_MB and mem_loaded["connections_still_open"])),
    ]

    print()
    print(f"medians of {args.rounds} round(s), {args.duration}s each, wrk -t{args.threads} "
          f"-c{args.connections} over HTTPS keep-alive")
    print(f"{'workload':<40} {'req/s':>10} {'p50':>10} {'p99':>10}  "
          f"{'CPU: srv':>8} {'client':>6} {'other':>6}  per-round req/s")
    for key, label in WORKLOADS:
        if key not in med:
            continue
        m = med[key]

        def c(v):
            return "-" if v is None else f"{v:.2f}"
        print(f"{label:<40} {fmt_rps(m['rps']):>10} {fmt_ms(m['p50_ms']):>10} "
              f"{fmt_ms(m['p99_ms']):>10}  {c(m['server_cpu']):>8} {c(m['client_cpu']):>6} "
              f"{c(m['other_cpu']):>6}  " + ", ".join(fmt_rps(x) for x in m["rounds_rps"]))
    print("(CPU: cores busy on average during the measurement: the server under test, the "
          "load generator, and everything else on the machine)")
    if "writes_per_batch" in med.get("b", {}):
        print(f"(b) group commit: {med['b']['writes_per_batch']:.1f} writes per transaction, "
              f"{med['b']['commit_ms_per_batch']:.2f} ms per COMMIT (median of rounds)")
    print()
    print(f"{'check':<40} {'value':>10} {'target':>10}  result")
    for name, value, target, result in checks:
        print(f"{name:<40} {value:>10} {target:>10}  {result}")
    print("per-round ratios: (a)/(d) " +
          ", ".join("-" if r["a_over_d"] is None else f"{r['a_over_d']:.2f}" for r in round_ratios)
          + "; (b)/(e) " +
          ", ".join("-" if r["b_over_e"] is None else f"{r['b_over_e']:.2f}" for r in round_ratios))
    print(f"(fresh region: {mem_fresh['rss_before_mb']} MB before the connections, "
          f"{mem_fresh['per_connection_kb']} KB per connection; loaded region: "
          f"{mem_loaded['rss_before_mb']} MB before)")
    if total_errors:
        print(f"WARNING: {total_errors} wrk errors (non-2xx answers, timeouts or socket errors); "
              f"see {os.path.relpath(wrk_log, ROOT)}")

    results = {
        "command": "make bench",
        "argv": sys.argv[1:],
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": versions,
        "settings": {
            "duration_s": args.duration, "rounds": args.rounds,
            "wrk_threads": args.threads, "wrk_connections": args.connections,
            "seed_records": SEED_RECORDS, "list_filter": LIST_FILTER, "list_limit": LIST_LIMIT,
            "post_body": POST_BODY, "nginx_body_bytes": sizes["d_body_bytes"],
            "response_body_bytes": sizes,
            "region_db_bytes_after": db_bytes,
        },
        "labels": dict(WORKLOADS),
        "medians": med,
        "ratios": {"a_over_d": ratio_ad, "b_over_e": ratio_be},
        "round_ratios": round_ratios,
        "loadavg": {"start": load_start, "end": load_end},
        "targets": {"a_over_d": TARGET_GET_VS_NGINX, "b_over_e": TARGET_POST_VS_SQLITE,
                    "rss_mb": TARGET_RSS_MB},
        "checks": [dict(zip(("check", "value", "target", "result"), c)) for c in checks],
        "memory": {"fresh": mem_fresh, "loaded": mem_loaded},
        "rounds": [{k: {kk: vv for kk, vv in v.items()} for k, v in r.items()} for r in rounds],
        "wrk_errors": total_errors,
    }
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    print(f"\nresults: {os.path.relpath(args.out, ROOT)}")
    if args.keep:
        print(f"work dir kept: {os.path.relpath(workdir, ROOT)}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
