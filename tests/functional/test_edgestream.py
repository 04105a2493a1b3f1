"""Streamed answers through `tandem edge` (issue 12 section 1, "Streaming
both ways without buffering whole bodies"): a download larger than the
edge's max_body_bytes, a long-lived answer (server-sent events) whose first
event reaches the client while the origin is still writing, a client that
never reads holding the edge to one window of the answer, an origin cut
mid-answer seen as a short body, and a client leaving mid-answer closing
the origin's connection. Every test fails on the code before: answers were
collected whole (over max_body_bytes: 502; an endless answer: nothing until
its end)."""
import hashlib
import http.server
import os
import socket
import threading
import time

import requests

from conftest import TANDEM
from test_edge import CacheEdge

BIG = 24 << 20  # over the edge's max_body_bytes below (4 MiB)


class StreamOrigin:
    """An origin whose paths stream: /big (BIG bytes, Content-Length),
    /events (chunked: one event, then waits for the test's go, then a
    second), /cut (announces 1 MiB, sends 64 KiB, closes), /endless (chunks
    until the client is gone; records the disconnect)."""

    def __init__(self):
        self.go = threading.Event()
        self.gone = threading.Event()
        self.sent = {"endless": 0}
        origin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def chunk(self, data):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

            def do_GET(self):
                if self.path == "/big":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(BIG))
                    self.end_headers()
                    block = bytes(range(256)) * 4096  # 1 MiB
                    for _ in range(BIG // len(block)):
                        self.wfile.write(block)
                elif self.path == "/events":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Cache-Control", "no-store")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    self.chunk(b"data: one\n\n")
                    origin.go.wait(15)  # the test says go once it has read the first event
                    self.chunk(b"data: two\n\n")
                    self.wfile.write(b"0\r\n\r\n")
                elif self.path == "/cut":
                    self.send_response(200)
                    self.send_header("Content-Length", str(1 << 20))
                    self.end_headers()
                    self.wfile.write(b"c" * 65536)
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                elif self.path == "/endless":
                    self.send_response(200)
                    self.send_header("Cache-Control", "no-store")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    try:
                        while True:
                            self.chunk(b"e" * 65536)
                            origin.sent["endless"] += 65536
                    except OSError:
                        origin.gone.set()
                        self.close_connection = True
                else:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.go.set()
        self.server.shutdown()
        self.server.server_close()


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def start(tmp_path):
    origin = StreamOrigin()
    edge = CacheEdge(tmp_path, "http://127.0.0.1:%d" % origin.port,
                     "max_body_bytes = 4194304\nresponse_timeout_ms = 5000\n").start()
    return origin, edge


def test_a_download_larger_than_max_body_bytes_streams_through(tmp_path):
    origin, edge = start(tmp_path)
    try:
        h = hashlib.sha256()
        with requests.get(edge.url + "/big", stream=True, timeout=30) as r:
            assert r.status_code == 200 and int(r.headers["Content-Length"]) == BIG, r.headers
            assert r.headers["X-Tandem-Edge"] == "pop" and r.headers["X-Cache"] == "miss"
            n = 0
            for piece in r.iter_content(1 << 16):
                h.update(piece)
                n += len(piece)
        assert n == BIG
        want = hashlib.sha256((bytes(range(256)) * 4096) * (BIG >> 20)).hexdigest()
        assert h.hexdigest() == want
    finally:
        edge.stop()
        origin.stop()


def test_server_sent_events_reach_the_client_while_the_origin_writes(tmp_path):
    """The origin sends its second event only after the client has read the
    first: an edge that collected whole answers would deadlock here."""
    origin, edge = start(tmp_path)
    try:
        with requests.get(edge.url + "/events", stream=True, timeout=20) as r:
            assert r.status_code == 200 and r.headers["Content-Type"] == "text/event-stream"
            lines = r.iter_lines()
            assert next(lines) == b"data: one"
            origin.go.set()
            rest = [line for line in lines if line]
        assert rest == [b"data: two"]
    finally:
        edge.stop()
        origin.stop()


def test_a_client_that_never_reads_holds_one_window_not_the_answer(tmp_path):
    """A client asks for an endless answer and reads nothing: the edge stops
    reading the origin once the client's unsent output is full, so its
    memory grows by a bounded window (max_unsent_bytes, 8 MiB, plus socket
    buffers), not by what the origin can send; the origin is held back."""
    origin, edge = start(tmp_path)
    try:
        before = rss_kb(edge.proc.pid)
        s = socket.create_connection(("127.0.0.1", edge.port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"GET /endless HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(3)  # the origin sends as fast as it is allowed
        grown = rss_kb(edge.proc.pid) - before
        sent = origin.sent["endless"]
        # what the edge can hold is what the origin could send: one window (8 MiB) and the
        # sockets' buffers; unbounded, loopback would carry gigabytes in these seconds
        assert sent < (40 << 20), "the origin sent %d bytes to a client that reads nothing" % sent
        time.sleep(1)
        assert origin.sent["endless"] - sent < (4 << 20), "the origin is not held back"
        if "build-san" not in TANDEM:  # ASan keeps freed memory in quarantine: RSS says nothing there
            assert grown < 40 * 1024, "the edge grew by %d KiB for a client that reads nothing" % grown
        s.close()  # the client leaves: the origin's connection is closed
        assert origin.gone.wait(10), "the origin's connection stayed open after the client left"
        assert requests.get(edge.url + "/big", timeout=30).status_code == 200  # and the edge serves on
    finally:
        edge.stop()
        origin.stop()


def test_an_origin_cut_mid_answer_is_a_short_body_not_a_complete_one(tmp_path):
    origin, edge = start(tmp_path)
    try:
        s = socket.create_connection(("127.0.0.1", edge.port))
        s.sendall(b"GET /cut HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        s.settimeout(10)
        while True:
            piece = s.recv(65536)
            if not piece:
                break
            data += piece
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: 1048576" in head, head
        assert len(body) < (1 << 20), "a complete-looking body"  # closed short: the client knows
        assert "was cut after" in edge.log(), edge.log()
    finally:
        edge.stop()
        origin.stop()


def test_a_second_client_of_a_live_stream_is_not_held_behind_the_first(tmp_path):
    """Two clients of the same server-sent events URL (no-store): the second
    gets its own stream at once. Before: its GET waited, coalesced behind
    the first one's fetch, until that stream ended (an endless stream:
    forever), although nothing of it would be stored."""
    origin, edge = start(tmp_path)
    try:
        with requests.get(edge.url + "/events", stream=True, timeout=20) as first:
            assert next(first.iter_lines()) == b"data: one"
            t0 = time.monotonic()
            with requests.get(edge.url + "/events", stream=True, timeout=5) as second:
                assert second.status_code == 200 and next(second.iter_lines()) == b"data: one"
                assert time.monotonic() - t0 < 4
                origin.go.set()
    finally:
        edge.stop()
        origin.stop()
