"""`tandem edge` (issue 12, first slice): the proxy in front of two real
regions, with failover inside one request. Each test would fail on the code
before it: there was no `tandem edge` command at all."""
import json
import os
import subprocess
import time
import uuid

import requests

from conftest import TANDEM, free_port_base, new_email, start_ready
from regions import TwoRegions


class Edge:
    """One `tandem edge` process of a TwoRegions deployment (tls = off, so
    the tests read the relayed headers with plain requests)."""

    def __init__(self, pair, name, order, probe_ms=0):
        self.pair, self.name = pair, name
        self.port = free_port_base(count=1)
        self.url = "http://127.0.0.1:%d" % self.port
        self.log_path = os.path.join(pair.dir, "edge-%s.log" % name)
        urls = {"eu": "eu=https://127.0.0.1:%d" % pair.eu.port, "us": "us=https://127.0.0.1:%d" % pair.us.port}
        with open(pair.config, "a") as f:
            f.write("\n[edge %s]\nlisten = 127.0.0.1:%d\norigins = %s\ntls = off\nresponse_timeout_ms = 3000\n"
                    "probe_interval_ms = %d\n" % (name, self.port, ", ".join(urls[o] for o in order), probe_ms))
        self.proc = None

    def start(self):
        self.proc = start_ready([TANDEM, "edge", "--config", self.pair.config, "--name", self.name],
                                self.log_path, "ab")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            code = self.proc.wait(10)
            assert code == 0, (code, self.log())

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def get(self, path, **kw):
        return requests.get(self.url + path, timeout=10, **kw)

    def post(self, path, **kw):
        return requests.post(self.url + path, timeout=10, **kw)


def test_relays_with_its_headers_and_a_config_check(tmp_path):
    """A GET and a signup through the edge reach the first origin and come
    back with Via, X-Tandem-Edge and X-Cache; the region sees Forwarded; a
    bad [edge] section is refused by `tandem config check` with FILE:LINE."""
    pair = TwoRegions(tmp_path / "pair").start()
    edge = Edge(pair, "pop", ["eu", "us"])
    try:
        edge.start()
        r = edge.get("/healthz")
        assert r.status_code == 200, r.text
        assert r.headers["X-Tandem-Edge"] == "pop" and r.headers["X-Cache"] == "miss", r.headers
        assert r.headers["Via"].startswith("1.1 tandem-edge-pop") and r.headers["X-Tandem-Region"] == "eu"
        s = edge.post("/v1/auth/signup", json={"email": new_email(), "password": "correct horse battery"})
        assert s.status_code == 201 and s.json()["access_token"], s.text
        ok = subprocess.run([TANDEM, "config", "check", pair.config], capture_output=True, text=True)
        assert ok.returncode == 0 and "3 edges" in ok.stdout, (ok.stdout, ok.stderr)  # eu-pop, us-pop, pop
        with open(pair.config, "a") as f:
            f.write("\n[edge bad]\nlisten = nope\norigins = ftp://x:1\n")
        bad = subprocess.run([TANDEM, "config", "check", pair.config], capture_output=True, text=True)
        assert bad.returncode == 1, bad.stdout
        assert "tandem.ini:" in bad.stderr + bad.stdout and "listen: HOST:PORT" in bad.stderr + bad.stdout
        assert "ftp://x:1" in bad.stderr + bad.stdout
    finally:
        edge.stop()
        pair.stop_all()


def test_failover_inside_a_request(tmp_path):
    """us (first in the edge's order) is killed: a GET and a write with an
    Idempotency-Key that fail there are sent to eu at once and succeed (one
    request each for the client); a write without a key is not repeated:
    the client gets 502 and eu never saw it. A probe brings us back."""
    pair = TwoRegions(tmp_path / "pair").start()
    edge = Edge(pair, "pop", ["us", "eu"])
    try:
        edge.start()
        assert edge.get("/healthz").headers["X-Tandem-Region"] == "us"
        pair.us.kill9()
        # a write without a key: not retried, nothing done at eu
        email = new_email()
        r = edge.post("/v1/auth/signup", json={"email": email, "password": "correct horse battery"})
        assert r.status_code == 502 and r.json()["error"]["code"] == "bad_gateway", r.text
        login = requests.post(pair.eu.url + "/v1/auth/login", json={"email": email, "password": "correct horse battery"},
                              verify=pair.ca, timeout=10)
        assert login.status_code == 401, login.text  # the signup never reached eu
        edge.stop()
        edge.start()  # a fresh edge: us is assumed healthy again, so the next requests try it first
        r = edge.get("/healthz")
        assert r.status_code == 200 and r.headers["X-Tandem-Region"] == "eu", r.headers
        edge.stop()
        edge.start()
        email = new_email()
        key = uuid.uuid4().hex
        r = edge.post("/v1/auth/signup", json={"email": email, "password": "correct horse battery"},
                      headers={"Idempotency-Key": key})
        assert r.status_code == 201, r.text
        assert r.headers["X-Tandem-Region"] == "eu"
        assert edge.log().count("sent to eu") >= 2, edge.log()
    finally:
        edge.stop()
        pair.stop_all()


def test_probes_mark_an_origin_and_bring_it_back(tmp_path):
    """With probes every 200 ms, an origin that is down is skipped (its
    requests go to the next one without a failed attempt) and used again
    once a probe succeeds."""
    pair = TwoRegions(tmp_path / "pair").start()
    edge = Edge(pair, "pop", ["us", "eu"], probe_ms=200)
    try:
        edge.start()
        pair.us.kill9()
        deadline = time.time() + 5
        while "origin us is unhealthy" not in edge.log() and time.time() < deadline:
            time.sleep(0.05)
        assert "origin us is unhealthy" in edge.log()
        for _ in range(5):
            r = edge.get("/healthz")
            assert r.status_code == 200 and r.headers["X-Tandem-Region"] == "eu"
        assert "sent to eu" not in edge.log()  # skipped, never tried and failed
        pair.us.start()
        deadline = time.time() + 10
        while time.time() < deadline:
            if edge.get("/healthz").headers.get("X-Tandem-Region") == "us":
                break
            time.sleep(0.1)
        assert edge.get("/healthz").headers["X-Tandem-Region"] == "us"
        assert "origin us is healthy again" in edge.log()
    finally:
        edge.stop()
        pair.stop_all()


# --- the cache (issue 12 section 2) -----------------------------------------
# Each test below would fail on the code before the cache: that edge answered
# X-Cache: miss always and sent every request to an origin.

import http.server
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

from conftest import Region, run


class CountingOrigin:
    """A tiny HTTP/1.1 origin the test scripts: routes[path] = (status,
    headers, body); it counts what reaches it (per path, and conditional
    requests), can answer 304 to a matching If-None-Match with other
    headers, can be slow (coalescing) and can be stopped (origin down)."""

    def __init__(self, host="127.0.0.1"):
        self.routes, self.hits, self.seen = {}, {}, []
        self.delay, self.not_modified = 0.0, {}
        self.lock = threading.Lock()
        self.conns = []
        origin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def setup(self):
                super().setup()
                with origin.lock:
                    origin.conns.append(self.connection)

            def answer(self, head_only):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                path = self.path
                with origin.lock:
                    origin.hits[path] = origin.hits.get(path, 0) + 1
                    origin.seen.append((self.command, path, dict(self.headers)))
                if origin.delay:
                    time.sleep(origin.delay)
                status, headers, body = origin.routes.get(path, (404, {"Cache-Control": "no-store"}, b"none"))
                inm = self.headers.get("If-None-Match")
                if inm and path in origin.not_modified and headers.get("ETag") == inm:
                    status, headers, body = 304, origin.not_modified[path], b""
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head_only and status != 304:
                    self.wfile.write(body)

            def do_GET(self):
                self.answer(False)

            def do_HEAD(self):
                self.answer(True)

            def do_POST(self):
                self.answer(False)

        self.server = http.server.ThreadingHTTPServer((host, free_port_base(count=1)), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def count(self, path):
        with self.lock:
            return self.hits.get(path, 0)

    def stop(self):
        """Down: no new connection, and the keep-alive ones the edge holds
        are cut (so its next request fails at once)."""
        self.server.shutdown()
        self.server.server_close()
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class CacheEdge(Edge):
    """An edge of a `tandem init` deployment (no region running) in front of
    a CountingOrigin, or of any origins given."""

    def __init__(self, tmp_path, origins, extra="", config=None):
        if config:  # a running deployment's (its CA verifies the origins)
            self.dir, self.config = os.path.dirname(config), config
        else:
            self.dir = str(tmp_path / "deploy")
            run("init", "--address", "127.0.0.1", "--data", self.dir, "--port-base", str(free_port_base()))
            self.config = os.path.join(self.dir, "tandem.ini")
        self.name = "pop"
        self.port = free_port_base(count=1)
        self.url = "http://127.0.0.1:%d" % self.port
        self.log_path = os.path.join(self.dir, "edge-pop.log")
        with open(self.config, "a") as f:
            f.write("\n[edge pop]\nlisten = 127.0.0.1:%d\norigins = %s\ntls = off\nresponse_timeout_ms = 3000\n"
                    "probe_interval_ms = 0\n%s" % (self.port, origins, extra))
        self.proc = None
        self.pair = type("P", (), {"config": self.config})()


def origin_and_edge(tmp_path, extra=""):
    origin = CountingOrigin()
    edge = CacheEdge(tmp_path, "http://127.0.0.1:%d" % origin.port, extra).start()
    return origin, edge


def test_cache_hits_head_negative_and_invalidation(tmp_path):
    """A fresh answer is served from the cache (X-Cache: hit, Age) without
    reaching the origin; a HEAD is answered from the stored GET; a 404 with
    max-age is cached for its freshness; no-store never is; only-if-cached
    on a miss is 504 without asking the origin; /_edge/ paths are never
    proxied; a POST to the URL invalidates it; cache_bytes is checked by
    `tandem config check`."""
    origin, edge = origin_and_edge(tmp_path)
    try:
        origin.routes["/c"] = (200, {"Cache-Control": "max-age=60", "Content-Type": "text/plain", "ETag": '"c1"'},
                               b"cached body")
        origin.routes["/gone"] = (404, {"Cache-Control": "max-age=60"}, b"no such thing")
        origin.routes["/live"] = (200, {"Cache-Control": "no-store"}, b"live")
        r1 = edge.get("/c")
        assert r1.status_code == 200 and r1.headers["X-Cache"] == "miss" and r1.content == b"cached body"
        r2 = edge.get("/c")
        assert r2.status_code == 200 and r2.headers["X-Cache"] == "hit", r2.headers
        assert r2.content == b"cached body" and r2.headers["Content-Type"] == "text/plain"
        assert int(r2.headers["Age"]) >= 0 and r2.headers["X-Tandem-Edge"] == "pop"
        nm = edge.get("/c", headers={"If-None-Match": '"x", "c1"'})
        assert nm.status_code == 304 and nm.headers["X-Cache"] == "hit" and nm.content == b""
        h = requests.head(edge.url + "/c", timeout=10)
        assert h.status_code == 200 and h.headers["X-Cache"] == "hit" and h.headers["Content-Length"] == "11"
        assert origin.count("/c") == 1
        for _ in range(2):
            g = edge.get("/gone")
            assert g.status_code == 404 and g.content == b"no such thing"
        assert g.headers["X-Cache"] == "hit" and origin.count("/gone") == 1
        for _ in range(2):
            assert edge.get("/live").headers["X-Cache"] == "miss"
        assert origin.count("/live") == 2
        r = edge.get("/never", headers={"Cache-Control": "only-if-cached"})
        assert r.status_code == 504 and r.json()["error"]["code"] == "not_cached"
        assert origin.count("/never") == 0
        assert edge.get("/_edge/other").status_code == 404 and origin.count("/_edge/other") == 0
        origin.routes["/c"] = (200, {"Cache-Control": "max-age=60"}, b"new body")
        assert edge.post("/c", data=b"x").status_code == 200
        r3 = edge.get("/c")
        assert r3.headers["X-Cache"] == "miss" and r3.content == b"new body"
        with open(edge.config, "a") as f:
            f.write("cache_bytes = -1\n")
        bad = subprocess.run([TANDEM, "config", "check", edge.config], capture_output=True, text=True)
        assert bad.returncode == 1 and "cache_bytes: 0.." in bad.stdout + bad.stderr
    finally:
        edge.stop()
        origin.stop()


def test_concurrent_misses_are_coalesced(tmp_path):
    """Twelve clients asking at once for the same uncached URL: the origin
    sees one fetch, and every client gets the answer."""
    origin, edge = origin_and_edge(tmp_path)
    try:
        origin.delay = 0.6
        origin.routes["/slow"] = (200, {"Cache-Control": "max-age=60"}, b"slow answer")
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda _: edge.get("/slow"), range(12)))
        assert all(a.status_code == 200 and a.content == b"slow answer" for a in answers)
        assert origin.count("/slow") == 1, origin.count("/slow")
        assert sorted(a.headers["X-Cache"] for a in answers).count("miss") == 1
    finally:
        edge.stop()
        origin.stop()


def test_revalidation_304_updates_stored_headers(tmp_path):
    """A stale answer with an ETag is revalidated with If-None-Match; the
    origin's 304 updates the stored headers (X-Version 1 -> 2) and freshness,
    and the client gets the stored body (X-Cache: revalidated)."""
    origin, edge = origin_and_edge(tmp_path)
    try:
        origin.routes["/v"] = (200, {"Cache-Control": "max-age=1", "ETag": '"v1"', "X-Version": "1"}, b"versioned")
        origin.not_modified["/v"] = {"Cache-Control": "max-age=60", "ETag": '"v1"', "X-Version": "2"}
        assert edge.get("/v").headers["X-Version"] == "1"
        time.sleep(1.3)
        r = edge.get("/v", headers={"If-None-Match": '"client-own"'})
        assert r.status_code == 200 and r.headers["X-Cache"] == "revalidated", r.headers
        assert r.headers["X-Version"] == "2" and r.content == b"versioned"
        assert origin.seen[-1][2].get("If-None-Match") == '"v1"'  # ours, not the client's
        r = edge.get("/v")
        assert r.headers["X-Cache"] == "hit" and r.headers["X-Version"] == "2"
        assert origin.count("/v") == 2
    finally:
        edge.stop()
        origin.stop()


def test_stale_while_revalidate_and_stale_when_origins_fail(tmp_path):
    """stale-while-revalidate: a stale answer is served at once (X-Cache:
    stale) and refreshed in the background. With the origin down, a stale
    answer is served (stale-if-error, or no directive forbidding it), but
    never one marked must-revalidate (the client gets the 502)."""
    origin, edge = origin_and_edge(tmp_path)
    try:
        origin.routes["/swr"] = (200, {"Cache-Control": "max-age=1, stale-while-revalidate=30"}, b"one")
        origin.routes["/sie"] = (200, {"Cache-Control": "max-age=1, stale-if-error=60"}, b"kept")
        origin.routes["/must"] = (200, {"Cache-Control": "max-age=1, must-revalidate"}, b"strict")
        for p in ("/swr", "/sie", "/must"):
            assert edge.get(p).headers["X-Cache"] == "miss"
        time.sleep(1.3)
        origin.routes["/swr"] = (200, {"Cache-Control": "max-age=60"}, b"two")
        r = edge.get("/swr")
        assert r.headers["X-Cache"] == "stale" and r.content == b"one", r.headers
        deadline = time.time() + 5
        while origin.count("/swr") < 2 and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        r = edge.get("/swr")
        assert r.headers["X-Cache"] == "hit" and r.content == b"two"
        origin.stop()
        r = edge.get("/sie")
        assert r.status_code == 200 and r.headers["X-Cache"] == "stale" and r.content == b"kept"
        r = edge.get("/must")
        assert r.status_code == 502 and r.json()["error"]["code"] == "bad_gateway"
    finally:
        edge.stop()


def test_authorization_and_vary(tmp_path):
    """An answer to a request with Authorization is not stored unless it is
    explicitly public; Vary: Accept-Encoding keeps variants apart, with the
    codings normalised (order, case, q=0)."""
    origin, edge = origin_and_edge(tmp_path)
    try:
        origin.routes["/mine"] = (200, {"Cache-Control": "max-age=60"}, b"personal")
        origin.routes["/shared"] = (200, {"Cache-Control": "public, max-age=60"}, b"for all")
        origin.routes["/v"] = (200, {"Cache-Control": "max-age=60", "Vary": "Accept-Encoding"}, b"variant")
        for _ in range(2):
            r = edge.get("/mine", headers={"Authorization": "Bearer abc"})
            assert r.headers["X-Cache"] == "miss"
        assert origin.count("/mine") == 2
        for _ in range(2):
            r = edge.get("/shared", headers={"Authorization": "Bearer abc"})
        assert r.headers["X-Cache"] == "hit" and origin.count("/shared") == 1
        assert edge.get("/v", headers={"Accept-Encoding": "gzip, br"}).headers["X-Cache"] == "miss"
        assert edge.get("/v", headers={"Accept-Encoding": "BR,gzip;q=1, zstd;q=0"}).headers["X-Cache"] == "hit"
        assert edge.get("/v", headers={"Accept-Encoding": "identity"}).headers["X-Cache"] == "miss"
        assert origin.count("/v") == 2
    finally:
        edge.stop()
        origin.stop()


def test_purge_by_url_and_prefix(tmp_path):
    """POST /_edge/purge removes stored answers by URL or prefix with the
    deployment's purge token (tandem edge --print purge-token); without a
    token 401, with a wrong one 403, and nothing is removed."""
    origin, edge = origin_and_edge(tmp_path)
    try:
        for p in ("/p/a", "/p/b", "/q"):
            origin.routes[p] = (200, {"Cache-Control": "max-age=60"}, p.encode())
            edge.get(p)
            assert edge.get(p).headers["X-Cache"] == "hit"
        r = edge.post("/_edge/purge", json={"url": "/p/a"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
        r = edge.post("/_edge/purge", json={"url": "/p/a"}, headers={"Authorization": "Bearer " + "0" * 64})
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
        assert edge.get("/p/a").headers["X-Cache"] == "hit"
        token = run("edge", "--config", edge.config, "--print", "purge-token").stdout.strip()
        auth = {"Authorization": "Bearer " + token}
        r = edge.post("/_edge/purge", data=b"{nope", headers=auth)
        assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"
        r = edge.post("/_edge/purge", json={"url": "/p/a"}, headers=auth)
        assert r.status_code == 200 and r.json() == {"purged": 1}, r.text
        assert edge.get("/p/a").headers["X-Cache"] == "miss"
        host = "127.0.0.1:%d" % edge.port
        r = edge.post("/_edge/purge", json={"prefix": "http://%s/p/" % host}, headers=auth)
        assert r.json() == {"purged": 2}, r.text
        assert edge.get("/p/b").headers["X-Cache"] == "miss"
        assert edge.get("/q").headers["X-Cache"] == "hit"
        assert origin.count("/q") == 1 and origin.count("/p/a") == 2
    finally:
        edge.stop()
        origin.stop()


def test_personal_answers_through_the_edge_are_never_hits(tmp_path):
    """The region's answers carry Cache-Control (no-store; private for a
    file's bytes), so that an edge never stores them: /v1/me and a record
    read twice with a token are misses both times, and so is /healthz."""
    region = Region(tmp_path / "eu").start()
    edge = CacheEdge(tmp_path, "eu=https://127.0.0.1:%d" % region.port, config=region.config).start()
    try:
        s = edge.post("/v1/auth/signup", json={"email": new_email(), "password": "correct horse battery"})
        assert s.status_code == 201, s.text
        auth = {"Authorization": "Bearer " + s.json()["access_token"]}
        c = edge.post("/v1/collections/notes/records", json={"text": "secret"}, headers=auth)
        assert c.status_code == 201, c.text
        rid = c.json()["id"]
        for path in ("/v1/me", "/v1/collections/notes/records/" + rid, "/healthz"):
            for _ in range(2):
                r = edge.get(path, headers=auth)
                assert r.status_code == 200 and r.headers["X-Cache"] == "miss", (path, r.headers)
                assert "no-store" in r.headers["Cache-Control"], (path, r.headers)
    finally:
        edge.stop()
        region.stop()


def test_region_trusts_forwarded_only_from_its_edges(tmp_path):
    """[api] trusted_proxies (issue 12 section 1): behind an edge, the
    per-address signup limit counts each client apart (clients at
    127.0.0.9 and .10, the edge connecting from 127.0.0.1, the trusted
    address); a client that connects directly (from .11) and sends its own
    Forwarded is not believed: its signups count against its own address,
    whatever for= it claims. Before: the region ignored Forwarded, so every
    client behind the edge shared one limit."""
    pair = TwoRegions(tmp_path / "pair", auth={"signup_max_per_address": 2})
    with open(pair.config) as f:
        text = f.read()
    with open(pair.config, "w") as f:
        f.write(text.replace("trusted_proxies = \n", "trusted_proxies = 127.0.0.1\n"))
    pair.start()
    edge = Edge(pair, "pop", ["eu", "us"])

    def signup_from(source, url, extra=()):
        body = json.dumps({"email": new_email(), "password": "correct horse battery"})
        out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--interface", source,
                              "--cacert", pair.ca, "-H", "Content-Type: application/json", *extra, "-d", body,
                              url + "/v1/auth/signup"], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return int(out.stdout)
    try:
        edge.start()
        assert [signup_from("127.0.0.9", edge.url) for _ in range(3)] == [201, 201, 429]
        assert signup_from("127.0.0.10", edge.url) == 201  # another client behind the same edge
        direct = [signup_from("127.0.0.11", pair.eu.url, ("-H", "Forwarded: for=10.0.0.%d" % i)) for i in range(3)]
        assert direct == [201, 201, 429], direct  # its own for= values were not believed
        ok = subprocess.run([TANDEM, "config", "check", pair.config], capture_output=True, text=True)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        with open(pair.config) as f:
            text = f.read()
        with open(pair.config, "w") as f:
            f.write(text.replace("trusted_proxies = 127.0.0.1\n", "trusted_proxies = 127.0.0.1, edge.example\n"))
        bad = subprocess.run([TANDEM, "config", "check", pair.config], capture_output=True, text=True)
        assert bad.returncode == 1 and "trusted_proxies: 'edge.example' is not an address" in bad.stderr + bad.stdout
    finally:
        edge.stop()
        pair.stop_all()


def test_writes_go_to_the_region_that_takes_them(tmp_path):
    """With probes, the edge knows each region's write gate (/readyz
    "write_gate"): a write goes straight to the primary (eu) although us is
    first in its order, while reads keep the order (us); not forwarded by
    the secondary. Before: every request went to us, writes forwarded."""
    pair = TwoRegions(tmp_path / "pair").start()
    edge = Edge(pair, "pop", ["us", "eu"], probe_ms=200)
    try:
        edge.start()
        time.sleep(0.6)  # a probe of each origin answered
        assert edge.get("/healthz").headers["X-Tandem-Region"] == "us"
        for _ in range(3):
            r = edge.post("/v1/auth/signup", json={"email": new_email(), "password": "correct horse battery"},
                          headers={"Idempotency-Key": uuid.uuid4().hex})
            assert r.status_code == 201, r.text
            assert r.headers["X-Tandem-Region"] == "eu", r.headers  # the primary answered it itself
        assert "sent to" not in edge.log()  # no failed attempt on the way
    finally:
        edge.stop()
        pair.stop_all()


def test_disk_tier_holds_what_memory_cannot(tmp_path):
    """disk_cache_dir / disk_cache_bytes: with room in memory for a few
    64 KiB answers only, 40 of them are all hits on the second round (the
    memory LRU's evictions went to disk and come back), the origin asked
    once each; the tier's files are 0600 in a 0700 directory; a purge
    reaches them; config check refuses a disk tier without its bound.
    Before: the second round was 40 misses (an unknown key, in fact)."""
    disk = tmp_path / "edge-disk"
    origin, edge = origin_and_edge(tmp_path, "cache_bytes = 300000\ncache_max_object_bytes = 131072\n"
                                   "disk_cache_dir = %s\ndisk_cache_bytes = 16777216\n" % disk)
    try:
        body = os.urandom(65536)
        for i in range(40):
            origin.routes["/o/%d" % i] = (200, {"Cache-Control": "max-age=600"}, body)
        for rnd in range(2):
            for i in range(40):
                r = edge.get("/o/%d" % i)
                assert r.status_code == 200 and r.content == body, (rnd, i, r.status_code)
                assert r.headers["X-Cache"] == ("miss" if rnd == 0 else "hit"), (rnd, i, r.headers)
        assert all(origin.count("/o/%d" % i) == 1 for i in range(40))
        files = [f for f in os.listdir(disk) if f.endswith(".tdc")]
        assert len(files) >= 30, files  # memory holds 4 of them
        assert os.stat(disk).st_mode & 0o777 == 0o700
        assert all(os.stat(disk / f).st_mode & 0o777 == 0o600 for f in files)
        token = subprocess.run([TANDEM, "edge", "--config", edge.config, "--print", "purge-token"],
                               capture_output=True, text=True, check=True).stdout.strip()
        p = edge.post("/_edge/purge", json={"prefix": "/o/"}, headers={"Authorization": "Bearer " + token})
        assert p.status_code == 200 and p.json()["purged"] == 40, p.text
        assert [f for f in os.listdir(disk) if f.endswith(".tdc")] == []
        assert edge.get("/o/1").headers["X-Cache"] == "miss"
    finally:
        edge.stop()
        origin.stop()
    with open(edge.config, "a") as f:
        f.write("\n[edge bad]\nlisten = 127.0.0.1:1\norigins = http://127.0.0.1:2\ntls = off\n"
                "disk_cache_dir = /tmp/x\n")
    bad = subprocess.run([TANDEM, "config", "check", edge.config], capture_output=True, text=True)
    assert bad.returncode == 1 and "disk_cache_dir needs disk_cache_bytes" in bad.stdout + bad.stderr


def test_config_check_refuses_a_disk_tier_shared_by_two_edges(tmp_path):
    """Each edge empties its disk_cache_dir at start and names its files by
    a counter from 0: two edges on one directory delete each other's files,
    collide on names (every write an error) and could promote the other's
    file for a key of the same length. `tandem config check` refuses it
    (the same directory, however written). Before: accepted."""
    disk = tmp_path / "shared-disk"
    edge = CacheEdge(tmp_path, "http://127.0.0.1:2",
                     "cache_bytes = 300000\ndisk_cache_dir = %s\ndisk_cache_bytes = 1048576\n" % disk)
    ok = subprocess.run([TANDEM, "config", "check", edge.config], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    with open(edge.config, "a") as f:
        f.write("\n[edge other]\nlisten = 127.0.0.1:1\norigins = http://127.0.0.1:2\ntls = off\n"
                "cache_bytes = 300000\ndisk_cache_dir = %s/./\ndisk_cache_bytes = 1048576\n" % disk)
    bad = subprocess.run([TANDEM, "config", "check", edge.config], capture_output=True, text=True)
    out = bad.stdout + bad.stderr
    assert bad.returncode == 1 and "[edge other] disk_cache_dir" in out and "[edge pop]" in out, out
    assert "tandem.ini:" in out, out  # FILE:LINE: message


def test_origin_connections_stay_within_the_origins_per_address_cap(tmp_path):
    """An edge (front) in front of another tandem server (pop) whose [limits]
    max_connections_per_address is 4: 8 slow requests at once through front
    all succeed; front opens at most 3 connections to pop (its cap, minus
    the probe's) and queues the rest. Before: front opened 8 (the default
    max_origin_connections is 1024), pop closed those past 4 at once, and
    front took that for the origin failing: 502s, the origin marked down."""
    origin = CountingOrigin()
    pop = CacheEdge(tmp_path, "http://127.0.0.1:%d" % origin.port, "cache_bytes = 0\n")
    with open(pop.config) as f:
        text = f.read()
    assert "max_connections_per_address = 256" in text
    front_port = free_port_base(count=1)
    text = text.replace("max_connections_per_address = 256", "max_connections_per_address = 4")
    text += ("\n[edge front]\nlisten = 127.0.0.1:%d\norigins = http://127.0.0.1:%d\ntls = off\n"
             "response_timeout_ms = 10000\nprobe_interval_ms = 0\ncache_bytes = 0\n" % (front_port, pop.port))
    with open(pop.config, "w") as f:
        f.write(text)
    pop.start()
    front_log = os.path.join(pop.dir, "edge-front.log")
    front = start_ready([TANDEM, "edge", "--config", pop.config, "--name", "front"], front_log, "ab")
    try:
        origin.delay = 1.0
        for i in range(8):
            origin.routes["/slow/%d" % i] = (200, {"Cache-Control": "no-store"}, b"slow %d" % i)
        results = [None] * 8

        def fetch(i):  # each from its own address: front's own cap is 4 per client address too
            s = socket.create_connection(("127.0.0.1", front_port), timeout=20,
                                         source_address=("127.0.0.%d" % (20 + i), 0))
            s.sendall(b"GET /slow/%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % i)
            data = b""
            while True:
                piece = s.recv(65536)
                if not piece:
                    break
                data += piece
            s.close()
            results[i] = data

        threads = [threading.Thread(target=fetch, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        for i, data in enumerate(results):
            assert data and data.startswith(b"HTTP/1.1 200") and data.endswith(b"slow %d" % i), (i, data[:300])
        with open(front_log, errors="replace") as f:
            assert "unhealthy" not in f.read()
    finally:
        front.terminate()
        front.wait(10)
        pop.stop()
        origin.stop()


def test_fields_named_by_connection_are_not_relayed(tmp_path):
    """RFC 9110 7.6.1: a field a message's Connection header names is for
    that hop only: the client's X-Hop does not reach the origin, the
    origin's X-Internal does not reach the client (the others do)."""
    origin, edge = origin_and_edge(tmp_path)
    try:
        origin.routes["/h"] = (200, {"Cache-Control": "no-store", "Connection": "X-Internal",
                                     "X-Internal": "origin-only", "X-Public": "yes"}, b"ok")
        r = edge.get("/h", headers={"Connection": "X-Hop, keep-alive", "X-Hop": "client-only", "X-Kept": "1"})
        assert r.status_code == 200 and r.headers.get("X-Public") == "yes", r.headers
        assert "X-Internal" not in r.headers, r.headers
        sent = [h for (m, path, h) in origin.seen if path == "/h"][-1]
        assert "X-Hop" not in sent and sent.get("X-Kept") == "1", sent
    finally:
        edge.stop()
        origin.stop()


def test_a_newer_answer_too_large_to_keep_removes_the_stored_one(tmp_path):
    """A stored answer goes stale; its revalidation gets a new 200 too large
    to store (over cache_max_object_bytes, streamed): the stored one is
    forgotten, so the next request is a plain miss, not a revalidation of
    an answer the origin has replaced."""
    origin, edge = origin_and_edge(tmp_path, "cache_max_object_bytes = 4096\n")
    try:
        origin.routes["/g"] = (200, {"Cache-Control": "max-age=0", "ETag": '"v1"'}, b"small")
        assert edge.get("/g").content == b"small"
        origin.routes["/g"] = (200, {"Cache-Control": "max-age=0", "ETag": '"v2"'}, b"L" * 10000)
        r = edge.get("/g")
        assert r.status_code == 200 and len(r.content) == 10000, r.headers
        seen = [h for (m, path, h) in origin.seen if path == "/g"]
        assert seen[1].get("If-None-Match") == '"v1"', seen  # the stored one was revalidated
        edge.get("/g")
        seen = [h for (m, path, h) in origin.seen if path == "/g"]
        assert "If-None-Match" not in seen[2], seen  # ... and then forgotten
    finally:
        edge.stop()
        origin.stop()


def test_origins_ordered_by_what_the_dns_answers(tmp_path):
    """resolve = NAME, resolvers = DEAD, LIVE: the first resolver does not
    answer (nothing listens), the second (a small DNS server here, as
    tandem dns would) answers api.tandem.test with the second origin's
    address: requests go there although it is listed second; the query
    carried the edge's subnet as ECS; when the answer changes (TTL 1 s) the
    edge follows. Before: no resolve key (config refused)."""
    import dns.edns
    import dns.message
    import dns.rdatatype
    import dns.rrset
    eu, us = CountingOrigin("127.0.0.2"), CountingOrigin("127.0.0.3")
    for o in (eu, us):
        o.routes["/who"] = (200, {"Cache-Control": "no-store"}, b"x")
    answer = {"addr": "127.0.0.3"}
    seen_ecs = []
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dead.bind(("127.0.0.1", 0))
    dead_port = dead.getsockname()[1]
    dead.close()  # nothing listens there: the edge's query is refused

    def serve():
        while True:
            try:
                data, peer = sock.recvfrom(4096)
            except OSError:
                return
            q = dns.message.from_wire(data)
            seen_ecs.extend(o for o in q.options if isinstance(o, dns.edns.ECSOption))
            r = dns.message.make_response(q)
            if q.question[0].rdtype == dns.rdatatype.A:
                r.answer.append(dns.rrset.from_text(q.question[0].name, 1, "IN", "A", answer["addr"]))
            sock.sendto(r.to_wire(), peer)
    threading.Thread(target=serve, daemon=True).start()
    edge = CacheEdge(tmp_path, "eu=http://127.0.0.2:%d, us=http://127.0.0.3:%d" % (eu.port, us.port),
                     "resolve = api.tandem.test\nresolvers = 127.0.0.1:%d, 127.0.0.1:%d\n"
                     % (dead_port, sock.getsockname()[1])).start()
    try:
        deadline = time.time() + 10
        while us.count("/who") == 0:
            edge.get("/who")
            assert time.time() < deadline, edge.log()
            time.sleep(0.1)
        before = eu.count("/who")
        for _ in range(5):
            assert edge.get("/who").status_code == 200
        assert eu.count("/who") == before, "an origin the DNS did not name was tried first"
        assert seen_ecs and str(seen_ecs[0].address) == "127.0.0.1" and seen_ecs[0].srclen == 32, seen_ecs
        answer["addr"] = "127.0.0.2"  # the DNS now prefers the other
        deadline = time.time() + 10
        while edge.get("/who") is not None and eu.count("/who") == before:
            assert time.time() < deadline, edge.log()
            time.sleep(0.2)
        assert "api.tandem.test answers 127.0.0.2" in edge.log()
    finally:
        edge.stop()
        sock.close()
        eu.stop()
        us.stop()
