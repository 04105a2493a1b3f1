"""Bounded memory per client and in total (issue 8, section 2, and the 414 of
section 4): the reproductions of the issue against the real binary, with
real TLS clients. Each test names the bug it pins; each fails on 577b617.

Clients that "never read" set a small receive buffer before connecting, so
the answer waits in the region (where the bound applies) rather than in the
kernel's socket buffers.
"""
import json
import os
import re
import socket
import ssl
import threading
import time

import pytest
import requests

from conftest import UNDER_ASAN, Region, error_code, read_response, signup

MIB = 1024 * 1024


def limits(**values):
    """edit_config for Region: set keys of [limits] (or add them)."""
    def edit(text):
        for key, value in values.items():
            line = "%s = %s" % (key, value)
            text, n = re.subn(r"(?m)^%s = .*$" % key, line, text)
            if n == 0:
                text = text.replace("[limits]\n", "[limits]\n" + line + "\n", 1)
        return text
    return edit


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def tls_socket(region, source="127.0.0.1", rcvbuf=None, timeout=10):
    """A TLS connection to the region from a given loopback source address;
    rcvbuf: a small receive buffer, set before connecting (a client that
    reads nothing then holds back almost nothing in its kernel)."""
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    raw.settimeout(timeout)
    raw.bind((source, 0))
    raw.connect(("127.0.0.1", region.port))
    ctx = ssl.create_default_context(cafile=region.ca)
    return ctx.wrap_socket(raw, server_hostname="127.0.0.1")


def send_get(sock, path, token):
    sock.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
                  % (path, token)).encode())


def healthz_from(region, source):
    s = tls_socket(region, source=source, timeout=5)
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, _, _, _ = read_response(s)
        return status
    finally:
        s.close()


def seed_big_records(region, token, count, size):
    """count records of about size bytes each in collection "big"."""
    s = region.session()
    blob = "x" * size
    for i in range(count):
        r = s.post(region.url + "/v1/collections/big/records",
                   headers={"Authorization": "Bearer " + token},
                   json={"n": i, "blob": blob}, timeout=30)
        assert r.status_code == 201, r.text
    s.close()


def read_until_closed(sock, timeout):
    """Read everything until the peer closes; (bytes read, closed?)."""
    sock.settimeout(timeout)
    total = 0
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            chunk = sock.recv(1 << 20)
            if not chunk:
                return total, True
            total += len(chunk)
    except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
        return total, True
    except socket.timeout:
        pass
    return total, False


class Healthz(threading.Thread):
    """Samples /healthz (a new TLS connection each time) until stopped."""

    def __init__(self, region, every=0.05):
        super().__init__(daemon=True)
        self.region, self.every = region, every
        self.samples, self.failures = [], []
        self.stopping = threading.Event()

    def run(self):
        s = self.region.session()
        while not self.stopping.is_set():
            t = time.time()
            try:
                r = s.get(self.region.url + "/healthz", timeout=2,
                          headers={"Connection": "close"})
                self.samples.append((time.time() - t, r.status_code))
            except requests.RequestException as e:
                self.failures.append(repr(e))
            time.sleep(self.every)

    def stop(self):
        self.stopping.set()
        self.join(10)


def test_big_answers_never_read_hold_bounded_memory_and_are_closed(tmp_path, monkeypatch):
    """Pins: 20 TLS connections asking for big list pages and never reading
    made the region hold every answer (1.3 GB in the issue) until they
    closed, for as long as they liked (the write timeout was the 60 s
    idle timeout). Now the total is bounded (max_buffered_bytes: the answers
    past it are 503), each connection that reads nothing goes after
    write_timeout_ms, and /healthz answers throughout."""
    # under AddressSanitizer (make SAN=1), freed memory waits in a quarantine
    # that counts in RSS: keep it small so RSS measures what the region holds
    monkeypatch.setenv("ASAN_OPTIONS", (os.environ.get("ASAN_OPTIONS", "") +
                                        ":quarantine_size_mb=1").lstrip(":"))
    region = Region(tmp_path, edit_config=limits(
        write_timeout_ms=1500, max_buffered_bytes=32 * MIB, query_threads=1,
        # big pages: the answer per request is the whole collection
        page_max_bytes=64 * MIB, idle_timeout_ms=60000))
    region.start()
    try:
        token = signup(region)["access_token"]
        seed_big_records(region, token, 12, 900 * 1024)  # a page of ~11 MB
        path = "/v1/collections/big/records?limit=12"
        r = requests.get(region.url + path, verify=region.ca,
                         headers={"Authorization": "Bearer " + token}, timeout=30)
        assert r.status_code == 200
        page_bytes = len(r.content)
        assert page_bytes > 10 * MIB and len(r.json()["items"]) == 12
        time.sleep(0.5)
        base = rss_bytes(region.proc.pid)
        answered_before = region.log().count('"route":"/v1/collections/{collection}/records"')

        health = Healthz(region)
        health.start()
        socks = []
        peak = base
        t0 = time.time()
        for _ in range(20):
            s = tls_socket(region, rcvbuf=4096)
            send_get(s, path, token)
            socks.append(s)
            peak = max(peak, rss_bytes(region.proc.pid))
        # until the region has answered all 20 (the log says so), and a bit
        while (region.log().count('"route":"/v1/collections/{collection}/records"')
               < answered_before + 20 and time.time() - t0 < 30):
            peak = max(peak, rss_bytes(region.proc.pid))
            time.sleep(0.05)
        for _ in range(5):
            peak = max(peak, rss_bytes(region.proc.pid))
            time.sleep(0.05)
        # 20 answers of ~11 MB would be 220 MB; the bound is 32 MiB plus
        # the one answer that crosses it, plus the one being built (its
        # buffer grows by doubling: up to 2 x the page). One reader thread
        # here: each builds one page at a time, so query_threads pages can
        # be in the making (their memory is bounded by query_threads x
        # page_max_bytes, docs/SECURITY.md), which is not what this pins.
        # Under ASan the heap's shadow (1/8 of it) is in RSS too: a local ASan
        # run measured 64.05 MiB against a bound of 63.6
        bound = 32 * MIB + 3 * page_bytes
        if UNDER_ASAN:
            bound = bound * 9 // 8 + 4 * MIB
        assert peak - base < bound, (peak - base) / MIB

        # nobody read: after write_timeout_ms (1.5 s) every one is closed
        # (reading earlier would make progress and keep it alive)
        time.sleep(2.0)
        for s in socks:
            got, closed = read_until_closed(s, timeout=3)
            # a request refused while the list queue was full got a small
            # 503 on a keep-alive connection: delivered, nothing held for it
            assert closed or got < 4096, "connection still open after write_timeout_ms"
            assert got < page_bytes  # the answer was not waiting any more
            s.close()
        health.stop()
        assert not health.failures, health.failures[:3]
        assert len(health.samples) > 20
        assert all(status == 200 for _, status in health.samples)
        assert max(t for t, _ in health.samples) < 1.0

        # memory goes back under the bound: big answers are served again
        r = requests.get(region.url + path, verify=region.ca,
                         headers={"Authorization": "Bearer " + token}, timeout=30)
        assert r.status_code == 200 and len(r.content) == page_bytes
    finally:
        region.stop()


def test_trickled_body_is_cut_after_body_timeout_with_408(tmp_path):
    """Pins: a body trickled 1 byte at a time was never timed out (each byte
    restarted the inactivity timer). Now the body has body_timeout_ms from the
    end of the head: 408 request_timeout, then the connection closes."""
    region = Region(tmp_path, edit_config=limits(body_timeout_ms=1500, idle_timeout_ms=60000))
    region.start()
    try:
        s = tls_socket(region)
        s.sendall(b"POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000\r\n\r\n")
        t0 = time.time()
        s.settimeout(0.3)
        answer = b""
        while time.time() - t0 < 6 and b"\r\n\r\n" not in answer:
            try:
                s.sendall(b" ")
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                break
            try:
                chunk = s.recv(65536)
                if not chunk:
                    break
                answer += chunk
            except socket.timeout:
                pass
        elapsed = time.time() - t0
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert 1.3 < elapsed < 4, elapsed
        status, headers, body, _ = read_response(s, answer)
        assert status == 408 and headers["connection"] == "close"
        assert json.loads(body)["error"]["code"] == "request_timeout"
        got, closed = read_until_closed(s, timeout=5)
        assert closed
        s.close()
    finally:
        region.stop()


def test_trickling_clients_from_one_address_do_not_lock_others_out(tmp_path):
    """Pins: 20 connections trickling bodies filled max_connections and
    locked everyone out. Now connections per address are capped
    (max_connections_per_address): the ones over the cap are closed at once,
    and another address (127.0.0.2) still gets in."""
    region = Region(tmp_path, edit_config=limits(
        max_connections=20, max_connections_per_address=8, body_timeout_ms=60000))
    region.start()
    try:
        time.sleep(0.3)  # the start-up probes' connections are gone
        held, refused = [], 0
        for _ in range(24):
            try:
                s = tls_socket(region, timeout=5)
                s.sendall(b"POST /v1/auth/login HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Length: 100000\r\n\r\n{")
                held.append(s)
            except (ConnectionResetError, BrokenPipeError, ssl.SSLError, socket.timeout, OSError):
                refused += 1
        # the refused ones are closed at once; the TLS handshake of a few
        # may even have completed in the kernel's backlog: check each
        alive = [s for s in held if not is_closed_now(s)]
        assert len(alive) == 8, (len(alive), refused)
        # another address is not locked out
        assert healthz_from(region, "127.0.0.2") == 200
        # nor is this one once its connections go
        for s in held:
            s.close()
        deadline = time.time() + 5
        while time.time() < deadline:
            try:
                if healthz_from(region, "127.0.0.1") == 200:
                    break
            except (OSError, ssl.SSLError, EOFError):
                time.sleep(0.1)
        else:
            pytest.fail("127.0.0.1 still refused after its connections closed")
        assert "over max_connections_per_address" in region.log()
        assert metric(region, "tandem_http_refused_per_address_total") >= 16
        assert "127.0.0.1 " not in region.log().split("max_connections_per_address")[1][:200]
    finally:
        region.stop()


def metric(region, name):
    """The value of a metric of the region's /metrics (one region label)."""
    text = requests.get(region.metrics_url, timeout=5).text  # plain HTTP, metrics_listen
    m = re.search(r"(?m)^%s\{[^}]*\} (\S+)$" % name, text)
    assert m, name + " missing from /metrics"
    return float(m.group(1))


def is_closed_now(sock):
    """The server closed this connection (without waiting for more)."""
    sock.settimeout(0.3)
    try:
        return sock.recv(1) == b""
    except socket.timeout:
        return False
    except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
        return True


def test_over_max_buffered_bytes_new_requests_get_503_overloaded(tmp_path):
    """Pins: nothing bounded the memory held for clients in total. Now, while
    non-reading clients hold more than max_buffered_bytes, new big answers and
    new requests with a body get 503 overloaded with Retry-After (small
    answers such as /healthz still go out), and they succeed again once the
    holders are gone."""
    region = Region(tmp_path, edit_config=limits(
        max_buffered_bytes=8 * MIB, page_max_bytes=64 * MIB, write_timeout_ms=30000))
    region.start()
    try:
        user = signup(region)
        token = user["access_token"]
        seed_big_records(region, token, 4, 900 * 1024)  # pages of ~3.6 MB
        path = "/v1/collections/big/records?limit=4"
        auth = {"Authorization": "Bearer " + token}

        holders = []
        for _ in range(4):
            s = tls_socket(region, rcvbuf=4096)
            send_get(s, path, token)
            holders.append(s)
        time.sleep(0.5)

        r = requests.get(region.url + path, verify=region.ca, headers=auth, timeout=10)
        assert r.status_code == 503, r.status_code
        assert error_code(r) == "overloaded"
        assert r.headers["Retry-After"] == "1"
        r = requests.post(region.url + "/v1/collections/small/records", verify=region.ca,
                          headers=auth, json={"a": 1}, timeout=10)
        assert r.status_code == 503 and error_code(r) == "overloaded"
        assert r.headers["Retry-After"] == "1"
        # small answers still go out: the region says it is alive
        assert requests.get(region.url + "/healthz", verify=region.ca, timeout=5).status_code == 200

        for s in holders:
            s.close()
        deadline = time.time() + 10
        while True:
            r = requests.get(region.url + path, verify=region.ca, headers=auth, timeout=10)
            if r.status_code == 200 or time.time() > deadline:
                break
            time.sleep(0.2)
        assert r.status_code == 200 and len(r.json()["items"]) == 4
        r = requests.post(region.url + "/v1/collections/small/records", verify=region.ca,
                          headers=auth, json={"a": 1}, timeout=10)
        assert r.status_code == 201
        assert "over max_buffered_bytes" in region.log()
        # (read now: /metrics, over 4 KiB, is itself refused while over the bound)
        assert metric(region, "tandem_http_buffered_bytes") < 8 * MIB
        assert metric(region, "tandem_http_overloaded_total") >= 2
    finally:
        region.stop()


def test_url_over_max_url_bytes_is_414(tmp_path):
    """Pins: a request target of any length up to the whole head
    (max_header_bytes, 16 KiB) was accepted. Now a target over max_url_bytes
    is 414 uri_too_long; one at the limit is served as before."""
    region = Region(tmp_path, edit_config=limits(max_url_bytes=2048))
    region.start()
    try:
        base = "/v1/collections/c/records?filter="
        at_limit = base + "a" * (2048 - len(base))
        r = requests.get(region.url + at_limit, verify=region.ca, timeout=10)
        assert r.status_code == 401  # got past the parser: needs a token
        r = requests.get(region.url + at_limit + "a", verify=region.ca, timeout=10)
        assert r.status_code == 414
        assert error_code(r) == "uri_too_long"
        assert r.headers["Connection"] == "close"
        # the limit holds before the head is complete (no CRLF yet)
        s = tls_socket(region)
        s.sendall(("GET /" + "b" * 4000).encode())
        status, _, body, _ = read_response(s)
        assert status == 414 and json.loads(body)["error"]["code"] == "uri_too_long"
        s.close()
    finally:
        region.stop()
