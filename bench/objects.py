#!/usr/bin/python3
"""bench/objects.py - the object store's benchmarks (issue 10 section 7, all
but replication lag), in one run, tandem and its baselines back to back:

  GET   4 KiB and 1 MiB objects over TLS from one region's S3 listener, next
        to nginx (Debian nginx-light) serving the same bytes as files over
        TLS with the same certificate; wrk -t2 -c64 and bench/wrk.lua for
        both. The objects are public-read, so wrk fetches them unsigned
        (SigV4 per request in wrk's Lua would measure Lua). The ratio against
        nginx with 1 worker (tandem serves S3 on one event-loop thread, as
        bench/run.py compares) has a target: >= 0.7 for 1 MiB. nginx with
        workers auto is shown for information.
  PUT   durable PUTs of 4 KiB and 1 MiB objects, 64 concurrent signed
        clients (build/bench/objects_load, C, one keep-alive TLS connection
        per thread), next to 64 threads doing write + fsync + rename + fsync
        of the directory (what the blob store does per blob) on the same
        file system as the region's data: the ratio, no target.
  RSS   the region while 1,000 slow readers (4 KB/s each, small receive
        buffers, an Ethernet MSS) download a 1 MiB object at once: before,
        peak, per served download, the answers (200 or 503 SlowDown), and a
        normal client's 4 KiB and 1 MiB GETs meanwhile. Bounded: the growth
        stays within 1.5 x [limits] max_buffered_bytes (128 MiB), which the
        listener enforces by refusing new large GETs while over it; each
        download holds at most its 1 MiB of unsent answer.

    /usr/bin/python3 bench/objects.py [--tandem build/tandem] [--rounds 3]
        [--duration 10] [--slow-readers 1000] [--quick] [--keep] [--out F]

--quick (make bench-smoke): 1 round of 3 s, no nginx auto, slow readers held
8 s. Results: build/bench/objects.json (--quick: build/bench/quick/).
Exits non-zero only on errors (a missed target is reported as MISS).
"""
import argparse
import datetime
import hashlib
import hmac
import http.client
import json
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_DIR = os.path.join(ROOT, "bench")
OUT_DIR = os.path.join(ROOT, "build", "bench")
sys.path.insert(0, BENCH_DIR)
import run as common  # noqa: E402  (bench/run.py: Region, Server, wrk, CPU meter)

S3_REGION = "eu"
BUCKET = "bench"
SIZES = [("4k", 4096), ("1m", 1024 * 1024)]
TARGET_GET_1M = 0.7
PUT_CLIENTS = 64
BOUND_FACTOR = 1.5       # RSS growth under the slow readers: at most this x max_buffered_bytes
SLOW_RCVBUF = 8192       # the slow readers' SO_RCVBUF
SLOW_MSS = 1460         # the slow readers' TCP_MAXSEG
SLOW_READ = 4096         # bytes each slow reader takes per second


def log(msg):
    print(msg, flush=True)


def fail(msg):
    print("objects bench: error: " + msg, file=sys.stderr, flush=True)
    sys.exit(1)


# ------------------------------------------------------------------ S3 client

def dev_key(data_dir):
    """The [s3] key pair tandem init made (tenant dev), from secrets.ini."""
    import configparser
    p = configparser.ConfigParser(interpolation=None)
    p.read(os.path.join(data_dir, "secrets.ini"))
    for name, value in p.items("s3"):
        if name.startswith("key."):
            return name[4:].upper(), value
    fail("no [s3] key in secrets.ini")


class S3:
    """Signed requests (SigV4, header auth) to one region's S3 listener."""

    def __init__(self, port, ctx, akid, secret):
        self.port, self.ctx, self.akid, self.secret = port, ctx, akid, secret
        self.host = "127.0.0.1:%d" % port

    def conn(self):
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=60)

    def request(self, method, path, body=b"", headers=None, signed=True):
        h = {k.lower(): v for k, v in (headers or {}).items()}
        if signed:
            now = datetime.datetime.now(datetime.timezone.utc)
            amz = now.strftime("%Y%m%dT%H%M%SZ")
            h.update({"host": self.host, "x-amz-date": amz,
                      "x-amz-content-sha256": hashlib.sha256(body).hexdigest()})
            names = sorted(h)
            canonical = "\n".join([method, urllib.parse.quote(path, safe="/-_.~"), "",
                                   "".join("%s:%s\n" % (k, h[k].strip()) for k in names),
                                   ";".join(names), h["x-amz-content-sha256"]])
            scope = "%s/%s/s3/aws4_request" % (amz[:8], S3_REGION)
            sts = "\n".join(["AWS4-HMAC-SHA256", amz, scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
            k = ("AWS4" + self.secret).encode()
            for part in (amz[:8], S3_REGION, "s3", "aws4_request"):
                k = hmac.new(k, part.encode(), hashlib.sha256).digest()
            sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
            h["authorization"] = ("AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s"
                                  % (self.akid, scope, ";".join(names), sig))
        c = self.conn()
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()


def wait_tls(port, ctx, what, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as raw:
                with ctx.wrap_socket(raw, server_hostname="localhost"):
                    return
        except OSError:
            time.sleep(0.1)
    fail("%s does not answer TLS on port %d" % (what, port))


def object_bytes(size):
    # incompressible and different per size
    out = bytearray()
    seed = hashlib.sha256(b"tandem-bench-%d" % size).digest()
    while len(out) < size:
        seed = hashlib.sha256(seed).digest()
        out += seed * 64
    return bytes(out[:size])


def setup_objects(s3, nginx_root):
    """The bucket and the public-read objects, and the same bytes as files
    for nginx; each checked once: an unsigned GET answers exactly them."""
    status, body = s3.request("PUT", "/" + BUCKET)
    if status != 200:
        fail("CreateBucket answered %d: %s" % (status, body[:300]))
    os.makedirs(os.path.join(nginx_root, BUCKET), exist_ok=True)
    for name, size in SIZES:
        data = object_bytes(size)
        status, body = s3.request("PUT", "/%s/obj-%s" % (BUCKET, name), data,
                                  {"x-amz-acl": "public-read",
                                   "content-type": "application/octet-stream"})
        if status != 200:
            fail("PutObject %s answered %d: %s" % (name, status, body[:300]))
        status, got = s3.request("GET", "/%s/obj-%s" % (BUCKET, name), signed=False)
        if status != 200 or got != data:
            fail("an unsigned GET of obj-%s answered %d with %d bytes" % (name, status, len(got)))
        with open(os.path.join(nginx_root, BUCKET, "obj-" + name), "wb") as f:
            f.write(data)


# ------------------------------------------------------------------ nginx

def start_nginx(workdir, name, region, root, workers):
    port = common.free_port()
    d = os.path.join(workdir, name)
    os.makedirs(d, exist_ok=True)
    conf = os.path.join(d, "nginx.conf")
    # started as root, nginx's workers would run as nobody, who cannot read
    # files in our 0700 work directory: they run as we do, as tandem does
    user = "user root;\n" if os.geteuid() == 0 else ""
    with open(conf, "w") as f:
        f.write("""# generated by bench/objects.py
%sworker_processes %s;
daemon off;
master_process on;
pid %s/nginx.pid;
error_log %s/error.log warn;
events { worker_connections 4096; }
http {
    access_log %s/access.log;
    client_body_temp_path %s/body;
    proxy_temp_path %s/proxy;
    fastcgi_temp_path %s/fastcgi;
    uwsgi_temp_path %s/uwsgi;
    scgi_temp_path %s/scgi;
    keepalive_timeout 60s;
    keepalive_requests 10000000;
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:%d ssl;
        ssl_certificate %s;
        ssl_certificate_key %s;
        ssl_protocols TLSv1.2 TLSv1.3;
        root %s;
    }
}
""" % (user, workers, d, d, d, d, d, d, d, d, port, os.path.join(region.certs, "eu.pem"),
       os.path.join(region.certs, "eu.key"), root))
    srv = common.Server("nginx (%s)" % workers,
                        ["/usr/sbin/nginx", "-e", os.path.join(d, "error.log"), "-c", conf, "-p", d],
                        os.path.join(d, "stderr.log"))
    deadline = time.monotonic() + 10
    want = object_bytes(4096)
    while time.monotonic() < deadline:
        if not srv.alive():
            fail("nginx exited at start:\n" + srv.tail())
        try:
            c = http.client.HTTPSConnection("127.0.0.1", port, context=region.ctx, timeout=5)
            c.request("GET", "/%s/obj-4k" % BUCKET)
            r = c.getresponse()
            body = r.read()
            c.close()
            if r.status == 200 and body == want:
                return srv, port
        except OSError:
            pass
        time.sleep(0.1)
    srv.stop()  # not yet in the caller's list of servers to stop
    fail("nginx did not serve the object (its log: %s)" % os.path.join(d, "error.log"))


# ------------------------------------------------------------------ PUT

def load_tool(tandem):
    """build/bench/objects_load next to the binary (the Makefile builds it
    with `make bench`; built here when missing)."""
    tool = os.path.join(os.path.dirname(tandem), "bench", "objects_load")
    if not os.access(tool, os.X_OK):
        build = os.path.relpath(os.path.dirname(tandem), ROOT)
        r = subprocess.run(["make", "-C", ROOT, "--no-print-directory",
                            os.path.join(build, "bench", "objects_load")],
                           capture_output=True, text=True)
        if r.returncode != 0 or not os.access(tool, os.X_OK):
            fail("cannot build %s (make bench builds it):\n%s" % (tool, r.stderr[-2000:]))
    return tool


def run_load(argv, env, server, log_path, duration):
    with common.CpuMeter(server) as cpu:
        r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=duration + 120)
    with open(log_path, "a") as f:
        f.write("$ %s\n%s%s\n" % (" ".join(argv), r.stdout, r.stderr))
    if r.returncode != 0:
        fail("%s failed (%d): %s" % (argv[1], r.returncode, r.stderr.strip()))
    res = json.loads(r.stdout.strip().splitlines()[-1])
    return {"rps": res["per_second"], "mb_s": res["mb_per_second"], "p50_ms": res["p50_us"] / 1000,
            "p99_ms": res["p99_us"] / 1000, "requests": res["ops"], "error_count": res["errors"],
            "last_error": res["last_error"], **cpu.result}


def run_put(tool, s3, ca, size, duration, region, log_path):
    env = dict(os.environ, S3_ACCESS_KEY_ID=s3.akid, S3_SECRET_ACCESS_KEY=s3.secret)
    return run_load([tool, "put", "127.0.0.1", str(s3.port), ca, S3_REGION, BUCKET, str(size),
                     str(PUT_CLIENTS), str(duration)], env, region.server, log_path, duration)


def run_fsync(tool, workdir, size, duration, log_path):
    d = os.path.join(workdir, "fsync-baseline")
    shutil.rmtree(d, ignore_errors=True)
    try:
        return run_load([tool, "fsync", d, str(size), str(PUT_CLIENTS), str(duration)],
                        dict(os.environ), None, log_path, duration)
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ------------------------------------------------------------------ slow readers

def region_limit(region, key, default):
    """[limits] KEY of the region's config (the generated one sets them all)."""
    import configparser
    p = configparser.ConfigParser(interpolation=None, strict=False)
    p.read(region.config)
    try:
        return int(p.get("limits", key))
    except (configparser.Error, ValueError):
        return default


def rss_kb(pid):
    st = common.proc_status(pid)
    return int(st["VmRSS"].split()[0]), int(st["VmHWM"].split()[0])


def open_slow_reader(port, ctx, i, request):
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RCVBUF)
    # an Ethernet-sized MSS: on loopback (MSS 65483) the server's send buffer
    # autotunes to ~4 MB and the kernel swallows the whole 1 MiB answer, which
    # then shows in no RSS; with 1460 it grows as it would to a real client
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, SLOW_MSS)
    # 200 per loopback address: max_connections_per_address (256) holds
    raw.bind(("127.0.0.%d" % (1 + i // 200), 0))
    raw.settimeout(30)
    raw.connect(("127.0.0.1", port))
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    s.sendall(request)
    return s


def normal_client(port, ctx, stop, out):
    """GETs of the 4 KiB and the 1 MiB object, one after the other on fresh
    connections from another address, while the slow readers hold theirs."""
    want = {n: len(object_bytes(s)) for n, s in SIZES}
    while not stop.is_set():
        for name, _ in SIZES:
            t0 = time.monotonic()
            try:
                raw = socket.create_connection(("127.0.0.1", port), timeout=30,
                                               source_address=("127.0.0.250", 0))
                c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
                c.sock = ctx.wrap_socket(raw, server_hostname="localhost")
                c.request("GET", "/%s/obj-%s" % (BUCKET, name))
                r = c.getresponse()
                body = r.read()
                c.close()
                ok = r.status == 200 and len(body) == want[name]
                out.append((name, time.monotonic() - t0,
                            r.status if ok or r.status != 200 else "200 with %d bytes" % len(body)))
            except OSError as e:
                out.append((name, time.monotonic() - t0, "error " + str(e)))
        stop.wait(0.2)


def slow_readers(region, s3_port, n, hold_s):
    pid = region.server.pid
    time.sleep(1.0)
    before, _ = rss_kb(pid)
    socks_before = common.proc_socket_count(pid)
    request = ("GET /%s/obj-1m HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (BUCKET, s3_port)).encode()
    samples = []
    socks = []
    stop = threading.Event()
    normal = []
    t0 = time.monotonic()
    try:
        for i in range(n):
            socks.append(open_slow_reader(s3_port, region.ctx, i, request))
            if i % 100 == 99:
                samples.append(rss_kb(pid)[0])
        opened_s = time.monotonic() - t0
        th = threading.Thread(target=normal_client, args=(s3_port, region.ctx, stop, normal), daemon=True)
        th.start()
        got = [0] * n
        status = [None] * n  # from each answer's first bytes
        closed = 0
        end = time.monotonic() + hold_s
        while time.monotonic() < end:
            tick = time.monotonic()
            for i, s in enumerate(socks):
                if s is None:
                    continue
                s.settimeout(0.5)
                try:
                    b = s.recv(SLOW_READ)
                except (socket.timeout, ssl.SSLError):
                    b = b"?"
                except OSError:
                    b = b""
                if not b:
                    closed += 1
                    s.close()
                    socks[i] = None
                elif b != b"?":
                    if status[i] is None and got[i] == 0 and b.startswith(b"HTTP/1.1 "):
                        status[i] = int(b[9:12])
                    got[i] += len(b)
            samples.append(rss_kb(pid)[0])
            time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
        held = common.proc_socket_count(pid) - socks_before
        rss_end, hwm = rss_kb(pid)
        stop.set()
        th.join(60)
    finally:
        stop.set()
        for s in socks:
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass
    peak = max(samples + [rss_end])
    served = sum(1 for x in status if x == 200)
    statuses = {}
    for x in status:
        statuses[str(x)] = statuses.get(str(x), 0) + 1
    by_size = {}
    for name, _ in SIZES:
        mine = [x for x in normal if x[0] == name]
        ok = sorted(x[1] for x in mine if x[2] == 200)
        by_size[name] = {
            "requests": len(mine), "ok": len(ok),
            "slowdown_503": sum(1 for x in mine if x[2] == 503),
            "other": [x[2] for x in mine if x[2] not in (200, 503)][:10],
            "p50_ms": round(ok[len(ok) // 2] * 1000, 1) if ok else None,
            "max_ms": round(ok[-1] * 1000, 1) if ok else None}
    return {
        "connections": n, "hold_s": hold_s, "open_s": round(opened_s, 1),
        "statuses": statuses, "served": served,
        "rss_before_mb": round(before / 1024, 1), "rss_peak_mb": round(peak / 1024, 1),
        "rss_growth_mb": round((peak - before) / 1024, 1),
        "rss_end_mb": round(rss_end / 1024, 1), "vm_hwm_mb": round(hwm / 1024, 1),
        "per_served_kb": round((peak - before) / served, 1) if served else None,
        "per_connection_kb": round((peak - before) / n, 1) if n else None,
        "server_sockets_held": held, "closed_early": closed,
        "slow_bytes_read_median": statistics.median(got) if got else 0,
        "normal": by_size,
    }


# ------------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tandem", default=os.path.join(ROOT, "build", "tandem"))
    ap.add_argument("--duration", type=int, help="seconds per measurement (10; --quick: 3)")
    ap.add_argument("--rounds", type=int, help="rounds (3; --quick: 1)")
    ap.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    ap.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    ap.add_argument("--slow-readers", type=int, default=1000, help="slow 1 MiB downloads (1000)")
    ap.add_argument("--hold", type=int, help="seconds the slow readers read (20; --quick: 8)")
    ap.add_argument("--no-nginx-auto", action="store_true", help="skip nginx with workers auto")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 round of 3 s, no nginx auto")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--out", help="results (build/bench/objects.json; --quick: build/bench/quick/)")
    # accepted and ignored, as the other scripts do with each other's options
    ap.add_argument("--idle-connections", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    a.duration = a.duration or (3 if a.quick else 10)
    a.rounds = a.rounds or (1 if a.quick else 3)
    a.hold = a.hold or (8 if a.quick else 20)
    if a.quick:
        a.no_nginx_auto = True
    a.out = a.out or os.path.join(OUT_DIR, "quick" if a.quick else "", "objects.json")
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    tandem = os.path.abspath(a.tandem)
    if not os.access(tandem, os.X_OK):
        fail("%s: not an executable (run make first)" % a.tandem)
    for tool in ("wrk", "/usr/sbin/nginx"):
        if not shutil.which(tool):
            fail("%s not found (make bench installs deps/bench.txt)" % tool)
    tool = load_tool(tandem)
    common.raise_fd_limit(a.slow_readers * 2 + 1024)

    os.makedirs(OUT_DIR, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="objects-", dir=OUT_DIR)  # the region's file system
    wrk_log = os.path.join(workdir, "load.log")
    servers = []
    finished = False
    try:
        log("objects bench: %d round(s) of %ds; GET wrk -t%d -c%d; PUT %d clients; %d slow readers"
            % (a.rounds, a.duration, a.threads, a.connections, PUT_CLIENTS, a.slow_readers))
        log("work dir: " + os.path.relpath(workdir, ROOT))
        region = common.Region(tandem, workdir, "region")
        region.start()
        servers.append(region)
        s3_port = region.port + 7  # eu's s3_listen in the generated config
        wait_tls(s3_port, region.ctx, "the S3 listener")
        akid, secret = dev_key(region.dir)
        s3 = S3(s3_port, region.ctx, akid, secret)
        nginx_root = os.path.join(workdir, "nginx-root")
        setup_objects(s3, nginx_root)
        nginx1, nginx1_port = start_nginx(workdir, "nginx-1", region, nginx_root, 1)
        servers.append(nginx1)
        nginx_auto = None
        if not a.no_nginx_auto:
            nginx_auto, nginx_auto_port = start_nginx(workdir, "nginx-auto", region, nginx_root, "auto")
            servers.append(nginx_auto)

        work = []  # key, label, runner
        for name, size in SIZES:
            path = "/%s/obj-%s" % (BUCKET, name)
            work.append(("get_%s" % name, "GET %s tandem S3" % name,
                         lambda p=path: common.run_wrk("https://127.0.0.1:%d%s" % (s3_port, p), a.duration,
                                                       a.threads, a.connections, {}, wrk_log, region.server)))
            work.append(("nginx_%s" % name, "GET %s nginx, 1 worker" % name,
                         lambda p=path: common.run_wrk("https://127.0.0.1:%d%s" % (nginx1_port, p), a.duration,
                                                       a.threads, a.connections, {}, wrk_log, nginx1)))
            if nginx_auto:
                work.append(("nginx_auto_%s" % name, "GET %s nginx, workers auto" % name,
                             lambda p=path: common.run_wrk("https://127.0.0.1:%d%s" % (nginx_auto_port, p),
                                                           a.duration, a.threads, a.connections, {},
                                                           wrk_log, nginx_auto)))
        for name, size in SIZES:
            work.append(("put_%s" % name, "PUT %s tandem S3, %d clients" % (name, PUT_CLIENTS),
                         lambda s=size: run_put(tool, s3, region.ca, s, a.duration, region, wrk_log)))
            work.append(("fsync_%s" % name, "write+fsync+rename %s, %d thr" % (name, PUT_CLIENTS),
                         lambda s=size: run_fsync(tool, workdir, s, a.duration, wrk_log)))

        rounds = []
        for rnd in range(1, a.rounds + 1):
            res = {}
            for key, label, runner in work:
                r = runner()
                if not region.server.alive():
                    fail("the region exited during %s:\n%s" % (label, region.server.tail()))
                res[key] = r
                mbs = r.get("mb_s")
                if mbs is None and r.get("raw"):
                    mbs = r["raw"]["bytes"] / (r["raw"]["duration_us"] / 1e6) / 1e6
                    r["mb_s"] = mbs
                cpu = "" if r["server_cpu"] is None else "  server %.2f" % r["server_cpu"]
                cpu += "  client %.2f" % r["client_cpu"]
                cpu += "" if r["other_cpu"] is None else "  other %.2f cores" % r["other_cpu"]
                err = "  ERRORS %s" % r["error_count"] if r["error_count"] else ""
                log("  round %d  %-36s %9s/s %8.1f MB/s  p50 %9s  p99 %9s%s%s"
                    % (rnd, label, common.fmt_rps(r["rps"]), mbs or 0, common.fmt_ms(r["p50_ms"]),
                       common.fmt_ms(r["p99_ms"]), cpu, err))
            rounds.append(res)

        log("slow readers: %d concurrent GETs of the 1 MiB object, each reading %d bytes/s, %d s ..."
            % (a.slow_readers, SLOW_READ, a.hold))
        slow = slow_readers(region, s3_port, a.slow_readers, a.hold)
        if not region.server.alive():
            fail("the region exited during the slow readers:\n" + region.server.tail())
        finished = True
    except KeyboardInterrupt:
        fail("interrupted")
    finally:
        for s in reversed(servers):
            s.stop()
        if not finished:
            print("objects bench: logs and data kept in " + os.path.relpath(workdir, ROOT), file=sys.stderr)

    med = {}
    for key, label, _ in work:
        rs = [r[key] for r in rounds]
        med[key] = {"label": label, "rps": common.median([r["rps"] for r in rs]),
                    "mb_s": common.median([r["mb_s"] for r in rs]),
                    "p50_ms": common.median([r["p50_ms"] for r in rs]),
                    "p99_ms": common.median([r["p99_ms"] for r in rs]),
                    "server_cpu": common.median([r["server_cpu"] for r in rs]),
                    "other_cpu": common.median([r["other_cpu"] for r in rs]),
                    "errors": sum(r["error_count"] for r in rs),
                    "rounds_rps": [round(r["rps"], 1) for r in rs]}

    def ratio(x, y):
        return med[x]["rps"] / med[y]["rps"] if med[y]["rps"] else 0.0

    ratios = {"get_4k_vs_nginx": ratio("get_4k", "nginx_4k"), "get_1m_vs_nginx": ratio("get_1m", "nginx_1m"),
              "put_4k_vs_fsync": ratio("put_4k", "fsync_4k"), "put_1m_vs_fsync": ratio("put_1m", "fsync_1m")}
    round_ratios = [{k: (r[x]["rps"] / r[y]["rps"] if r[y]["rps"] else None)
                     for k, x, y in (("get_4k_vs_nginx", "get_4k", "nginx_4k"),
                                     ("get_1m_vs_nginx", "get_1m", "nginx_1m"),
                                     ("put_4k_vs_fsync", "put_4k", "fsync_4k"),
                                     ("put_1m_vs_fsync", "put_1m", "fsync_1m"))} for r in rounds]
    # bounded: the growth stays near max_buffered_bytes, not N x 1 MiB
    budget_mb = region_limit(region, "max_buffered_bytes", 128 << 20) / (1 << 20)
    bound_mb = budget_mb * BOUND_FACTOR
    bound_ok = slow["rss_growth_mb"] <= bound_mb
    small = slow["normal"]["4k"]
    large = slow["normal"]["1m"]
    served_ok = (small["requests"] > 0 and small["ok"] == small["requests"]
                 and not large["other"] and large["ok"] + large["slowdown_503"] == large["requests"])
    checks = [
        ("GET 4 KiB vs nginx (1 worker)", "%.2f" % ratios["get_4k_vs_nginx"], "-", "-"),
        ("GET 1 MiB vs nginx (1 worker)", "%.2f" % ratios["get_1m_vs_nginx"], ">= %.1f" % TARGET_GET_1M,
         "PASS" if ratios["get_1m_vs_nginx"] >= TARGET_GET_1M else "MISS"),
        ("PUT 4 KiB vs write+fsync+rename", "%.2f" % ratios["put_4k_vs_fsync"], "-", "-"),
        ("PUT 1 MiB vs write+fsync+rename", "%.2f" % ratios["put_1m_vs_fsync"], "-", "-"),
        ("RSS growth, %d slow 1 MiB GETs" % slow["connections"], "%.1f MB" % slow["rss_growth_mb"],
         "<= %.0f MB" % bound_mb, "PASS" if bound_ok else "MISS"),
        ("normal 4 KiB GET meanwhile", "%s ms p50" % small["p50_ms"], "all 200",
         "PASS" if served_ok else "MISS"),
    ]
    print()
    print("medians of %d round(s), %ds each" % (a.rounds, a.duration))
    print("%-38s %10s %9s %10s %10s  %8s %6s  per-round" % ("workload", "ops/s", "MB/s", "p50", "p99",
                                                             "CPU: srv", "other"))
    for key, m in med.items():
        c = (lambda v: "-" if v is None else "%.2f" % v)
        print("%-38s %10s %9.1f %10s %10s  %8s %6s  %s" % (
            m["label"], common.fmt_rps(m["rps"]), m["mb_s"] or 0, common.fmt_ms(m["p50_ms"]),
            common.fmt_ms(m["p99_ms"]), c(m["server_cpu"]), c(m["other_cpu"]),
            ", ".join(common.fmt_rps(x) for x in m["rounds_rps"])))
    print("slow readers: %d x GET 1 MiB at %d B/s: answers %s; RSS %.1f MB before, %.1f MB peak "
          "(+%.1f MB: %s KB per served download), %d sockets held at the end" % (
              slow["connections"], SLOW_READ, slow["statuses"], slow["rss_before_mb"], slow["rss_peak_mb"],
              slow["rss_growth_mb"], slow["per_served_kb"], slow["server_sockets_held"]))
    for name, m in slow["normal"].items():
        print("  normal client GET %s meanwhile: %d requests, %d ok (p50 %s ms, max %s ms), %d 503 SlowDown%s"
              % (name, m["requests"], m["ok"], m["p50_ms"], m["max_ms"], m["slowdown_503"],
                 ", other: %s" % m["other"] if m["other"] else ""))
    print()
    print("%-38s %10s %10s  result" % ("check", "value", "target"))
    for name, value, target, result in checks:
        print("%-38s %10s %10s  %s" % (name, value, target, result))
    print("per-round ratios: " + "; ".join(
        "%s %s" % (k, ", ".join("-" if r[k] is None else "%.2f" % r[k] for r in round_ratios))
        for k in ratios))
    errors = sum(m["errors"] for m in med.values())
    if errors:
        print("WARNING: %d errors (see %s)" % (errors, os.path.relpath(wrk_log, ROOT)))
    results = {"command": "bench/objects.py", "argv": sys.argv[1:],
               "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "machine": common.tool_versions(tandem),
               "settings": {"duration_s": a.duration, "rounds": a.rounds, "wrk_threads": a.threads,
                            "wrk_connections": a.connections, "put_clients": PUT_CLIENTS,
                            "slow_readers": a.slow_readers, "slow_read_bytes_per_s": SLOW_READ,
                            "slow_rcvbuf": SLOW_RCVBUF},
               "medians": med, "ratios": ratios, "round_ratios": round_ratios, "slow_readers": slow,
               "checks": [dict(zip(("check", "value", "target", "result"), c)) for c in checks],
               "rounds": rounds, "errors": errors}
    with open(a.out, "w") as f:
        json.dump(results, f, indent=1, default=str)
        f.write("\n")
    print("\nresults: " + os.path.relpath(a.out, ROOT))
    if a.keep:
        print("work dir kept: " + os.path.relpath(workdir, ROOT))
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
