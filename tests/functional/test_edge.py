"""`tandem edge` (issue 12, first slice): the proxy in front of two real
regions, with failover inside one request. Each test would fail on the code
before it: there was no `tandem edge` command at all."""
import os
import select
import subprocess
import time
import uuid

import requests

from conftest import TANDEM, free_port_base, new_email
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
        r, w = os.pipe()
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([TANDEM, "edge", "--config", self.pair.config, "--name", self.name],
                                     stdout=log, stderr=log, pass_fds=(w,),
                                     env=dict(os.environ, TANDEM_READY_FD=str(w)))
        log.close()
        os.close(w)
        ready, _, _ = select.select([r], [], [], 10)
        line = os.read(r, 16) if ready else b""
        os.close(r)
        assert line.startswith(b"ready"), self.log()
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
        assert ok.returncode == 0 and "1 edge" in ok.stdout, (ok.stdout, ok.stderr)
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
