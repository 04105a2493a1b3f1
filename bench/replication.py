#!/usr/bin/python3
"""bench/replication.py - the replication benchmark of `make bench`.

Two tandem regions on this machine (eu primary, us secondary) with an
artificial one-way delay on their link (link_delay_ms, 40 ms by default),
and, in the same run, PostgreSQL 15 (Debian) with a streaming-replication
standby whose replication connection goes through a TCP relay that adds the
same one-way delay in each direction. Both take the same open-loop load of
single-row insert transactions at each --rates value (1,000 and 5,000/s).

Measured, per system and rate, over the steady state (the first --warmup
seconds of each load are left out):

  tandem
    write lag     per acknowledged write to eu (its seq from X-Tandem-LSN):
                  the first moment a poll of us /readyz shows position >= seq,
                  minus the moment the client received eu's 201 ("from ack")
                  or sent the request ("from send")
    position lag  per sample of eu's committed position (eu /readyz, every
                  ~1 ms): the first moment us shows it applied, minus the
                  moment eu showed it committed
    forwarded     writes sent to us at --fwd-rate/s (open loop over
                  FWD_CONNS connections), next to the same stream sent to eu
                  directly; during each load and --fwd-idle s without load
  PostgreSQL
    row lag       per inserted row (seq bigserial, created_at =
                  clock_timestamp()): the first moment a poll of the standby
                  shows max(seq) >= seq, minus created_at (the INSERT's start
                  inside the server: comparable to tandem's "from send")
    position lag  per sample of the primary's pg_current_wal_flush_lsn()
                  (every ~1 ms): the first moment the standby's
                  pg_last_wal_replay_lsn() reaches it, minus the sample's time
                  (the same definition as tandem's position lag)
    replay_lag    pg_stat_replication.replay_lag sampled every 50 ms
                  (wal_receiver_status_interval = 1s; it includes the trip
                  back of the standby's feedback, i.e. one more link delay)

Targets (the issue): tandem p99 write lag <= delay + 50 ms at 1,000/s;
tandem lag no worse than PostgreSQL's in the same run (compared on the
position lag p50 and p99, defined the same way for both); forwarded write
p50 <= 2 x delay + eu's own write p50 + 10 ms (and p99 against eu's p99).

Informational runs at the first rate (10 s each; --no-extras skips them):
PostgreSQL with the relay's delay at 0, tandem restarted with
EVENT_PRECISE_TIMER=1 (libevent otherwise times the link delay line with
CLOCK_MONOTONIC_COARSE, 4 ms steps here), and tandem with link_delay_ms = 0.

Python 3.11 standard library only (the PostgreSQL client here is a minimal
implementation of the wire protocol's simple query). Usage, from the
repository root:

    /usr/bin/python3 bench/replication.py --tandem build/tandem [--quick]
        [--duration S] [--rates 1000,5000] [--rounds N] [--no-pg]
        [--no-extras] [--keep] [--repl-out FILE]

Writes build/bench/replication.json (docs/BENCHMARKS.md explains every
figure). Every process it starts (regions,
postgres servers, pgbench, its own workers) is stopped by its own pid.
"""

import argparse
import asyncio
import bisect
import collections
import json
import multiprocessing
import os
import platform
import pwd
import re
import resource
import shutil
import signal
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "build", "bench")
PG_BIN = "/usr/lib/postgresql/15/bin"

COLLECTION = "repl_bench"
LAG_MARGIN_MS = 50.0      # target: p99 lag <= delay + 50 ms (at 1,000/s)
FWD_MARGIN_MS = 10.0      # target: forwarded <= 2 x delay + eu write p50 + 10 ms
TARGET_LAG_RATE = 1000
FWD_CONNS = 4             # connections per forwarded-write stream

mono = time.monotonic


def log(msg):
    print(msg, flush=True)


class BenchError(Exception):
    pass


def fail(msg):
    raise BenchError(msg)


# --------------------------------------------------------------------------
# small helpers

def free_port():
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        if 1024 <= p <= 60000:
            return p
    fail("no free port")


def port_free(p):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", p))
            return True
        except OSError:
            return False


def free_port_base(n):
    """A port P such that P .. P+n-1 are free on 127.0.0.1."""
    for _ in range(200):
        p = free_port()
        if p + n <= 65000 and all(port_free(p + i) for i in range(n)):
            return p
    fail("no run of free ports")


def pct(xs, q):
    """The q-th percentile (0..100) of xs, nearest rank; None if empty."""
    if not xs:
        return None
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(round(q / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def summary_ms(xs):
    """p50/p99/max (ms) of a list of seconds."""
    if not xs:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    s = sorted(xs)
    return {"n": len(s), "p50_ms": pct(s, 50) * 1000, "p99_ms": pct(s, 99) * 1000,
            "max_ms": s[-1] * 1000, "mean_ms": statistics.fmean(s) * 1000}


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def proc_cpu_seconds(pid, children=False):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        t = int(fields[11]) + int(fields[12])
        if children:
            t += int(fields[13]) + int(fields[14])
        return t / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def proc_children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def system_cpu_ticks():
    with open("/proc/stat") as f:
        vals = [int(x) for x in f.readline().split()[1:9]]
    idle = vals[3] + vals[4]
    total = sum(vals)
    return total - idle, total


class CpuMeter:
    """Cores busy on average during a phase: the servers (a callable giving
    their CPU seconds), the client side (this script and the given worker
    processes: load generators, watchers, pgbench), and the rest of the
    machine."""

    def __init__(self, server_cpu, client_pids=()):
        self.server_cpu = server_cpu
        self.client_pids = list(client_pids)

    def client_cpu(self):
        # children reaped meanwhile (pgbench) move from /proc to RUSAGE_CHILDREN
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        return ru.ru_utime + ru.ru_stime + sum(proc_cpu_seconds(p) for p in self.client_pids)

    def start(self):
        self.t0 = mono()
        self.s0 = self.server_cpu()
        self.c0 = self.client_cpu()
        self.own0 = resource.getrusage(resource.RUSAGE_SELF)
        self.sys0 = system_cpu_ticks()

    def stop(self):
        w = max(mono() - self.t0, 1e-6)
        srv = (self.server_cpu() - self.s0) / w
        own = resource.getrusage(resource.RUSAGE_SELF)
        cli = (self.client_cpu() - self.c0 + own.ru_utime + own.ru_stime
               - self.own0.ru_utime - self.own0.ru_stime) / w
        b1, t1 = system_cpu_ticks()
        dt = t1 - self.sys0[1]
        busy = (b1 - self.sys0[0]) / dt * (os.cpu_count() or 1) if dt > 0 else None
        return {"server_cpu": round(srv, 2), "client_cpu": round(cli, 2),
                "other_cpu": None if busy is None else round(max(0.0, busy - srv - cli), 2)}


class Proc:
    """A server process we started; stopped by its own pid."""

    def __init__(self, argv, log_path, stop_signal=signal.SIGTERM, **kw):
        self.log_path = log_path
        self.stop_signal = stop_signal
        self.log_file = open(log_path, "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log_file,
                                     stderr=subprocess.STDOUT, start_new_session=True, **kw)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=20):
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(self.stop_signal)
                self.proc.wait(timeout=timeout)
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


# --------------------------------------------------------------------------
# HTTP/1.1 over TLS, keep-alive: a blocking client and an asyncio protocol

RE_CLEN = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.I)
RE_LSN = re.compile(rb"\r\nx-tandem-lsn:[ \t]*(\d+)/(\d+)", re.I)
RE_POS = re.compile(rb'"position":(\d+)')


def http_request_bytes(method, path, token=None, body=None):
    h = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if token:
        h.append(f"Authorization: Bearer {token}")
    if body is not None:
        h.append("Content-Type: application/json")
        h.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(h) + "\r\n\r\n").encode() + (body or b"")


class SyncHttp:
    """One keep-alive HTTPS connection, blocking; ca=None: plain HTTP (the
    /metrics listener)."""

    def __init__(self, port, ca, timeout=30):
        self.port, self.ca, self.timeout = port, ca, timeout
        self.ctx = ssl.create_default_context(cafile=ca) if ca else None
        self.sock = None

    def connect(self):
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self.ctx.wrap_socket(raw, server_hostname="127.0.0.1") if self.ctx else raw
        self.buf = b""

    def close(self):
        if self.sock:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def request_raw(self, data):
        """Send request bytes; returns (status, head bytes, body bytes)."""
        if self.sock is None:
            self.connect()
        try:
            self.sock.sendall(data)
            buf = self.buf
            while True:
                i = buf.find(b"\r\n\r\n")
                if i >= 0:
                    break
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise OSError("connection closed")
                buf += chunk
            head = buf[:i]
            m = RE_CLEN.search(head)
            n = int(m.group(1)) if m else 0
            end = i + 4 + n
            while len(buf) < end:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise OSError("connection closed")
                buf += chunk
            self.buf = buf[end:]
            return int(head[9:12]), head, buf[i + 4:end]
        except (OSError, ValueError):
            self.close()
            raise

    def request(self, method, path, body=None, token=None):
        data = None if body is None else json.dumps(body).encode()
        status, head, raw = self.request_raw(http_request_bytes(method, path, token, data))
        try:
            return status, head, json.loads(raw) if raw else None
        except ValueError:
            return status, head, raw


def lsn_of(head):
    m = RE_LSN.search(head)
    return int(m.group(2)) if m else None


class AsyncHttp(asyncio.Protocol):
    """One keep-alive HTTPS connection of the load generator, one request at
    a time; on_done(conn, item, status, seq, t_send, t_ack) per answer."""

    def __init__(self, on_done):
        self.on_done = on_done
        self.buf = bytearray()
        self.item = None
        self.dead = False

    def connection_made(self, transport):
        self.tr = transport

    def send(self, data, item):
        self.item = item
        self.t_send = mono()
        self.tr.write(data)

    def data_received(self, data):
        self.buf += data
        while self.item is not None:
            i = self.buf.find(b"\r\n\r\n")
            if i < 0:
                return
            head = bytes(self.buf[:i])
            m = RE_CLEN.search(head)
            end = i + 4 + (int(m.group(1)) if m else 0)
            if len(self.buf) < end:
                return
            t = mono()
            del self.buf[:end]
            item, self.item = self.item, None
            self.on_done(self, item, int(head[9:12]), lsn_of(head), self.t_send, t)

    def connection_lost(self, exc):
        self.dead = True
        if self.item is not None:
            item, self.item = self.item, None
            self.on_done(self, item, 0, None, self.t_send, mono())


# --------------------------------------------------------------------------
# worker processes (forked): open-loop load, position watcher, forwarded writes

def write_body(n):
    return (b'{"title":"replicated write","n":%d,"done":false,"priority":2,'
            b'"tags":["bench","repl"]}' % n)


def load_worker(cfg, k, nproc, pipe):
    """Slots i = k, k+nproc, ... of an open-loop schedule: slot i is due at
    t_start + i / rate. A due slot goes to an idle connection, or waits for
    one (its latency then includes the wait: no coordinated omission)."""
    try:
        res = asyncio.run(_load_main(cfg, k, nproc))
        pipe.send(("ok", res))
    except Exception as e:  # noqa: BLE001 - reported to the parent
        pipe.send(("error", f"{type(e).__name__}: {e}"))
    pipe.close()


async def _load_main(cfg, k, nproc):
    loop = asyncio.get_running_loop()
    ctx = ssl.create_default_context(cafile=cfg["ca"])
    rate, t_start, n_total = cfg["rate"], cfg["t_start"], cfg["n_total"]
    head = (f"POST {cfg['path']} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {cfg['token']}\r\nContent-Type: application/json\r\n")
    results = []
    idle = []
    pending = collections.deque()
    outstanding = [0]
    all_done = asyncio.Event()

    def start(conn, item):
        i = item[0]
        body = write_body(i)
        conn.send((head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body, item)

    def on_done(conn, item, status, seq, t_send, t_ack):
        results.append((item[0], item[1], t_send, t_ack, status, seq))
        outstanding[0] -= 1
        if conn.dead:
            pass
        elif pending:
            start(conn, pending.popleft())
        else:
            idle.append(conn)
        if outstanding[0] == 0 and dispatch_done[0]:
            all_done.set()

    dispatch_done = [False]
    for _ in range(cfg["conns"]):
        _, proto = await loop.create_connection(lambda: AsyncHttp(on_done), "127.0.0.1",
                                                cfg["port"], ssl=ctx,
                                                server_hostname="127.0.0.1")
        idle.append(proto)
    i = k
    while i < n_total:
        t_due = t_start + i / rate
        d = t_due - mono()
        if d > 0:
            await asyncio.sleep(d)
        now = mono()
        while i < n_total and t_start + i / rate <= now:
            pending.append((i, t_start + i / rate))
            outstanding[0] += 1
            i += nproc
        while pending and idle:
            start(idle.pop(), pending.popleft())
    dispatch_done[0] = True
    if outstanding[0] > 0:
        try:
            await asyncio.wait_for(all_done.wait(), timeout=cfg["drain_s"])
        except asyncio.TimeoutError:
            pass
    for item in pending:
        results.append((item[0], item[1], None, None, -1, None))  # never sent
    return results


def watcher_worker(cfg, pipe):
    """Polls us and eu /readyz (positions) about every cfg['period'] s until
    t_stop, and both /metrics every 100 ms (tandem_replication_lag_seconds)."""
    try:
        us = SyncHttp(cfg["us_port"], cfg["ca"], timeout=5)
        eu = SyncHttp(cfg["eu_port"], cfg["ca"], timeout=5)
        # /metrics: plain HTTP on each region's metrics_listen
        us_m = SyncHttp(cfg["us_metrics_port"], None, timeout=5)
        eu_m = SyncHttp(cfg["eu_metrics_port"], None, timeout=5)
        rq = http_request_bytes("GET", "/readyz")
        mq = http_request_bytes("GET", "/metrics")
        us_s, eu_s, metrics = [], [], []
        period = cfg["period"]
        next_t = mono()
        next_m = next_t
        while True:
            now = mono()
            if now >= cfg["t_stop"]:
                break
            t0 = mono()
            st, _, body = us.request_raw(rq)
            t1 = mono()
            if st == 200:
                us_s.append((t0, t1, int(RE_POS.search(body).group(1))))
            t2 = mono()
            st, _, body = eu.request_raw(rq)
            t3 = mono()
            if st == 200:
                eu_s.append((t2, t3, int(RE_POS.search(body).group(1))))
            if t3 >= next_m:
                next_m = t3 + 0.1
                row = {"t": t3}
                for name, c in (("eu", eu_m), ("us", us_m)):
                    st, _, body = c.request_raw(mq)
                    m = re.search(rb"\ntandem_replication_lag_seconds\{[^}]*\} ([0-9.]+)", body)
                    if m:
                        row[name] = float(m.group(1))
                metrics.append(row)
            next_t += period
            d = next_t - mono()
            if d > 0:
                time.sleep(d)
            else:
                next_t = mono()
        pipe.send(("ok", {"us": us_s, "eu": eu_s, "metrics": metrics}))
    except Exception as e:  # noqa: BLE001
        pipe.send(("error", f"{type(e).__name__}: {e}"))
    pipe.close()


def fwd_worker(cfg, pipe):
    """Two paced streams at cfg['rate']/s each: POSTs to us (forwarded to
    eu) and the same POSTs to eu directly. Each stream is open loop over
    FWD_CONNS keep-alive connections (one thread each, taking every
    FWD_CONNS-th slot), so a forwarded write's ~2 x delay does not lower
    the rate."""
    out = {"us": [], "eu": []}
    errors = []
    nconn = FWD_CONNS

    def stream(name, port, j, offset):
        try:
            c = SyncHttp(port, cfg["ca"], timeout=15)
            c.connect()
            n = j
            while True:
                t_due = cfg["t_start"] + offset + n / cfg["rate"]
                if t_due >= cfg["t_end"]:
                    break
                d = t_due - mono()
                if d > 0:
                    time.sleep(d)
                body = write_body(10_000_000 + n)
                data = http_request_bytes("POST", cfg["path"], cfg["token"], body)
                t0 = mono()
                st, head, _ = c.request_raw(data)
                t1 = mono()
                out[name].append((t0, t1, st, lsn_of(head)))
                n += nconn
        except Exception as e:  # noqa: BLE001
            errors.append(f"{name}: {type(e).__name__}: {e}")

    ts = [threading.Thread(target=stream, args=(name, cfg[f"{name}_port"], j, off))
          for name, off in (("us", 0.0), ("eu", 0.5 / cfg["rate"])) for j in range(nconn)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    pipe.send(("ok", out) if not errors else ("error", "; ".join(errors)))
    pipe.close()


def spawn(target, *args):
    mp = multiprocessing.get_context("fork")
    r, w = mp.Pipe(duplex=False)
    p = mp.Process(target=target, args=(*args, w), daemon=True)
    p.start()
    w.close()
    return p, r


def collect(p, r, what, timeout):
    """The result of a worker process; BenchError if it failed."""
    if not r.poll(timeout):
        if p.is_alive():
            p.terminate()  # our own child, by its pid
        p.join(5)
        fail(f"{what}: no result within {timeout:.0f} s")
    status, val = r.recv()
    p.join(10)
    if status != "ok":
        fail(f"{what}: {val}")
    return val


# --------------------------------------------------------------------------
# lag computation

def prep(samples):
    """Sorted by time, values made non-decreasing (a running max)."""
    samples = sorted(samples)
    vals, m = [], -1
    for _, _, v in samples:
        m = max(m, v)
        vals.append(m)
    return {"t0": [s[0] for s in samples], "t1": [s[1] for s in samples], "vals": vals}


def position_lag(primary, replica, t_from, t_to):
    """Per primary sample in [t_from, t_to): the first replica answer that
    shows that position reached, minus the primary sample's answer time.
    Returns (lags in s, samples never reached)."""
    lags, missing = [], 0
    for t0, t1, v in zip(primary["t0"], primary["t1"], primary["vals"]):
        if not (t_from <= t1 < t_to):
            continue
        j = bisect.bisect_left(replica["vals"], v)
        # the replica may have been polled before the primary answered: look
        # only at replica answers after the primary's answer
        k = bisect.bisect_left(replica["t1"], t1)
        j = max(j, k)
        if j >= len(replica["vals"]):
            missing += 1
            continue
        lags.append(replica["t1"][j] - t1)
    return lags, missing


# --------------------------------------------------------------------------
# tandem: a two-region deployment

def set_ini(text, section, key, value):
    start = text.index(f"[{section}]")
    end = text.find("\n[", start + 1)
    end = len(text) if end < 0 else end
    sec = text[start:end]
    pat = re.compile(rf"^{re.escape(key)}\s*=.*$", re.M)
    line = f"{key} = {value}"
    sec = pat.sub(line, sec, count=1) if pat.search(sec) else sec.replace(
        f"[{section}]\n", f"[{section}]\n{line}\n", 1)
    return text[:start] + sec + text[end:]


def drop_section(text, section):
    """The config text without [section]. The benchmark runs the two regions
    without the witness: two voters, fixed roles, no automatic failover, as
    the PostgreSQL pair it is compared with (and as the replication tests
    run). A witness in the config that is not running would leave the
    primary without a lease at start (503 no_lease on the first write)."""
    start = text.find(f"[{section}]")
    if start < 0:
        return text
    end = text.find("\n[", start + 1)
    return text[:start] + (text[end + 1:] if end >= 0 else "")


class Tandem:
    def __init__(self, binary, workdir, delay_ms, name="tandem", env=None):
        self.env = env
        self.dir = os.path.join(workdir, name)
        self.base = free_port_base(10)  # the generated config uses base .. base+8
        r = subprocess.run([binary, "init", "--address", "127.0.0.1", "--data", self.dir, "--port-base", str(self.base)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            fail(f"tandem init: {r.stderr.strip()}")
        self.config = os.path.join(self.dir, "tandem.ini")
        with open(self.config) as f:
            text = f.read()
        text = set_ini(text, "replication", "link_delay_ms", str(delay_ms))
        text = drop_section(text, "witness")
        with open(self.config, "w") as f:
            f.write(text)
        self.binary = binary
        self.ca = os.path.join(self.dir, "certs", "ca.pem")
        self.ports = {"eu": self.base, "us": self.base + 1}
        self.metrics_ports = {"eu": self.base + 5, "us": self.base + 6}  # plain HTTP
        self.procs = {}

    def start(self):
        for name in ("eu", "us"):
            self.procs[name] = Proc([self.binary, "region", "--config", self.config,
                                     "--region", name],
                                    os.path.join(self.dir, f"region-{name}.log"), env=self.env)
            self.wait_healthy(name)
        self.wait_streaming()

    def restart(self, env=None, delay_ms=None):
        """Stop both regions, optionally change the environment or the link
        delay, start them again, and wait until us streams again."""
        self.stop()
        self.env = env
        if delay_ms is not None:
            with open(self.config) as f:
                text = f.read()
            with open(self.config, "w") as f:
                f.write(set_ini(text, "replication", "link_delay_ms", str(delay_ms)))
        self.start()

    def wait_streaming(self, timeout=30):
        """Until eu says its secondary is connected (degraded gauge 0)."""
        deadline = mono() + timeout
        while mono() < deadline:
            c = SyncHttp(self.metrics_ports["eu"], None, timeout=5)
            try:
                st, _, body = c.request_raw(http_request_bytes("GET", "/metrics"))
            finally:
                c.close()
            if re.search(rb"\ntandem_replication_degraded\{[^}]*\} 0", body):
                return
            time.sleep(0.05)
        fail(f"us is not streaming from eu after {timeout} s:\n{self.procs['us'].tail()}")

    def wait_healthy(self, name, timeout=30):
        deadline = mono() + timeout
        while mono() < deadline:
            if not self.procs[name].alive():
                fail(f"tandem {name} exited at start:\n{self.procs[name].tail()}")
            try:
                c = SyncHttp(self.ports[name], self.ca, timeout=2)
                st, _, _ = c.request("GET", "/healthz")
                c.close()
                if st == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        fail(f"tandem {name} did not become healthy:\n{self.procs[name].tail()}")

    def check_alive(self, what):
        for name, p in self.procs.items():
            if not p.alive():
                fail(f"tandem {name} exited (status {p.proc.returncode}) during {what}:\n"
                     f"{p.tail()}")

    def position(self, name):
        c = SyncHttp(self.ports[name], self.ca, timeout=5)
        try:
            st, _, body = c.request("GET", "/readyz")
        finally:
            c.close()
        if st != 200:
            fail(f"{name} /readyz answered {st}: {body}")
        return body["position"]

    def wait_synced(self, timeout=60):
        deadline = mono() + timeout
        while mono() < deadline:
            eu, us = self.position("eu"), self.position("us")
            if us >= eu:
                return eu
            time.sleep(0.05)
        fail(f"us did not catch up with eu within {timeout} s (eu {eu}, us {us})")

    def cpu(self):
        return sum(proc_cpu_seconds(p.pid) for p in self.procs.values())

    def commit_metrics(self, name):
        """The writer thread's counters: batches, writes, seconds in COMMIT."""
        c = SyncHttp(self.metrics_ports[name], None, timeout=5)
        try:
            st, _, body = c.request_raw(http_request_bytes("GET", "/metrics"))
        finally:
            c.close()
        out = {}
        for key, metric in (("batches", "tandem_write_batches_total"),
                            ("writes", "tandem_writes_total"),
                            ("commit_s", "tandem_commit_seconds_total")):
            m = re.search(rb"\n" + metric.encode() + rb"(?:\{[^}]*\})? ([0-9.e+]+)", body)
            if m:
                out[key] = float(m.group(1))
        return out

    def stop(self):
        for name in ("us", "eu"):
            if name in self.procs:
                self.procs[name].stop()


def tandem_signup(t):
    c = SyncHttp(t.ports["eu"], t.ca)
    email = f"repl-bench-{os.getpid()}-{int(time.time())}@example.com"
    st, _, body = c.request("POST", "/v1/auth/signup",
                            {"email": email, "password": "bench-password-1"})
    if st != 201:
        fail(f"signup answered {st}: {body}")
    token = body["access_token"]
    path = f"/v1/collections/{COLLECTION}/records"
    st, head, body = c.request("POST", path, {"title": "first"}, token)
    if st != 201 or lsn_of(head) is None:
        fail(f"POST on eu answered {st} (LSN {lsn_of(head)}): {body}")
    c.close()
    t.wait_synced()
    c = SyncHttp(t.ports["us"], t.ca)
    st, head, body = c.request("POST", path, {"title": "forwarded"}, token)
    if st != 201 or lsn_of(head) is None:
        fail(f"POST on us (forwarded) answered {st}: {body}")
    c.close()
    return token, path


def run_tandem(t, token, path, rate, duration, warmup, args):
    """One open-loop load at `rate` writes/s on eu, with the watcher and the
    forwarded-write streams; returns the figures."""
    nproc = max(1, min(args.load_procs, int(rate // 1500) + 1))
    conns = max(4, args.connections // nproc)
    n_total = int(rate * duration)
    t_start = mono() + 1.5 + 0.2 * nproc  # time to fork and connect
    t_end = t_start + duration
    tail = args.tail
    watcher = spawn(watcher_worker, {"us_port": t.ports["us"], "eu_port": t.ports["eu"],
                                     "us_metrics_port": t.metrics_ports["us"],
                                     "eu_metrics_port": t.metrics_ports["eu"],
                                     "ca": t.ca, "period": args.poll_ms / 1000.0,
                                     "t_stop": t_end + tail})
    fwd = None
    if args.fwd_rate > 0:
        fwd = spawn(fwd_worker, {"us_port": t.ports["us"], "eu_port": t.ports["eu"],
                                 "ca": t.ca, "token": token, "path": path,
                                 "rate": args.fwd_rate, "t_start": t_start + warmup,
                                 "t_end": t_end})
    loads = [spawn(load_worker, {"port": t.ports["eu"], "ca": t.ca, "token": token,
                                 "path": path, "rate": rate, "n_total": n_total,
                                 "t_start": t_start, "conns": conns, "drain_s": tail}, k, nproc)
             for k in range(nproc)]
    pids = [p.pid for p, _ in loads] + [watcher[0].pid] + ([fwd[0].pid] if fwd else [])
    cpu = CpuMeter(t.cpu, pids)
    d = t_start + warmup - mono()
    if d > 0:
        time.sleep(d)
    cpu.start()
    cm0 = {n: t.commit_metrics(n) for n in ("eu", "us")}
    time.sleep(max(0.0, t_end - mono()))
    cm1 = {n: t.commit_metrics(n) for n in ("eu", "us")}
    cpu_res = cpu.stop()
    group_commit = {}
    for n in ("eu", "us"):
        a, b = cm0[n], cm1[n]
        if all(k in a and k in b for k in ("batches", "writes", "commit_s")):
            nb = b["batches"] - a["batches"]
            group_commit[n] = {"batches_per_s": nb / max(1e-6, duration - warmup),
                               "writes_per_batch": (b["writes"] - a["writes"]) / nb if nb else None,
                               "commit_ms": (b["commit_s"] - a["commit_s"]) * 1000 / nb
                               if nb else None}
    writes = []
    for k, (p, r) in enumerate(loads):
        writes += collect(p, r, f"load process {k}", duration + tail + 60)
    fwd_res = collect(*fwd, "forwarded writes", duration + 60) if fwd else None
    w = collect(*watcher, "position watcher", duration + tail + 60)
    t.check_alive(f"the {rate}/s load")

    us, eu = prep(w["us"]), prep(w["eu"])
    t_from = t_start + warmup
    steady = [x for x in writes if t_from <= x[1] < t_end]
    ok = [x for x in steady if x[4] == 201 and x[5] is not None]
    failed = [x for x in steady if not (x[4] == 201 and x[5] is not None)]
    lag_ack, lag_send, not_seen = [], [], 0
    for (_, _, t_send, t_ack, _, seq) in ok:
        j = bisect.bisect_left(us["vals"], seq)
        k = bisect.bisect_left(us["t1"], t_ack)  # answers after the ack only
        j = max(j, k)
        if j >= len(us["vals"]) or us["vals"][j] < seq:
            not_seen += 1
            continue
        lag_ack.append(us["t1"][j] - t_ack)
        lag_send.append(us["t1"][j] - t_send)
    pos_lags, pos_missing = position_lag(eu, us, t_from, t_end)
    lat = [x[3] - x[2] for x in ok]             # send -> ack
    lat_sched = [x[3] - x[1] for x in ok]       # due -> ack (open loop)
    acked_in_window = sum(1 for x in writes if x[4] == 201 and x[3] is not None
                          and t_from <= x[3] < t_end)
    seqs = sorted({x[5] for x in ok})
    periods = [b - a for a, b in zip(us["t1"], us["t1"][1:]) if t_from <= a < t_end]
    met = [m for m in w["metrics"] if t_from <= m["t"] < t_end]
    res = {
        "system": "tandem", "rate_target": rate, "duration_s": duration, "warmup_s": warmup,
        "load_processes": nproc, "connections": conns * nproc,
        "achieved_rate": acked_in_window / (t_end - t_from),
        "writes_steady": len(steady), "errors": len(failed),
        "error_statuses": dict(collections.Counter(x[4] for x in failed)),
        "writes_per_position": (len(ok) / len(seqs)) if seqs else None,
        "write_latency": summary_ms(lat),
        "write_latency_from_schedule": summary_ms(lat_sched),
        "lag_from_ack": summary_ms(lag_ack),
        "lag_from_send": summary_ms(lag_send),
        "lag_not_seen": not_seen,
        "position_lag": summary_ms(pos_lags),
        "position_lag_not_reached": pos_missing,
        "poll_period_ms": summary_ms(periods),
        "metric_lag_seconds_eu": summary_ms([m["eu"] for m in met if "eu" in m]),
        "metric_lag_seconds_us": summary_ms([m["us"] for m in met if "us" in m]),
        "group_commit": group_commit,
        **cpu_res,
    }
    if fwd_res is not None:
        f_us = [b - a for a, b, st, seq in fwd_res["us"] if st == 201]
        f_eu = [b - a for a, b, st, seq in fwd_res["eu"] if st == 201]
        res["forwarded"] = {
            "rate_each": args.fwd_rate,
            "us_forwarded": summary_ms(f_us),
            "eu_direct": summary_ms(f_eu),
            "errors": sum(1 for x in fwd_res["us"] + fwd_res["eu"] if x[2] != 201),
        }
    return res


def run_tandem_fwd_idle(t, token, path, seconds, args):
    """The forwarded-write streams alone (no background load)."""
    t_start = mono() + 0.5
    fwd = spawn(fwd_worker, {"us_port": t.ports["us"], "eu_port": t.ports["eu"], "ca": t.ca,
                             "token": token, "path": path, "rate": args.fwd_rate,
                             "t_start": t_start, "t_end": t_start + seconds})
    r = collect(*fwd, "forwarded writes (idle)", seconds + 60)
    f_us = [b - a for a, b, st, seq in r["us"] if st == 201]
    f_eu = [b - a for a, b, st, seq in r["eu"] if st == 201]
    return {"rate_each": args.fwd_rate, "seconds": seconds, "us_forwarded": summary_ms(f_us),
            "eu_direct": summary_ms(f_eu),
            "errors": sum(1 for x in r["us"] + r["eu"] if x[2] != 201)}


# --------------------------------------------------------------------------
# PostgreSQL: a minimal wire-protocol client (simple query, trust auth)

class PgError(Exception):
    pass


class PgConn:
    def __init__(self, port, user="postgres", database="postgres", timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        params = f"user\0{user}\0database\0{database}\0application_name\0repl-bench\0\0".encode()
        self.sock.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
        while True:
            t, payload = self._msg()
            if t == b"R":
                if struct.unpack("!i", payload[:4])[0] != 0:
                    raise PgError("the server asks for a password (trust expected)")
            elif t == b"E":
                raise PgError(self._err(payload))
            elif t == b"Z":
                return

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise PgError("connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _msg(self):
        h = self._read(5)
        return h[:1], self._read(struct.unpack("!i", h[1:])[0] - 4)

    @staticmethod
    def _err(payload):
        fields = {}
        for part in payload.split(b"\0"):
            if part:
                fields[part[:1]] = part[1:].decode(errors="replace")
        return f"{fields.get(b'S', 'ERROR')}: {fields.get(b'M', '?')}"

    def query(self, sql):
        """Rows (lists of str or None) of the last statement."""
        q = sql.encode() + b"\0"
        self.sock.sendall(b"Q" + struct.pack("!i", 4 + len(q)) + q)
        rows, err = [], None
        while True:
            t, p = self._msg()
            if t == b"D":
                n = struct.unpack("!h", p[:2])[0]
                off, row = 2, []
                for _ in range(n):
                    ln = struct.unpack("!i", p[off:off + 4])[0]
                    off += 4
                    if ln < 0:
                        row.append(None)
                    else:
                        row.append(p[off:off + ln].decode())
                        off += ln
                rows.append(row)
            elif t == b"T":
                rows = []
            elif t == b"E":
                err = self._err(p)
            elif t == b"Z":
                break
        if err:
            raise PgError(err)
        return rows

    def close(self):
        try:
            self.sock.sendall(b"X\0\0\0\4")
            self.sock.close()
        except OSError:
            pass


def parse_lsn(s):
    if not s:
        return None
    hi, lo = s.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def parse_interval(s):
    """'00:00:00.041234' (or 'N days ...', unlikely) to seconds."""
    if s is None:
        return None
    days = 0
    if "day" in s:
        d, s = s.split("day", 1)
        days = int(d.strip())
        s = s.lstrip("s").strip()
    h, m, sec = s.split(":")
    return days * 86400 + int(h) * 3600 + int(m) * 60 + float(sec)


def pg_watcher_worker(cfg, pipe):
    """Every ~period: the primary's WAL flush position, then the standby's
    replay position and max(seq); every 50 ms pg_stat_replication."""
    try:
        p = PgConn(cfg["primary_port"])
        s = PgConn(cfg["standby_port"])
        prim, stby, stat = [], [], []
        period = cfg["period"]
        next_t = mono()
        next_stat = next_t
        while mono() < cfg["t_stop"]:
            t0 = mono()
            row = p.query("SELECT pg_current_wal_flush_lsn()")[0]
            t1 = mono()
            prim.append((t0, t1, parse_lsn(row[0])))
            t2 = mono()
            w2 = time.time()
            row = s.query("SELECT pg_last_wal_replay_lsn(), "
                          "(SELECT max(seq) FROM bench_items)")[0]
            t3 = mono()
            w3 = time.time()
            stby.append((t2, t3, parse_lsn(row[0]), int(row[1] or 0), w2, w3))
            if t3 >= next_stat:
                next_stat = t3 + 0.05
                rows = p.query("SELECT write_lag, flush_lag, replay_lag, sent_lsn, "
                               "replay_lsn, pg_current_wal_lsn() FROM pg_stat_replication")
                if rows:
                    r = rows[0]
                    stat.append({"t": mono(), "write_lag": parse_interval(r[0]),
                                 "flush_lag": parse_interval(r[1]),
                                 "replay_lag": parse_interval(r[2]),
                                 "bytes_behind": (parse_lsn(r[5]) or 0) - (parse_lsn(r[4]) or 0)})
            next_t += period
            d = next_t - mono()
            if d > 0:
                time.sleep(d)
            else:
                next_t = mono()
        p.close()
        s.close()
        pipe.send(("ok", {"primary": prim, "standby": stby, "stat": stat}))
    except Exception as e:  # noqa: BLE001
        pipe.send(("error", f"{type(e).__name__}: {e}"))
    pipe.close()


# --------------------------------------------------------------------------
# a TCP relay that delays every chunk by the one-way delay, both directions

def relay_worker(listen_port, upstream_port, delay_value, ready, stop_evt):
    async def pump(reader, writer, delay_value):
        q = collections.deque()
        more = asyncio.Event()
        closed = [False]

        async def send():
            while True:
                while not q:
                    if closed[0]:
                        writer.close()
                        return
                    more.clear()
                    await more.wait()
                due, data = q.popleft()
                d = due - mono()
                if d > 0:
                    await asyncio.sleep(d)
                writer.write(data)
                await writer.drain()

        task = asyncio.create_task(send())
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                q.append((mono() + delay_value.value, data))
                more.set()
        except (OSError, asyncio.CancelledError):
            pass
        closed[0] = True
        more.set()
        try:
            await task
        except OSError:
            pass

    async def handle(reader, writer):
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", upstream_port)
        except OSError:
            writer.close()
            return
        for w in (writer, uw):
            w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.gather(pump(reader, uw, delay_value), pump(ur, writer, delay_value),
                             return_exceptions=True)

    async def main():
        srv = await asyncio.start_server(handle, "127.0.0.1", listen_port)
        ready.set()
        while not stop_evt.is_set():
            await asyncio.sleep(0.2)
        srv.close()

    asyncio.run(main())


# --------------------------------------------------------------------------
# PostgreSQL: a primary and a streaming standby through the relay

PG_SCRIPT = """\\set owner random(1, 1000)
INSERT INTO bench_items (owner, data) VALUES ('user-' || :owner, '{"title":"replicated write","done":false,"priority":2,"tags":["bench","repl"]}');
"""


class Postgres:
    def __init__(self, workdir, delay_ms):
        self.dir = os.path.join(workdir, "pg")
        os.makedirs(self.dir)
        self.as_root = os.geteuid() == 0
        self.run_kw = {}
        if self.as_root:
            # the servers run as postgres: it must reach its directory
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            os.chmod(workdir, 0o711)
            d = os.path.dirname(os.path.abspath(workdir))
            while True:
                st = os.stat(d)
                if not (st.st_mode & 0o001 or st.st_uid == pw.pw_uid):
                    fail(f"the postgres user cannot enter {d} (mode {st.st_mode & 0o777:o}); "
                         f"the PostgreSQL baseline keeps its data under {workdir}")
                if d == os.path.dirname(d):
                    break
                d = os.path.dirname(d)
            self.run_kw = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        os.chmod(self.dir, 0o700)
        self.primary_port = free_port()
        self.standby_port = free_port()
        self.relay_port = free_port()
        self.procs = {}
        mp = multiprocessing.get_context("fork")
        self.delay = mp.Value("d", delay_ms / 1000.0, lock=False)
        self.relay_ready = mp.Event()
        self.relay_stop = mp.Event()
        self.relay = None

    def run(self, argv, what):
        r = subprocess.run(argv, capture_output=True, text=True, cwd=self.dir, **self.run_kw)
        if r.returncode != 0:
            fail(f"{what} failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
        return r

    def start_server(self, name, data, port):
        p = Proc([f"{PG_BIN}/postgres", "-D", data, "-p", str(port)],
                 os.path.join(self.dir, f"{name}.log"), stop_signal=signal.SIGINT,
                 cwd=self.dir, **self.run_kw)
        self.procs[name] = p
        deadline = mono() + 60
        while mono() < deadline:
            if not p.alive():
                fail(f"postgres {name} exited at start:\n{p.tail()}")
            try:
                c = PgConn(port, timeout=2)
                c.close()
                return
            except (OSError, PgError):
                time.sleep(0.1)
        fail(f"postgres {name} did not start:\n{p.tail()}")

    def start(self):
        prim = os.path.join(self.dir, "primary")
        stby = os.path.join(self.dir, "standby")
        self.run([f"{PG_BIN}/initdb", "-D", prim, "-U", "postgres", "--auth=trust",
                  "--no-instructions", "-E", "UTF8", "--locale=C"], "initdb")
        with open(os.path.join(prim, "postgresql.auto.conf"), "a") as f:
            f.write(f"""# bench/replication.py
listen_addresses = '127.0.0.1'
unix_socket_directories = '{self.dir}'
wal_level = replica
synchronous_commit = on
fsync = on
max_wal_senders = 4
wal_keep_size = '1GB'
hot_standby = on
wal_receiver_status_interval = '1s'
max_connections = 100
logging_collector = off
""")
        self.start_server("primary", prim, self.primary_port)
        c = PgConn(self.primary_port)
        c.query("CREATE TABLE bench_items (seq bigserial UNIQUE, "
                "id text PRIMARY KEY DEFAULT md5(random()::text || clock_timestamp()::text), "
                "owner text NOT NULL, data jsonb NOT NULL, "
                "created_at timestamptz NOT NULL DEFAULT clock_timestamp())")
        c.query("CREATE INDEX bench_items_owner ON bench_items (owner)")
        c.close()
        self.run([f"{PG_BIN}/pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary_port),
                  "-U", "postgres", "-D", stby, "-R", "-X", "stream", "-c", "fast"],
                 "pg_basebackup")
        with open(os.path.join(stby, "postgresql.auto.conf"), "a") as f:
            f.write(f"primary_conninfo = 'host=127.0.0.1 port={self.relay_port} user=postgres "
                    f"application_name=standby'\n")
        mp = multiprocessing.get_context("fork")
        self.relay = mp.Process(target=relay_worker, daemon=True,
                                args=(self.relay_port, self.primary_port, self.delay,
                                      self.relay_ready, self.relay_stop))
        self.relay.start()
        if not self.relay_ready.wait(10):
            fail("the delaying relay did not start")
        self.start_server("standby", stby, self.standby_port)
        self.wait_streaming()

    def wait_streaming(self, timeout=60):
        c = PgConn(self.primary_port)
        deadline = mono() + timeout
        try:
            while mono() < deadline:
                rows = c.query("SELECT state FROM pg_stat_replication")
                if rows and rows[0][0] == "streaming":
                    return
                time.sleep(0.1)
        finally:
            c.close()
        fail(f"the standby is not streaming:\n{self.procs['standby'].tail()}")

    def wait_synced(self, timeout=60):
        p, s = PgConn(self.primary_port), PgConn(self.standby_port)
        try:
            want = parse_lsn(p.query("SELECT pg_current_wal_flush_lsn()")[0][0])
            deadline = mono() + timeout
            while mono() < deadline:
                have = parse_lsn(s.query("SELECT pg_last_wal_replay_lsn()")[0][0])
                if have >= want:
                    return
                time.sleep(0.05)
        finally:
            p.close()
            s.close()
        fail("the standby did not catch up")

    def cpu(self):
        tot = 0.0
        for p in self.procs.values():
            tot += proc_cpu_seconds(p.pid, children=True)
            tot += sum(proc_cpu_seconds(c) for c in proc_children(p.pid))
        return tot

    def check_alive(self, what):
        for name, p in self.procs.items():
            if not p.alive():
                fail(f"postgres {name} exited during {what}:\n{p.tail()}")

    def stop(self):
        for name in ("standby", "primary"):
            if name in self.procs:
                self.procs[name].stop(timeout=30)
        if self.relay is not None:
            self.relay_stop.set()
            self.relay.join(5)
            if self.relay.is_alive():
                self.relay.terminate()
                self.relay.join(5)


def run_pg(pg, rate, duration, warmup, delay_ms, args, tag):
    pg.delay.value = delay_ms / 1000.0
    pg.wait_synced()
    script = os.path.join(pg.dir, "insert.sql")
    with open(script, "w") as f:
        f.write(PG_SCRIPT)
    logdir = os.path.join(pg.dir, f"pgbench-{tag}")
    os.makedirs(logdir)
    c0 = PgConn(pg.primary_port)
    seq0 = int(c0.query("SELECT coalesce(max(seq), 0) FROM bench_items")[0][0])
    c0.close()
    tail = args.tail
    clients = args.pg_clients
    argv = [f"{PG_BIN}/pgbench", "-n", "-h", "127.0.0.1", "-p", str(pg.primary_port),
            "-U", "postgres", "-f", script, "-R", str(rate), "-c", str(clients), "-j", "2",
            "-T", str(duration), "-l", "--log-prefix", os.path.join(logdir, "tx"), "postgres"]
    w_start = mono()
    watcher = spawn(pg_watcher_worker, {"primary_port": pg.primary_port,
                                        "standby_port": pg.standby_port,
                                        "period": args.poll_ms / 1000.0,
                                        "t_stop": w_start + 1.0 + duration + tail + 1.0})
    time.sleep(0.5)
    t_run0 = mono()
    w_run0 = time.time()
    bench = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=pg.dir, start_new_session=True)
    cpu = CpuMeter(pg.cpu, [bench.pid, watcher[0].pid])
    time.sleep(warmup)
    cpu.start()
    try:
        out, err = bench.communicate(timeout=duration + 120)
    except subprocess.TimeoutExpired:
        bench.kill()
        out, err = bench.communicate()
        fail("pgbench did not finish")
    cpu_res = cpu.stop()
    if bench.returncode != 0:
        fail(f"pgbench failed ({bench.returncode}): {err.strip()[-2000:]}")
    w = collect(*watcher, "postgres watcher", duration + tail + 60)
    pg.check_alive(f"the {rate}/s load")

    # per transaction log lines: client tx time_us script epoch_s epoch_us [lag_us]
    txs = []
    for name in os.listdir(logdir):
        with open(os.path.join(logdir, name)) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 6:
                    end = int(parts[4]) + int(parts[5]) / 1e6
                    lat = int(parts[2]) / 1e6
                    sched = int(parts[6]) / 1e6 if len(parts) >= 7 else 0.0
                    txs.append((end, lat, sched))
    # the window of the steady state, in wall-clock time (pgbench logs
    # epochs): from warm-up after the first transaction's scheduled start
    # (pgbench connects its clients first), to the end of the run
    first = min((end - lat - sched for end, lat, sched in txs), default=w_run0)
    wall_from = first + warmup
    wall_to = first + duration
    steady_tx = [x for x in txs if wall_from <= x[0] < wall_to]
    # the rows (seq, created_at) inserted during this run, from the primary
    c = PgConn(pg.primary_port)
    rows = c.query(f"SELECT seq, extract(epoch from created_at) FROM bench_items "
                   f"WHERE seq > {seq0} ORDER BY seq")
    c.close()
    stby = sorted(w["standby"])
    # the standby's max(seq) as seen by each poll, against wall-clock time
    s_vals, m = [], 0
    for x in stby:
        m = max(m, x[3])
        s_vals.append(m)
    s_wall = [x[5] for x in stby]
    row_lags, rows_not_seen = [], 0
    for seq, created in rows:
        seq, created = int(seq), float(created)
        if not (wall_from <= created < wall_to):
            continue
        j = max(bisect.bisect_left(s_vals, seq), bisect.bisect_left(s_wall, created))
        if j >= len(s_vals):
            rows_not_seen += 1
            continue
        row_lags.append(s_wall[j] - created)
    prim = prep(w["primary"])
    stb = prep([(x[0], x[1], x[2]) for x in w["standby"]])
    t_from, t_to = t_run0 + (wall_from - w_run0), t_run0 + (wall_to - w_run0)
    pos_lags, pos_missing = position_lag(prim, stb, t_from, t_to)
    stat = [s for s in w["stat"] if t_from <= s["t"] < t_to]
    periods = [b - a for a, b in zip(stb["t1"], stb["t1"][1:]) if t_from <= a < t_to]
    m_tps = re.search(r"tps = ([0-9.]+)", out)
    res = {
        "system": "postgresql", "rate_target": rate, "duration_s": duration,
        "warmup_s": warmup, "link_delay_ms": delay_ms, "clients": clients,
        "achieved_rate": len(steady_tx) / (wall_to - wall_from),
        "pgbench_tps": float(m_tps.group(1)) if m_tps else None,
        "transactions_steady": len(steady_tx),
        "write_latency": summary_ms([x[1] for x in steady_tx]),
        "write_latency_from_schedule": summary_ms([x[1] + x[2] for x in steady_tx]),
        "row_lag_from_insert": summary_ms(row_lags),
        "rows_not_seen": rows_not_seen,
        "position_lag": summary_ms(pos_lags),
        "position_lag_not_reached": pos_missing,
        "poll_period_ms": summary_ms(periods),
        "replay_lag": summary_ms([s["replay_lag"] for s in stat if s["replay_lag"] is not None]),
        "flush_lag": summary_ms([s["flush_lag"] for s in stat if s["flush_lag"] is not None]),
        "write_lag": summary_ms([s["write_lag"] for s in stat if s["write_lag"] is not None]),
        "bytes_behind_p99": pct([s["bytes_behind"] for s in stat], 99),
        "pgbench_summary": [l for l in out.splitlines() if "=" in l or "latency" in l],
        **cpu_res,
    }
    shutil.rmtree(logdir, ignore_errors=True)
    return res


# --------------------------------------------------------------------------
# report

def f_ms(v):
    return "-" if v is None else (f"{v:.1f}" if v < 1000 else f"{v:,.0f}")


def row3(s):
    return f"{f_ms(s['p50_ms']):>7} {f_ms(s['p99_ms']):>7} {f_ms(s['max_ms']):>7}"


def aggregate(rounds, key):
    """The median over rounds of every number of results[key]."""
    runs = [r[key] for r in rounds if key in r]
    if not runs:
        return None
    if len(runs) == 1:
        return runs[0]

    def med(vals):
        if all(isinstance(v, dict) for v in vals):
            return {k: med([v.get(k) for v in vals]) for k in vals[0]}
        nums = [v for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if nums and len(nums) == len([v for v in vals if v is not None]):
            return median(nums)
        return vals[0]
    out = med(runs)
    out["rounds"] = len(runs)
    return out


def tool_versions(tandem):
    def first(argv):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (r.stdout + r.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"
    return {"tandem": first([tandem, "version"]), "postgres": first([f"{PG_BIN}/postgres", "-V"]),
            "pgbench": first([f"{PG_BIN}/pgbench", "-V"]), "python": platform.python_version(),
            "kernel": platform.release(), "cpus": os.cpu_count()}


def tandem_line(r):
    gc = "".join(f"; {n} {g['writes_per_batch']:.1f} entries/COMMIT, {g['commit_ms']:.2f} ms"
                 for n, g in r["group_commit"].items() if g["commit_ms"] is not None)
    return (f"achieved {r['achieved_rate']:,.0f}/s, lag from ack p50/p99/max "
            f"{row3(r['lag_from_ack'])} ms, position lag p99 {f_ms(r['position_lag']['p99_ms'])} ms, "
            f"write p50 {f_ms(r['write_latency']['p50_ms'])} ms"
            + (f", forwarded p50 {f_ms(r['forwarded']['us_forwarded']['p50_ms'])} ms"
               if "forwarded" in r else "")
            + gc + f"  [cpu srv {r['server_cpu']} cli {r['client_cpu']} other {r['other_cpu']}]"
            + (f" ERRORS {r['errors']} {r['error_statuses']}" if r["errors"] else "")
            + (f" NOT APPLIED {r['lag_not_seen']}" if r["lag_not_seen"] else ""))


def pg_line(r):
    return (f"achieved {r['achieved_rate']:,.0f}/s, row lag p50/p99/max "
            f"{row3(r['row_lag_from_insert'])} ms, position lag p99 "
            f"{f_ms(r['position_lag']['p99_ms'])} ms, replay_lag p99 "
            f"{f_ms(r['replay_lag']['p99_ms'])} ms, write p50 {f_ms(r['write_latency']['p50_ms'])} ms"
            f"  [cpu srv {r['server_cpu']} cli {r['client_cpu']} other {r['other_cpu']}]")


def make_checks(med, rates, delay):
    checks = []

    def add(name, value, target, note=""):
        checks.append({"check": name, "value_ms": value, "target_ms": target, "note": note,
                       "pass": value is not None and target is not None and value <= target})
    t1k = med.get(f"tandem_{TARGET_LAG_RATE}")
    if t1k:
        add(f"tandem p99 lag at {TARGET_LAG_RATE:,}/s (from ack)", t1k["lag_from_ack"]["p99_ms"],
            delay + LAG_MARGIN_MS, f"delay {delay} + {LAG_MARGIN_MS:g} ms")
        if t1k["lag_not_seen"]:
            checks[-1]["pass"] = False
        if "forwarded" in t1k:
            fw = t1k["forwarded"]["us_forwarded"]
            for q in ("p50_ms", "p99_ms"):
                own = t1k["write_latency"][q]
                add(f"forwarded write {q[:-3]} at {TARGET_LAG_RATE:,}/s", fw[q],
                    None if own is None else 2 * delay + own + FWD_MARGIN_MS,
                    f"RTT {2 * delay} + eu write {q[:-3]} {f_ms(own)} + {FWD_MARGIN_MS:g} ms"
                    + ("" if q == "p50_ms" else "; percentile-matched reading"))
    for rate in rates:
        t, p = med.get(f"tandem_{rate}"), med.get(f"pg_{rate}")
        if t and p:
            for q in ("p50_ms", "p99_ms"):
                add(f"position lag {q[:-3]} at {rate:,}/s, tandem vs postgres",
                    t["position_lag"][q], p["position_lag"][q], "postgres, same run")
    return checks


def print_report(med, checks, rates, args):
    delay = args.delay_ms
    print()
    print(f"replication, link delay {delay} ms one way; "
          + (f"medians of {args.rounds} rounds" if args.rounds > 1 else "1 round")
          + f" of {args.duration} s per rate and system (the first {args.warmup:g} s left out)")
    hdr = (f"{'':<36} {'writes/s':>8}  {'lag p50':>7} {'p99':>7} {'max':>7}  "
           f"{'pos. lag p50':>12} {'p99':>7} {'max':>7}  {'write p50':>9} {'p99':>7}")
    print(hdr)

    def line(label, rate, lag, pos=None, wl=None):
        out = f"{label:<36} {'' if rate is None else f'{rate:,.0f}':>8}  {row3(lag)}"
        if pos:
            out += f"  {f_ms(pos['p50_ms']):>12} {f_ms(pos['p99_ms']):>7} {f_ms(pos['max_ms']):>7}"
        if wl:
            out += f"  {f_ms(wl['p50_ms']):>9} {f_ms(wl['p99_ms']):>7}"
        print(out)
    for rate in rates:
        t = med.get(f"tandem_{rate}")
        if t:
            line(f"tandem @{rate}: lag from ack", t["achieved_rate"], t["lag_from_ack"],
                 t["position_lag"], t["write_latency"])
            line("  lag from send", None, t["lag_from_send"])
        v = med.get(f"tandem_{rate}_precise")
        if v:
            line("  same, EVENT_PRECISE_TIMER=1", v["achieved_rate"], v["lag_from_ack"],
                 v["position_lag"], v["write_latency"])
        v = med.get(f"tandem_{rate}_nodelay")
        if v:
            line("  same, no link delay", v["achieved_rate"], v["lag_from_ack"],
                 v["position_lag"], v["write_latency"])
        p = med.get(f"pg_{rate}")
        if p:
            line(f"postgres @{rate}: row lag from INSERT", p["achieved_rate"],
                 p["row_lag_from_insert"], p["position_lag"], p["write_latency"])
            line("  pg_stat_replication.replay_lag", None, p["replay_lag"])
        nd = med.get(f"pg_{rate}_nodelay")
        if nd:
            line("  same, no link delay", nd["achieved_rate"], nd["row_lag_from_insert"],
                 nd["position_lag"], nd["write_latency"])
    print("(ms. lag: tandem per write, postgres per row; position lag: per sample of the primary's "
          "position, same definition for both)")
    print()
    fw_rows = [(label.format(rate=rate), med[k]) for rate in rates
               for k, label in ((f"tandem_{rate}", "during {rate:,}/s"),
                                (f"tandem_{rate}_precise", "  same, precise timer"),
                                (f"tandem_{rate}_nodelay", "  same, no link delay"))
               if k in med and "forwarded" in med[k]]
    if fw_rows or med.get("tandem_fwd_idle"):
        print(f"forwarded writes ({args.fwd_rate:g}/s to us, and {args.fwd_rate:g}/s to eu "
              f"directly), RTT {2 * delay} ms:")
        print(f"  {'':<22} {'us p50':>7} {'p99':>7} {'max':>7}   {'eu direct p50':>13} {'p99':>7}"
              f"   {'eu load write p50':>17}")
        for label, r in ([("no load", dict(forwarded=med["tandem_fwd_idle"]))]
                         if med.get("tandem_fwd_idle") else []) + fw_rows:
            fw = r["forwarded"]
            own = r.get("write_latency", {}).get("p50_ms")
            print(f"  {label:<22} {row3(fw['us_forwarded'])}   "
                  f"{f_ms(fw['eu_direct']['p50_ms']):>13} {f_ms(fw['eu_direct']['p99_ms']):>7}"
                  f"   {f_ms(own) if own is not None else '-':>17}")
        print()
    for c in checks:
        print(f"{c['check']:<48} {f_ms(c['value_ms']):>7} ms  target <= "
              f"{f_ms(c['target_ms']):>7} ms ({c['note']})  {'PASS' if c['pass'] else 'MISS'}")
    rate = rates[0]
    p, pn = med.get(f"pg_{rate}"), med.get(f"pg_{rate}_nodelay")
    for key, other, label in ((f"tandem_{rate}_precise", p, "EVENT_PRECISE_TIMER=1"),
                              (f"tandem_{rate}_nodelay", pn, "no link delay, both")):
        t = med.get(key)
        if t and other:
            print(f"(informational, {label}: position lag p50/p99 at {rate:,}/s, tandem "
                  f"{f_ms(t['position_lag']['p50_ms'])} / {f_ms(t['position_lag']['p99_ms'])} ms, "
                  f"postgres {f_ms(other['position_lag']['p50_ms'])} / "
                  f"{f_ms(other['position_lag']['p99_ms'])} ms)")


def main():
    ap = argparse.ArgumentParser(description="tandem replication benchmark (make bench)",
                                 allow_abbrev=False)
    ap.add_argument("--tandem", default=os.path.join(ROOT, "build", "tandem"))
    ap.add_argument("--duration", type=int,
                    help="seconds of load per rate and system (20; --quick: 6)")
    ap.add_argument("--warmup", type=float,
                    help="seconds left out at the start of each load (3; --quick: 1.5)")
    ap.add_argument("--rates", default="1000,5000", help="writes per second (1000,5000)")
    ap.add_argument("--rounds", type=int, default=1, help="rounds of every measurement (1)")
    ap.add_argument("--delay-ms", type=int, default=40, help="one-way link delay (40)")
    ap.add_argument("--fwd-rate", type=float, default=20,
                    help="forwarded writes per second during the loads (20; 0: none)")
    ap.add_argument("--fwd-idle", type=float,
                    help="seconds of forwarded writes without load (5; --quick: 3; 0: none)")
    ap.add_argument("--connections", type=int, default=64, help="tandem load connections (64)")
    ap.add_argument("--load-procs", type=int, default=4, help="most load processes for tandem (4)")
    ap.add_argument("--pg-clients", type=int, default=32, help="pgbench clients (32)")
    ap.add_argument("--poll-ms", type=float, default=1.0, help="position poll period (1 ms)")
    ap.add_argument("--tail", type=float, default=3.0, help="seconds watched after each load (3)")
    ap.add_argument("--no-extras", action="store_true",
                    help="skip the informational runs at the first rate (10 s each): postgres "
                         "and tandem without the link delay, tandem with EVENT_PRECISE_TIMER=1")
    ap.add_argument("--no-pg", action="store_true", help="tandem only")
    ap.add_argument("--quick", action="store_true", help="smoke run: 6 s loads")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--repl-out", dest="out", default=None,
                    help="the JSON results (build/bench/replication.json; --quick: "
                    "build/bench/quick/replication.json, apart from the real figures)")
    # `make bench` passes BENCH_ARGS to bench/run.py and to this script:
    # run.py's own options (--threads, --idle-connections, --no-nginx-auto,
    # --out) are accepted here and ignored
    args, ignored = ap.parse_known_args()
    if ignored:
        log(f"replication bench: ignoring {' '.join(ignored)} (bench/run.py options)")
    if args.duration is None:
        args.duration = 6 if args.quick else 20
    if args.warmup is None:
        args.warmup = 1.5 if args.quick else 3.0
    if args.fwd_idle is None:
        args.fwd_idle = 3.0 if args.quick else 5.0
    if args.out is None:
        args.out = os.path.join(OUT_DIR, "quick" if args.quick else "", "replication.json")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    try:
        rates = [int(x) for x in args.rates.split(",") if x.strip()]
    except ValueError:
        ap.error("--rates: comma-separated integers")
    if args.duration <= args.warmup or not rates or min(rates) <= 0 or args.rounds < 1:
        ap.error("need --duration > --warmup, positive --rates and --rounds >= 1")
    extra_s = min(args.duration, 10)
    extra_warm = min(args.warmup, 2.0)
    tandem_bin = os.path.abspath(args.tandem)
    if not os.access(tandem_bin, os.X_OK):
        ap.error(f"{args.tandem}: not an executable (run make first)")
    use_pg = not args.no_pg
    if use_pg:
        for b in ("postgres", "initdb", "pg_basebackup", "pgbench"):
            if not os.access(f"{PG_BIN}/{b}", os.X_OK):
                ap.error(f"{PG_BIN}/{b} missing (make bench installs postgresql-15)")
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                ap.error("no postgres user (installed with postgresql-15)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))

    os.makedirs(OUT_DIR, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="repl-", dir=OUT_DIR)  # on the disk of build/

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_sigterm)
    versions = tool_versions(tandem_bin)
    log(f"replication bench: {rates} writes/s, {args.duration} s each (first {args.warmup:g} s "
        f"left out), link delay {args.delay_ms} ms one way, {args.rounds} round(s), "
        f"{versions['cpus']} CPUs; work dir {os.path.relpath(workdir, ROOT)}")
    tnd = pg = None
    rounds = []
    ok = False
    t_begin = mono()
    try:
        tnd = Tandem(tandem_bin, workdir, args.delay_ms)
        tnd.start()
        token, path = tandem_signup(tnd)
        if use_pg:
            pg = Postgres(workdir, args.delay_ms)
            pg.start()
        log(f"tandem eu :{tnd.ports['eu']} us :{tnd.ports['us']}"
            + (f"; postgres primary :{pg.primary_port}, standby :{pg.standby_port} through the "
               f"delaying relay :{pg.relay_port}" if pg else ""))
        for rnd in range(1, args.rounds + 1):
            res = {}
            if args.fwd_rate > 0 and args.fwd_idle > 0:
                tnd.wait_synced()
                r = run_tandem_fwd_idle(tnd, token, path, args.fwd_idle, args)
                res["tandem_fwd_idle"] = r
                log(f"  round {rnd}  tandem forwarded writes, no load: p50/p99 "
                    f"{f_ms(r['us_forwarded']['p50_ms'])} / {f_ms(r['us_forwarded']['p99_ms'])} ms "
                    f"(eu direct {f_ms(r['eu_direct']['p50_ms'])} ms)")
            for rate in rates:
                tnd.wait_synced()
                r = run_tandem(tnd, token, path, rate, args.duration, args.warmup, args)
                res[f"tandem_{rate}"] = r
                log(f"  round {rnd}  tandem   {rate:>5}/s: {tandem_line(r)}")
                if pg:
                    r = run_pg(pg, rate, args.duration, args.warmup, args.delay_ms, args,
                               f"{rnd}-{rate}")
                    res[f"pg_{rate}"] = r
                    log(f"  round {rnd}  postgres {rate:>5}/s: {pg_line(r)}")
            if not args.no_extras:
                rate = rates[0]
                if pg:
                    r = run_pg(pg, rate, extra_s, extra_warm, 0, args, f"{rnd}-{rate}-nodelay")
                    res[f"pg_{rate}_nodelay"] = r
                    log(f"  round {rnd}  postgres {rate:>5}/s, no link delay: {pg_line(r)}")
                # the same deployment restarted: with libevent's precise
                # timer (the delay line's timer then fires on time), and
                # without the link delay
                for variant, env, delay, label in (
                        ("precise", dict(os.environ, EVENT_PRECISE_TIMER="1"), args.delay_ms,
                         "EVENT_PRECISE_TIMER=1"),
                        ("nodelay", None, 0, "no link delay")):
                    tnd.restart(env, delay)
                    tnd.wait_synced()
                    r = run_tandem(tnd, token, path, rate, extra_s, extra_warm, args)
                    res[f"tandem_{rate}_{variant}"] = r
                    log(f"  round {rnd}  tandem   {rate:>5}/s, {label}: {tandem_line(r)}")
                tnd.restart(None, args.delay_ms)
            rounds.append(res)
        ok = True
    except BenchError as e:
        print(f"bench: error: {e}", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr, flush=True)
    finally:
        if tnd:
            tnd.stop()
        if pg:
            pg.stop()
    if not ok:
        print(f"bench: logs and data kept in {os.path.relpath(workdir, ROOT)}", file=sys.stderr)
        return 1

    med = {k: aggregate(rounds, k) for k in rounds[0]}
    checks = make_checks(med, rates, args.delay_ms)
    print_report(med, checks, rates, args)
    results = {
        "command": "make bench (bench/replication.py)", "argv": sys.argv[1:],
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "elapsed_s": round(mono() - t_begin, 1), "machine": versions,
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "definitions": {
            "lag_from_ack": "tandem: first us /readyz answer with position >= the write's seq, "
                            "minus the client's receipt of eu's 201",
            "lag_from_send": "the same, minus the moment the request was sent",
            "position_lag": "per sample of the primary's committed (tandem) or flushed WAL "
                            "(postgres) position: the first replica answer showing it applied "
                            "(tandem) or replayed (postgres), minus the primary sample's answer",
            "row_lag_from_insert": "postgres: first standby poll with max(seq) >= the row's seq, "
                                   "minus the row's created_at (clock_timestamp() in the INSERT)",
            "replay_lag": "pg_stat_replication.replay_lag on the primary, every 50 ms",
            "write_latency": "request sent to answer received (tandem, Python client) or "
                             "pgbench's per-transaction time (postgres)",
        },
        "medians": med, "checks": checks, "rounds": rounds,
    }
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
        f.write("\n")
    print(f"\nresults: {os.path.relpath(args.out, ROOT)} ({results['elapsed_s']:.0f} s)")
    if args.keep:
        print(f"work dir kept: {os.path.relpath(workdir, ROOT)}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
