"""Functional tests: start the real `tandem` binary and talk to it with real
clients (python-requests over TLS, raw sockets with ssl, curl).

Fixtures:
  region      a fresh region node (own data dir and ports) per test module
  fresh_region  a fresh region node per test (for tests that kill or stop it)
  user, other_user  signed-up accounts on `region`

Markers (pytest.ini; docs/TESTING.md): drill_matrix (test_drill.py: the
long drills, `make test-drill`), tsan (set here from TSAN_MODULES: the tests
`make tsan` runs under ThreadSanitizer).
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest
import requests

TANDEM = os.environ.get("TANDEM_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "tandem")
TANDEM = os.path.abspath(TANDEM)


def _built_with_asan(path):
    """True for a binary built with AddressSanitizer (make SAN=1): its RSS
    also holds ASan's shadow memory, one byte per eight of the heap."""
    try:
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


UNDER_ASAN = _built_with_asan(TANDEM)

# Each pytest-xdist worker (gw0, gw1, ...) hands out ports from its own slice
# of 16000-32767: blocks of different workers must never overlap (a check
# that a port is free does not reserve it), and none may lie in Linux's
# ephemeral range (32768-60999 by default), where every outgoing connection
# of the tests' clients takes its local port: a port found free there could
# be taken by a client before the region binds it ("region exited").
_PORTS_LO, _PORTS_HI = 16000, 32768
_worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
_worker_index = int(_worker[2:]) if _worker[2:].isdigit() else 0
_slices = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
_slice_size = (_PORTS_HI - _PORTS_LO) // _slices
_slice_lo = _PORTS_LO + (_worker_index % _slices) * _slice_size
_slice_hi = _slice_lo + _slice_size
_next_port = [_slice_lo + (os.getpid() * 7) % max(1, _slice_size - 100)]


def free_port_base(count=10):
    """A base port such that base..base+count-1 are free on 127.0.0.1."""
    while True:
        base = _next_port[0]
        _next_port[0] += count + 1
        if _next_port[0] + count >= _slice_hi:
            _next_port[0] = _slice_lo
            continue
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


_aws_server = []  # this worker's awsfork.py process, started on first use


def aws_cli(args, env, timeout=120):
    """Run `aws` (Debian's awscli) with `args` and the environment `env`,
    as a child forked from a server that has imported awscli once
    (tests/functional/awsfork.py): the same awscli.clidriver.main() that
    /usr/bin/aws runs, without the second of CPU each `aws` process spends
    starting (40 calls made that 40 s of the suite's ~250 s of CPU on 2
    cores). test_s3.py also runs the `aws` executable itself. Returns a
    CompletedProcess (returncode, stdout and stderr as text)."""
    import select
    import tempfile
    if not _aws_server or _aws_server[0].poll() is not None:
        _aws_server[:] = [subprocess.Popen(
            ["/usr/bin/python3", os.path.join(os.path.dirname(os.path.abspath(__file__)), "awsfork.py")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)]
    srv = _aws_server[0]
    with tempfile.TemporaryDirectory() as d:
        out, err = os.path.join(d, "out"), os.path.join(d, "err")
        srv.stdin.write(json.dumps({"args": list(args), "env": dict(env), "out": out, "err": err}) + "\n")
        srv.stdin.flush()
        deadline = time.time() + timeout
        rc, pid = None, None
        while rc is None:
            left = deadline - time.time()
            ready, _, _ = select.select([srv.stdout], [], [], max(left, 0))
            if not ready:
                if pid:
                    os.kill(pid, signal.SIGKILL)  # the server then reports it and goes on
                    srv.stdout.readline()
                raise subprocess.TimeoutExpired(["aws", *args], timeout)
            line = srv.stdout.readline()
            if not line:
                raise RuntimeError("awsfork.py exited")
            msg = json.loads(line)
            pid, rc = msg["pid"], msg.get("rc")
        with open(out, errors="replace") as f:
            stdout = f.read()
        with open(err, errors="replace") as f:
            stderr = f.read()
    if rc < 0:
        # the forked child died of a signal (CI saw one SIGSEGV after a
        # complete 20 MiB download, 1 call in some thousands; 240 downloads
        # under load did not show it again): a crash of this client
        # machinery, not an answer of the server. The command runs once more
        # as the `aws` executable itself, and its result is what counts (a
        # command that had taken effect may then fail visibly, never pass
        # silently).
        sys.stderr.write("aws_cli: the forked aws died of signal %d; running /usr/bin/aws %s\n"
                         % (-rc, " ".join(args[:4])))
        left = max(deadline - time.time(), 30)
        return subprocess.run(["/usr/bin/aws", *args], env=env, capture_output=True, text=True,
                              timeout=left, stdin=subprocess.DEVNULL)
    return subprocess.CompletedProcess(["aws", *args], rc, stdout, stderr)


def run(*args, check=True, **kw):
    """Run the tandem binary; returns CompletedProcess (text)."""
    return subprocess.run([TANDEM, *args], capture_output=True, text=True,
                          check=check, timeout=60, **kw)


def raise_signup_limit(text):
    """Every test signs up from 127.0.0.1: lift the per-address signup limit
    (10 an hour by default) so that it only applies in the tests of it,
    which set it through edit_config."""
    return text.replace("signup_max_per_address = 10\n", "signup_max_per_address = 100000\n")


# Argon2 in the deployments of tests that are not about hashing: t=1 and
# 1 MiB instead of the defaults (t=2, 19 MiB: ~40 ms of CPU a hash, spent at
# every region start for the dummy hash and at every signup and login; on
# the order of 1,000 hashes in the suite). test_auth.py keeps the defaults:
# its tests of login latency and of logins in flight rely on a real hash.
REAL_HASHING_MODULES = ("test_auth.py",)


def fast_hashing(text):
    current = os.environ.get("PYTEST_CURRENT_TEST", "")
    if any(m in current for m in REAL_HASHING_MODULES):
        return text
    return (text.replace("argon2_t_cost = 2\n", "argon2_t_cost = 1\n")
                .replace("argon2_m_cost_kib = 19456\n", "argon2_m_cost_kib = 1024\n"))


def drop_dns_sections(text):
    """The config text without its [zone ...] and [dns ...] sections (the
    generated config has the local deployment's: tests that write their
    own zone and servers drop those first)."""
    out, skip = [], False
    for line in text.splitlines(keepends=True):
        head = line.strip()
        if head.startswith("["):
            skip = head.startswith("[zone ") or head.startswith("[dns ")
        if not skip:
            out.append(line)
    return "".join(out)


class Region:
    """One region node of a local deployment made with `tandem init`."""

    def __init__(self, data_dir, name="eu", edit_config=None):
        self.data = str(data_dir)
        self.name = name
        self.port = free_port_base()
        run("init", "--address", "127.0.0.1", "--data", self.data, "--port-base", str(self.port))
        self.config = os.path.join(self.data, "tandem.ini")
        with open(self.config) as f:
            text = f.read()
        # one region alone: without the witness there is no lease to wait
        # for (two voters, fixed roles), as in a single-region deployment
        start = text.find("[witness]")
        if start >= 0:
            end = text.find("\n[", start + 1)
            text = text[:start] + (text[end + 1:] if end >= 0 else "")
        text = fast_hashing(raise_signup_limit(text))
        if edit_config:
            text = edit_config(text)
        with open(self.config, "w") as f:
            f.write(text)
        self.ca = os.path.join(self.data, "certs", "ca.pem")
        self.url = "https://127.0.0.1:%d" % self.port
        # /metrics is plain HTTP on metrics_listen (eu: port base + 5)
        self.metrics_url = "http://127.0.0.1:%d/metrics" % (self.port + 5)
        self.proc = None
        self.log_path = os.path.join(self.data, "region-%s.log" % name)

    def start(self, timeout=20):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [TANDEM, "region", "--config", self.config, "--region", self.name],
            stdout=log, stderr=log)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("region exited: " + self.log())
            try:
                r = requests.get(self.url + "/healthz", verify=self.ca, timeout=1)
                if r.status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError("region did not become healthy: " + self.log())

    def log(self):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        return self.proc.returncode if self.proc else None

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def session(self):
        s = requests.Session()
        s.verify = self.ca
        s.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
        return s

    def get(self, path, token=None, **kw):
        return request(self, "GET", path, token, **kw)

    def post(self, path, token=None, **kw):
        return request(self, "POST", path, token, **kw)


def request(region, method, path, token=None, headers=None, **kw):
    h = dict(headers or {})
    if token:
        h["Authorization"] = "Bearer " + token
    kw.setdefault("timeout", 30)
    return requests.request(method, region.url + path, headers=h,
                            verify=region.ca, **kw)


def new_email():
    return "user-%s@example.com" % uuid.uuid4().hex[:12]


def start_ready(argv, log_path, mode="a", timeout=20):
    """Start a tandem component (argv) with stdout and stderr going to
    log_path (opened with mode), and wait for the "ready" line it writes on
    TANDEM_READY_FD once it serves. The Popen; the test fails with the log
    when no such line comes (the process exited, or timeout seconds)."""
    import select
    r, w = os.pipe()
    with open(log_path, mode) as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, pass_fds=(w,),
                                env=dict(os.environ, TANDEM_READY_FD=str(w)))
    os.close(w)
    ready, _, _ = select.select([r], [], [], timeout)
    line = os.read(r, 16) if ready else b""
    os.close(r)
    if not line.startswith(b"ready"):
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        with open(log_path, errors="replace") as f:
            raise AssertionError("%s did not start: %s" % (argv[1], f.read()[-3000:]))
    return proc


UP_PORTS = 17  # the ports `tandem up --port-base N` uses: N .. N+16 (with --address)


def start_up(data, port_base, timeout=60, argv=None):
    """Start `tandem up --data DATA --port-base N` (or argv) with its output
    (and its children's) in DATA.log - a file, never a pipe nobody reads,
    which would block every component once 64 KiB are written - and wait
    for DATA/endpoints.json. (proc, endpoints); proc.log() reads the log."""
    import json
    log_path = str(data) + ".log"
    argv = argv or [TANDEM, "up", "--data", str(data), "--port-base", str(port_base)]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def read_log():
        with open(log_path, errors="replace") as f:
            return f.read()
    proc.log = read_log
    endpoints = os.path.join(str(data), "endpoints.json")
    deadline = time.time() + timeout
    while not os.path.exists(endpoints):
        assert proc.poll() is None and time.time() < deadline, read_log()[-4000:]
        time.sleep(0.05)
    time.sleep(0.05)  # written atomically (rename), but let it settle
    with open(endpoints) as f:
        return proc, json.load(f)


def signup(region, email=None, password="correct horse battery"):
    email = email or new_email()
    r = region.post("/v1/auth/signup", json={"email": email, "password": password})
    assert r.status_code == 201, r.text
    body = r.json()
    body["email"] = email
    body["password"] = password
    return body


def error_code(response):
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]["code"]


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    r = Region(tmp_path_factory.mktemp("region"))
    r.start()
    yield r
    code = r.stop()
    assert code == 0, "region did not stop cleanly (%s): %s" % (code, r.log()[-2000:])


@pytest.fixture
def fresh_region(tmp_path):
    r = Region(tmp_path)
    r.start()
    yield r
    r.stop()


@pytest.fixture
def user(region):
    return signup(region)


@pytest.fixture
def other_user(region):
    return signup(region)


def tls_connect(region, timeout=10):
    """A raw TLS socket to the region (for protocol-level tests)."""
    import ssl
    ctx = ssl.create_default_context(cafile=region.ca)
    raw = socket.create_connection(("127.0.0.1", region.port), timeout=timeout)
    return ctx.wrap_socket(raw, server_hostname="127.0.0.1")


def read_response(sock, buffer=b""):
    """Read one HTTP/1.1 response (Content-Length framed) from sock.
    Returns (status, headers dict lowercased, body bytes, leftover bytes)."""
    data = buffer
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed before a response head: %r" % data)
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed in a body")
        rest += chunk
    return status, headers, rest[:length], rest[length:]


def is_closed(sock, timeout=5.0):
    """True when the peer closed the connection within timeout."""
    import ssl
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


# --- the ThreadSanitizer subset (`make tsan`) --------------------------------
# Every test of these modules gets the marker `tsan`: their requests cross
# threads (the reason is beside each). Other modules exercise the event loop
# alone, or the same threads by the same paths.
TSAN_MODULES = {
    "test_records.py": "every write goes through the committer thread, every list through the reader pool",
    "test_query_limits.py": "the reader pool: budgets, interrupts, a full queue, stop during a list",
    "test_auth.py": "password hashing on the worker threads, the logins in flight between threads",
    "test_replication.py": "the stream, the applier and the committer of two regions",
    "test_failover.py": "leases, votes, handover and rejoin (the control plane) beside the API",
    "test_isolation.py": "the control thread keeps the lease while the API loop is stalled",
    "test_dnsroute.py": "the health checker's thread publishes the view every answering thread reads",
    "test_s3_replication.py": "object replication: the link's control thread hands requests to the S3 "
                              "thread, blob workers, the objects.db committer, the status read by the link",
}
# Tests of those modules left out: they hold the binary to wall-clock or
# memory bounds that TSan's slowdown (5-15x) and shadow memory break, which
# says nothing about races. A name here that no longer exists is an error.
TSAN_EXCLUDED = {
    "test_query_limits.py::test_stop_interrupts_a_running_list":
        "a list stopped within 3 s of SIGTERM: one row's work takes longer under TSan",
    "test_query_limits.py::test_expensive_filter_on_the_primary_keeps_the_lease":
        "the API loop busy with filters under TSan's slowdown delays the lease renewals past "
        "isolation_ms (no_quorum): the shared-loop problem of issue 9 item 1, not a race",
    "test_dnsroute.py::test_killed_region_withdrawn_in_time_then_back_and_fail_open":
        "a region withdrawn within interval x failures + 1 s (1.6 s): TSan's slowdown of the "
        "checks' TLS and of the restarted region's start says nothing about races",
}


# The modules whose tests take longest (the aws CLI sessions: 15-25 s;
# drills, failovers: 7-15 s) run first, so that the parallel workers
# (pytest-xdist hands tests out in this order) do not end with one of them
# while the others are idle. A module's tests stay together, in their order.
SLOW_MODULES_FIRST = ["test_s3.py", "test_drill.py", "test_failover.py"]


def pytest_collection_modifyitems(config, items):
    def rank(item):
        module = os.path.basename(str(item.fspath))
        return SLOW_MODULES_FIRST.index(module) if module in SLOW_MODULES_FIRST else len(SLOW_MODULES_FIRST)
    items.sort(key=rank)  # stable
    modules = {}
    for item in items:
        module = os.path.basename(str(item.fspath))
        if module not in TSAN_MODULES:
            continue
        modules[module] = item.module
        if "%s::%s" % (module, item.originalname) not in TSAN_EXCLUDED:
            item.add_marker(pytest.mark.tsan)
    # (checked against the module, not the items: -k may have deselected some)
    stale = [n for n in TSAN_EXCLUDED
             if n.split("::")[0] in modules and not hasattr(modules[n.split("::")[0]], n.split("::")[1])]
    if stale:
        raise pytest.UsageError("conftest.py TSAN_EXCLUDED names tests that do not exist: %s"
                                % ", ".join(stale))
