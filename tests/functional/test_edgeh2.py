"""`tandem edge` over TLS with HTTP/2 and several certificates (issue 12,
sections 1 and 5): curl --http2 / --http1.1 (ALPN), h2load, the cache and
failover over h2, SNI with two domains and a wildcard, and hostile HTTP/2
clients (python3-h2 speaking raw frames). Each test would fail on the code
before it: the edge spoke HTTP/1.1 only, with one certificate."""
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from hyperframe.frame import Frame, GoAwayFrame

from conftest import TANDEM, free_port_base, run, start_ready
from test_edge import CountingOrigin


class H2Edge:
    """An edge with tls = on in front of origins, its default certificate
    and two more chosen by SNI (app.example.test, *.wild.test), all from the
    deployment's dev CA (`tandem certs --name`)."""

    TLS = ("tls_cert = certs/edge.pem\ntls_key = certs/edge.key\n"
           "cert = app.example.test certs/app.pem certs/app.key\ncert = *.wild.test certs/wild.pem certs/wild.key\n")

    def __init__(self, tmp_path, origins, extra="", limits=None, tls=TLS):
        self.dir = str(tmp_path / "deploy")
        run("init", "--address", "127.0.0.1", "--data", self.dir, "--port-base", str(free_port_base()))
        self.config = os.path.join(self.dir, "tandem.ini")
        if limits:  # [limits] keys changed
            with open(self.config) as f:
                text = f.read()
            for key, value in limits.items():
                text, n = re.subn(r"(?m)^%s = \d+$" % key, "%s = %d" % (key, value), text)
                assert n == 1, key
            with open(self.config, "w") as f:
                f.write(text)
        run("certs", "--config", self.config, "--name", "edge")
        run("certs", "--config", self.config, "--name", "app", "--san", "DNS:app.example.test")
        run("certs", "--config", self.config, "--name", "wild", "--san", "DNS:*.wild.test")
        self.ca = os.path.join(self.dir, "certs", "ca.pem")
        self.port = free_port_base(count=1)
        self.url = "https://127.0.0.1:%d" % self.port
        self.log_path = os.path.join(self.dir, "edge-pop.log")
        with open(self.config, "a") as f:
            f.write("\n[edge pop]\nlisten = 127.0.0.1:%d\norigins = %s\n%sresponse_timeout_ms = 3000\n"
                    "probe_interval_ms = 0\n%s" % (self.port, origins, tls, extra))
        self.proc = None

    def start(self):
        self.proc = start_ready([TANDEM, "edge", "--config", self.config, "--name", "pop"], self.log_path, "ab")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            code = self.proc.wait(10)
            assert code == 0, (code, self.log())

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))

    def curl(self, path, *args, host="127.0.0.1"):
        """curl through the edge: (http_version, status, headers dict, body)."""
        url = "https://%s:%d%s" % (host, self.port, path)
        out = subprocess.run(["curl", "-sS", "--cacert", self.ca, "--resolve", "%s:%d:127.0.0.1" % (host, self.port),
                              "-D", "-", "-w", "\n%{http_version}", *args, url],
                             capture_output=True, timeout=30)
        assert out.returncode == 0, out.stderr
        text = out.stdout.decode("latin-1")
        head, _, rest = text.partition("\r\n\r\n")
        body, _, version = rest.rpartition("\n")
        lines = head.split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        return version, status, headers, body


class H2Client:
    """A raw HTTP/2 client over TLS (python3-h2): frames as the test wants
    them, including the ones a polite client never sends."""

    def __init__(self, edge, settings=None, server_name=None):
        ctx = ssl.create_default_context(cafile=edge.ca)
        ctx.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", edge.port), timeout=10)
        self.sock = ctx.wrap_socket(raw, server_hostname=server_name or "127.0.0.1")
        assert self.sock.selected_alpn_protocol() == "h2"
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding="utf-8", validate_outbound_headers=False))
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(settings)
        self.flush()
        self.authority = "127.0.0.1:%d" % edge.port

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def headers(self, path, method="GET", extra=(), end_stream=True):
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [(":method", method), (":path", path), (":scheme", "https"),
                                     (":authority", self.authority), *extra], end_stream=end_stream)
        return sid

    def events(self, timeout=10):
        """Events of the next read; [] when the server closed."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            data = b""
        if not data:
            return []
        ev = self.conn.receive_data(data)
        self.flush()
        return ev

    def responses(self, sids, timeout=10):
        """Run until every stream in sids ended or was reset: {sid: (status, headers, body)}."""
        want, out, bodies, heads = set(sids), {}, {}, {}
        deadline = time.time() + timeout
        while want - set(out) and time.time() < deadline:
            evs = self.events(max(0.1, deadline - time.time()))
            if not evs:
                break
            for e in evs:
                if isinstance(e, h2.events.ResponseReceived):
                    heads[e.stream_id] = dict(e.headers)
                elif isinstance(e, h2.events.DataReceived):
                    bodies[e.stream_id] = bodies.get(e.stream_id, b"") + e.data
                    self.conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
                elif isinstance(e, h2.events.StreamEnded):
                    h = heads.get(e.stream_id, {})
                    out[e.stream_id] = (int(h.get(":status", 0)), h, bodies.get(e.stream_id, b""))
                elif isinstance(e, h2.events.StreamReset):
                    out[e.stream_id] = ("reset", e.error_code, b"")
            self.flush()
        return out

    def raw_frames(self, timeout=10):
        """The frames the server sends until it closes (parsed with
        hyperframe, not fed to the client's state machine)."""
        frames, data, deadline = [], b"", time.time() + timeout
        while time.time() < deadline:
            self.sock.settimeout(max(0.1, deadline - time.time()))
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError, TimeoutError):
                break
            if not chunk:
                break
            data += chunk
            while len(data) >= 9:
                frame, length = Frame.parse_frame_header(memoryview(data[:9]))
                if len(data) < 9 + length:
                    break
                frame.parse_body(memoryview(data[9:9 + length]))
                data = data[9 + length:]
                frames.append(frame)
        return frames

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def start(tmp_path, extra="", limits=None):
    origin = CountingOrigin()
    edge = H2Edge(tmp_path, "http://127.0.0.1:%d" % origin.port, extra, limits).start()
    return origin, edge


def test_alpn_picks_h2_or_http11_and_requests_arrive_the_same(tmp_path):
    """curl --http2 gets h2, --http1.1 gets HTTP/1.1, from the same
    listener; the origin sees the same request either way (:authority as
    Host, the body of a POST, cookies joined with "; ")."""
    origin, edge = start(tmp_path)
    try:
        origin.routes["/a"] = (200, {"Cache-Control": "no-store", "Content-Type": "text/plain"}, b"answer a")
        v2, s2, h2h, b2 = edge.curl("/a", "--http2")
        v1, s1, h1h, b1 = edge.curl("/a", "--http1.1")
        assert (v2, s2, b2) == ("2", 200, "answer a"), (v2, s2, b2)
        assert (v1, s1, b1) == ("1.1", 200, "answer a"), (v1, s1, b1)
        for h in (h2h, h1h):
            assert h["x-tandem-edge"] == "pop" and h["x-cache"] == "miss" and h["content-type"] == "text/plain"
            assert h["via"].startswith("1.1 tandem-edge-pop")
        assert "connection" not in h2h and "transfer-encoding" not in h2h
        v, s, _, _ = edge.curl("/a", "--http2", "-X", "POST", "--data-binary", "x" * 5000)
        assert (v, s) == ("2", 200)
        method, path, headers = origin.seen[-1]
        assert (method, path, headers["Content-Length"]) == ("POST", "/a", "5000"), origin.seen[-1]
        c = H2Client(edge)
        sid = c.headers("/a", extra=[("cookie", "a=1"), ("cookie", "b=2"), ("accept", "*/*")])
        c.flush()
        status, _, body = c.responses([sid])[sid]
        assert status == 200 and body == b"answer a"
        _, _, headers = origin.seen[-1]
        assert headers["cookie"] == "a=1; b=2", headers
        # :authority is the Host; a host field that says otherwise is refused
        sid = c.headers("/a", extra=[("host", "elsewhere.test")])
        c.flush()
        status, _, body = c.responses([sid])[sid]
        assert status == 400 and b":authority and host differ" in body, (status, body)
        c.close()
    finally:
        edge.stop()
        origin.stop()


def test_h2load_many_streams_and_cache_hits_over_h2(tmp_path):
    """h2load -n 200 -c 2 -m 10: every answer 2xx over two connections of
    ten concurrent streams each; a cacheable answer is then a hit over h2
    and the origin saw it once (coalescing) or a handful of times."""
    origin, edge = start(tmp_path)
    try:
        origin.routes["/c"] = (200, {"Cache-Control": "max-age=60"}, b"y" * 1024)
        out = subprocess.run(["h2load", "-n", "200", "-c", "2", "-m", "10", edge.url + "/c"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "200 succeeded, 0 failed, 0 errored" in out.stdout, out.stdout
        assert re.search(r"status codes: 200 2xx", out.stdout), out.stdout
        assert "h2" in out.stdout  # the protocol h2load used
        assert origin.count("/c") <= 2, origin.count("/c")
        v, s, h, b = edge.curl("/c", "--http2")
        assert (v, s, h["x-cache"], len(b)) == ("2", 200, "hit", 1024), (v, s, h)
        assert int(h["age"]) >= 0
    finally:
        edge.stop()
        origin.stop()


def test_streams_of_one_connection_do_not_block_each_other(tmp_path):
    """Stream 1 waits on a slow origin answer; stream 3, sent after it on
    the same connection, is answered first."""
    slow = CountingOrigin()
    slow.delay = 2.0
    slow.routes["/slow"] = (200, {"Cache-Control": "no-store"}, b"slow")
    slow.routes["/fast"] = (200, {"Cache-Control": "no-store"}, b"fast")
    edge = H2Edge(tmp_path, "http://127.0.0.1:%d" % slow.port).start()
    try:
        c = H2Client(edge)
        s1 = c.headers("/slow")
        c.flush()
        deadline = time.time() + 5
        while slow.count("/slow") == 0 and time.time() < deadline:
            time.sleep(0.02)
        slow.delay = 0.0  # the first request sleeps already; the next ones do not
        s3 = c.headers("/fast")
        c.flush()
        order, t0 = [], time.time()
        got = {}
        while len(got) < 2 and time.time() - t0 < 10:
            for sid, r in c.responses([s1, s3], timeout=10 - (time.time() - t0)).items():
                if sid not in got:
                    got[sid] = r
                    order.append(sid)
        assert got[s1][0] == 200 and got[s1][2] == b"slow" and got[s3][2] == b"fast", got
        assert order == [s3, s1], order
        c.close()
    finally:
        edge.stop()
        slow.stop()


def test_failover_over_h2(tmp_path):
    """The first origin is down: a GET over h2 is answered by the second
    one within the same request."""
    down, up = CountingOrigin(), CountingOrigin()
    up.routes["/f"] = (200, {"Cache-Control": "no-store"}, b"from b")
    down.stop()
    edge = H2Edge(tmp_path, "a=http://127.0.0.1:%d, b=http://127.0.0.1:%d" % (down.port, up.port)).start()
    try:
        v, s, h, b = edge.curl("/f", "--http2")
        assert (v, s, b) == ("2", 200, "from b"), (v, s, b)
        assert up.count("/f") == 1
        assert "sent to b" in edge.log(), edge.log()
    finally:
        edge.stop()
        up.stop()


def served_names(edge, server_name):
    """The subject CN and DNS names of the certificate served for server_name."""
    ctx = ssl.create_default_context(cafile=edge.ca)
    ctx.check_hostname = False
    with socket.create_connection(("127.0.0.1", edge.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_name) as s:
            cert = s.getpeercert()
    cn = dict(x[0] for x in cert["subject"])["commonName"]
    return cn, sorted(v for k, v in cert.get("subjectAltName", ()) if k == "DNS")


def test_sni_two_domains_a_wildcard_and_the_default(tmp_path):
    """app.example.test gets its own certificate, a.wild.test the wildcard
    one, an unknown name (and one two labels under the wildcard) the
    default; curl verifies each by name against the dev CA, over h2."""
    origin, edge = start(tmp_path)
    try:
        origin.routes["/"] = (200, {"Cache-Control": "no-store"}, b"root")
        assert served_names(edge, "app.example.test") == ("app", ["app", "app.example.test", "localhost"])
        assert served_names(edge, "a.wild.test") == ("wild", ["*.wild.test", "localhost", "wild"])
        assert served_names(edge, "APP.Example.Test")[0] == "app"  # names are case-insensitive
        assert served_names(edge, "unknown.test")[0] == "edge"
        assert served_names(edge, "b.a.wild.test")[0] == "edge"  # one label deep only
        for host in ("app.example.test", "a.wild.test"):
            v, s, _, b = edge.curl("/", "--http2", host=host)
            assert (v, s, b) == ("2", 200, "root")
    finally:
        edge.stop()
        origin.stop()


def test_cert_lines_are_checked_with_file_and_line(tmp_path):
    """tandem config check reports a bad name, a duplicate, a missing file
    and more than 16 certificates, each with FILE:LINE."""
    origin = CountingOrigin()
    edge = H2Edge(tmp_path, "http://127.0.0.1:%d" % origin.port,
                  "cert = bad_name! certs/app.pem certs/app.key\n"
                  "cert = app.example.test certs/app.pem certs/app.key\n"
                  "cert = missing.test certs/nope.pem certs/app.key\n"
                  "cert = only-two certs/app.pem\n")
    try:
        out = subprocess.run([TANDEM, "config", "check", edge.config], capture_output=True, text=True)
        text = out.stdout + out.stderr
        assert out.returncode == 1, text
        assert re.search(r"tandem\.ini:\d+: cert: 'bad_name!' is not a host name", text), text
        assert re.search(r"tandem\.ini:\d+: cert: app\.example\.test appears twice", text), text
        assert re.search(r"tandem\.ini:\d+: cert: .*nope\.pem: cannot read", text), text
        assert "cert: NAME CERTFILE KEYFILE" in text, text
        with open(edge.config) as f:
            text = f.read()
        lines = "".join("cert = h%d.test certs/app.pem certs/app.key\n" % i for i in range(17))
        text = re.sub(r"cert = bad_name!.*\n(.*\n){3}", lines, text)
        with open(edge.config, "w") as f:
            f.write(text)
        out = subprocess.run([TANDEM, "config", "check", edge.config], capture_output=True, text=True)
        assert out.returncode == 1 and "cert: at most 16 per edge" in out.stdout + out.stderr, out.stdout + out.stderr
    finally:
        origin.stop()


def test_hostile_header_list_and_too_many_streams(tmp_path):
    """A header section over max_header_bytes gets 431 (over h2, the stream
    only); a client opening 150 streams at once (before our SETTINGS) has
    those beyond 100 refused with REFUSED_STREAM, and the connection still
    answers afterwards. (The test's origin, Python's http.server, has a
    listen backlog of 5: the edge reaches it over a few connections.)"""
    origin, edge = start(tmp_path, extra="max_origin_connections = 4\n")
    try:
        origin.routes["/ok"] = (200, {"Cache-Control": "no-store"}, b"ok")
        v, s, h, b = edge.curl("/ok", "--http2", "-H", "X-Big: " + "b" * 20000)
        assert (v, s) == ("2", 431) and '"headers_too_large"' in b, (v, s, b)
        assert origin.count("/ok") == 0
        c = H2Client(edge)
        sids = [c.headers("/ok", end_stream=False) for _ in range(150)]
        c.flush()
        for sid in sids:
            c.conn.end_stream(sid)
        c.flush()
        got = c.responses(sids, timeout=20)
        refused = [sid for sid, r in got.items() if r[0] == "reset" and r[1] == h2.errors.ErrorCodes.REFUSED_STREAM]
        ok = [sid for sid, r in got.items() if r[0] == 200]
        assert len(refused) >= 50 and len(ok) + len(refused) == 150, \
            (len(refused), len(ok), sorted(set(str(r[:2]) for r in got.values())))
        sid = c.headers("/ok")
        c.flush()
        assert c.responses([sid])[sid][0] == 200
        c.close()
    finally:
        edge.stop()
        origin.stop()


def test_hostile_client_that_never_reads_is_closed_and_memory_stays_bounded(tmp_path):
    """Clients that shut their flow-control window (INITIAL_WINDOW_SIZE 0)
    and ask for a 1 MiB answer on many streams (20 connections x 20
    streams = 400 MiB asked): answers wait in the edge counted in
    max_buffered_bytes (32 MiB here), so once it is passed the next large
    answers are 503 (HEADERS are not flow-controlled: the clients see
    them); the edge's memory grows by about the bound, not by what was
    asked; each connection is closed after write_timeout_ms."""
    origin, edge = start(tmp_path, extra="cache_max_object_bytes = 2097152\n",
                         limits={"write_timeout_ms": 1500, "max_buffered_bytes": 32 << 20})
    try:
        origin.routes["/big"] = (200, {"Cache-Control": "max-age=60"}, os.urandom(1 << 20))
        v, s, _, _ = edge.curl("/big", "--http2", "-o", "/dev/null")
        assert (v, s) == ("2", 200)
        before = edge.rss_kib()
        clients = []
        for _ in range(20):
            c = H2Client(edge, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
            for _ in range(20):
                c.headers("/big")
            c.flush()
            clients.append(c)
        statuses, closed = [], 0
        deadline = time.time() + 10
        for c in clients:
            while time.time() < deadline:
                try:
                    evs = c.events(timeout=max(0.1, deadline - time.time()))
                except h2.exceptions.ProtocolError:
                    evs = []
                statuses += [int(dict(e.headers)[":status"]) for e in evs
                             if isinstance(e, h2.events.ResponseReceived)]
                if not evs or any(isinstance(e, h2.events.ConnectionTerminated) for e in evs):
                    closed += 1
                    break
            if c is clients[0]:
                grown = edge.rss_kib() - before  # every answer is queued by now
            c.close()
        assert closed == 20, closed
        assert statuses.count(200) >= 10 and statuses.count(503) >= 100, \
            (statuses.count(200), statuses.count(503), len(statuses))
        assert grown < 100 * 1024, grown  # KiB: about the 32 MiB bound, not the 400 MiB asked
        assert edge.proc.poll() is None
        v, s, _, _ = edge.curl("/big", "--http2", "-o", "/dev/null")
        assert (v, s) == ("2", 200)
    finally:
        edge.stop()
        origin.stop()


def test_hostile_rapid_reset_costs_bounded_work(tmp_path):
    """A client opening and at once resetting 3000 streams (CVE-2023-44487)
    gets GOAWAY after a bounded burst; the origin saw far fewer requests
    than streams, and the edge keeps serving others."""
    origin, edge = start(tmp_path)
    try:
        origin.routes["/r"] = (200, {"Cache-Control": "no-store"}, b"r")
        c = H2Client(edge)
        for _ in range(3000):
            sid = c.headers("/r")
            c.conn.reset_stream(sid)
        try:
            c.flush()
        except OSError:
            pass
        goaways = [f for f in c.raw_frames() if isinstance(f, GoAwayFrame)]
        terminated = bool(goaways)
        c.close()
        assert terminated, "no GOAWAY"
        time.sleep(0.5)
        assert origin.count("/r") < 1500, origin.count("/r")
        v, s, _, b = edge.curl("/r", "--http2")
        assert (v, s, b) == ("2", 200, "r")
    finally:
        edge.stop()
        origin.stop()


def test_goaway_on_shutdown_lets_a_stream_in_progress_finish(tmp_path):
    """SIGTERM while a stream waits on a slow origin: the client gets
    GOAWAY, the stream still completes, and the edge exits 0."""
    origin, edge = start(tmp_path)
    try:
        origin.routes["/slow"] = (200, {"Cache-Control": "no-store"}, b"done")
        origin.delay = 1.0
        client = subprocess.Popen(["nghttp", "-v", edge.url + "/slow"], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + 5
        while origin.count("/slow") == 0 and time.time() < deadline:
            time.sleep(0.02)
        edge.proc.send_signal(signal.SIGTERM)
        out, _ = client.communicate(timeout=20)
        assert client.returncode == 0, out
        assert "recv GOAWAY frame" in out and "error_code=NO_ERROR" in out, out
        assert ":status: 200" in out and out.rstrip().count("done") >= 1, out
        assert edge.proc.wait(10) == 0, edge.log()
    finally:
        edge.stop()
        origin.stop()


def test_h2c_without_tls_and_http2_off(tmp_path):
    """With tls = off, a client that starts with the HTTP/2 preface gets
    HTTP/2 (prior knowledge) and others HTTP/1.1 on the same port; with
    http2 = off, ALPN no longer offers h2 (curl --http2 gets HTTP/1.1).
    `tandem certs` refuses a bad --san with one line and exit 1."""
    origin = CountingOrigin()
    origin.routes["/p"] = (200, {"Cache-Control": "no-store"}, b"plain")
    edge = H2Edge(tmp_path / "clear", "http://127.0.0.1:%d" % origin.port, tls="tls = off\n").start()
    try:
        for flag, version in (("--http2-prior-knowledge", "2"), ("--http1.1", "1.1")):
            out = subprocess.run(["curl", "-sS", flag, "-w", "\n%{http_version}", "http://127.0.0.1:%d/p" % edge.port],
                                 capture_output=True, text=True, timeout=30)
            assert out.returncode == 0 and out.stdout == "plain\n" + version, (flag, out.stdout, out.stderr)
    finally:
        edge.stop()
    edge = H2Edge(tmp_path / "off", "http://127.0.0.1:%d" % origin.port, "http2 = off\n").start()
    try:
        v, s, _, b = edge.curl("/p", "--http2")
        assert (v, s, b) == ("1.1", 200, "plain"), (v, s, b)
    finally:
        edge.stop()
        origin.stop()
    bad = subprocess.run([TANDEM, "certs", "--config", edge.config, "--name", "x", "--san", "DNS:a b"],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "is not DNS:NAME" in bad.stderr, bad.stderr


def test_hostile_continuation_flood_is_cut_short(tmp_path):
    """A header block that never ends (HEADERS without END_HEADERS, then
    CONTINUATION frames; CVE-2024-28182) is cut after a few frames with
    GOAWAY, and the edge keeps serving others."""
    from hpack import Encoder
    from hyperframe.frame import ContinuationFrame, HeadersFrame
    origin, edge = start(tmp_path)
    try:
        origin.routes["/ok"] = (200, {"Cache-Control": "no-store"}, b"ok")
        c = H2Client(edge)
        block = Encoder().encode([(":method", "GET"), (":path", "/ok"), (":scheme", "https"),
                                  (":authority", c.authority)])
        frames = [HeadersFrame(1, data=block, flags=["END_STREAM"]).serialize()]
        frames += [ContinuationFrame(1, data=Encoder().encode([("x-a", "b")])).serialize() for _ in range(1000)]
        try:
            c.sock.sendall(b"".join(frames))
        except OSError:
            pass  # the edge may close before reading it all
        goaways = [f for f in c.raw_frames() if isinstance(f, GoAwayFrame)]
        c.close()
        assert goaways, "no GOAWAY"
        assert origin.count("/ok") == 0
        v, s, _, b = edge.curl("/ok", "--http2")
        assert (v, s, b) == ("2", 200, "ok")
    finally:
        edge.stop()
        origin.stop()


def test_large_streamed_answer_over_h2(tmp_path):
    """An 8 MiB answer (larger than max_body_bytes and not cacheable) is
    streamed to an h2 client through the per-stream drain callbacks: every
    byte arrives, in order; twice at once on one connection."""
    import hashlib
    origin, edge = start(tmp_path, extra="max_body_bytes = 1048576\n")
    try:
        data = os.urandom(8 << 20)
        origin.routes["/big"] = (200, {"Cache-Control": "no-store"}, data)
        out = subprocess.run(["curl", "-sS", "--http2", "--cacert", edge.ca, "-w", "%{http_version}",
                              "-o", str(tmp_path / "a"), edge.url + "/big", "-o", str(tmp_path / "b"),
                              edge.url + "/big", "--parallel"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and out.stdout == "22", (out.stdout, out.stderr)
        want = hashlib.sha256(data).hexdigest()
        for name in ("a", "b"):
            with open(tmp_path / name, "rb") as f:
                assert hashlib.sha256(f.read()).hexdigest() == want, name
    finally:
        edge.stop()
        origin.stop()
