"""Streamed uploads through `tandem edge` (issue 12 section 1, "Streaming
both ways without buffering whole bodies"): a request body larger than
stream_upload_bytes (or chunked) goes to the origin as it arrives, the edge
holding a window of it, not all of it: a 200 MiB upload by curl
(--data-binary, -T chunked, --http2) hashed by the origin with the edge's
RSS far below it; a slow client; failover of a small streamed upload
(replayed once at the other origin) and not of a large one (502, not
repeated); an origin refusing early (413 relayed); the edge's own bound
(max_upload_bytes: 413 JSON); a client stopping mid-body (body timeout:
408, the origin's connection closed). Before, bodies were collected whole
up to max_body_bytes (16 MiB by default: a 200 MiB upload was refused)."""
import hashlib
import json
import os
import re
import socket
import subprocess
import threading
import time

import requests

from conftest import TANDEM, free_port_base, run

# ASan keeps freed memory in quarantine: RSS says nothing about bounds there
RSS_MEANINGFUL = "build-san" not in TANDEM
from test_edge import CacheEdge

MIB = 1 << 20


class UploadOrigin:
    """A plain HTTP/1.1 origin on a raw socket: reads each request's body
    (Content-Length or chunked), answers {"sha256", "bytes"}. Per path:
    /early413 answers 413 after the head (body unread); /die closes at once
    when self.die is set; /diemid reads 2 MiB then closes; /slow reads 64 KiB
    every 10 ms (Content-Length bodies). It records each
    request (path, bytes read, complete or cut)."""

    def __init__(self, die=False):
        self.die = die
        self.seen = []  # (path, bytes, complete)
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.port = free_port_base(count=1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(64)
        self.stopped = False
        threading.Thread(target=self.accept, daemon=True).start()

    def count(self, path):
        with self.lock:
            return sum(1 for s in self.seen if s[0] == path)

    def accept(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        f = conn.makefile("rb")
        try:
            while True:
                line = f.readline()
                if not line:
                    return
                method, path, _ = line.decode().split(" ", 2)
                headers = {}
                while True:
                    h = f.readline()
                    if h in (b"\r\n", b""):
                        break
                    k, v = h.decode().split(":", 1)
                    headers[k.strip().lower()] = v.strip()
                if path == "/die" and self.die:
                    with self.lock:
                        self.seen.append((path, 0, False))
                    conn.close()
                    return
                if path == "/early413":
                    with self.lock:
                        self.seen.append((path, 0, False))
                    body = b'{"error":"too big for me"}'
                    conn.sendall(b"HTTP/1.1 413 Content Too Large\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
                    conn.shutdown(socket.SHUT_WR)
                    conn.settimeout(2)
                    try:
                        while f.read(65536):
                            pass
                    except OSError:
                        pass
                    return
                h = hashlib.sha256()
                n, complete = 0, False
                limit = 2 * MIB if path == "/diemid" else None
                try:
                    if "content-length" in headers:
                        left = int(headers["content-length"])
                        while left:
                            want = min(left, 65536)
                            if limit is not None:
                                want = min(want, limit - n)
                                if want == 0:
                                    break
                            piece = f.read(want)
                            if not piece:
                                break
                            if path == "/slow":
                                time.sleep(0.01)
                            h.update(piece)
                            n += len(piece)
                            left -= len(piece)
                        complete = left == 0
                    elif headers.get("transfer-encoding", "").lower() == "chunked":
                        while True:
                            size = int(f.readline().split(b";")[0], 16)
                            if size == 0:
                                f.readline()
                                complete = True
                                break
                            piece = f.read(size)
                            f.readline()
                            h.update(piece)
                            n += len(piece)
                            if limit is not None and n >= limit:
                                break
                    else:
                        complete = True
                except (OSError, ValueError):
                    pass
                with self.lock:
                    self.seen.append((path, n, complete))
                if not complete:
                    conn.close()
                    return
                body = json.dumps({"sha256": h.hexdigest(), "bytes": n, "method": method,
                                   "length": headers.get("content-length"),
                                   "chunked": "transfer-encoding" in headers}).encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(body), body))
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def stop(self):
        self.stopped = True
        self.sock.close()


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def start(tmp_path, origins, extra="", body_timeout_ms=None):
    edge = CacheEdge(tmp_path, origins, "response_timeout_ms = 5000\n" + extra)
    if body_timeout_ms:
        with open(edge.config) as f:
            text = f.read()
        text = re.sub(r"(?m)^body_timeout_ms = \d+$", "body_timeout_ms = %d" % body_timeout_ms, text)
        with open(edge.config, "w") as f:
            f.write(text)
    return edge.start()


def big_file(tmp_path, size):
    path = str(tmp_path / ("body-%d" % size))
    block = os.urandom(MIB)
    h = hashlib.sha256()
    with open(path, "wb") as f:
        for _ in range(size // MIB):
            f.write(block)
            h.update(block)
    return path, h.hexdigest()


def curl(*args, timeout=120):
    p = subprocess.run(["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", *args], capture_output=True,
                       timeout=timeout)
    out = p.stdout.decode(errors="replace")
    body, _, code = out.rpartition("\n")
    return int(code or 0), body, p.stderr.decode(errors="replace")


class RssWatch:
    """The edge's highest VmRSS while an upload runs."""

    def __init__(self, pid):
        self.pid, self.peak, self.done = pid, 0, threading.Event()
        self.thread = threading.Thread(target=self.watch, daemon=True)
        self.thread.start()

    def watch(self):
        while not self.done.is_set():
            self.peak = max(self.peak, rss_kb(self.pid))
            time.sleep(0.05)

    def stop(self):
        self.done.set()
        self.thread.join()
        return self.peak


def test_a_200_mib_upload_streams_through_with_bounded_memory(tmp_path):
    """curl --data-binary (Content-Length), -T with chunked encoding, and
    --http2 (h2c, DATA frames): the origin receives every byte (its hash is
    the file's), and the edge's RSS stays far below the body's size."""
    origin = UploadOrigin()
    edge = start(tmp_path, "http://127.0.0.1:%d" % origin.port)
    try:
        path, want = big_file(tmp_path, 200 * MIB)
        base = rss_kb(edge.proc.pid)
        runs = [
            ("--data-binary", ["-X", "PUT", "--data-binary", "@" + path], False),
            ("chunked -T", ["-T", path, "-H", "Transfer-Encoding: chunked"], True),
            ("--http2", ["--http2-prior-knowledge", "-X", "PUT", "--data-binary", "@" + path], False),
        ]
        for name, args, chunked in runs:
            watch = RssWatch(edge.proc.pid)
            code, body, err = curl(*args, edge.url + "/hash")
            peak = watch.stop()
            assert code == 200, (name, code, body, err, edge.log()[-2000:])
            got = json.loads(body)
            assert got["sha256"] == want and got["bytes"] == 200 * MIB, (name, got)
            assert got["chunked"] == chunked, (name, got)  # chunked arrives chunked, a length as a length
            print("%s: edge RSS %d KiB before, peak %d KiB during a 200 MiB upload" % (name, base, peak))
            if RSS_MEANINGFUL:
                assert peak - base < 32 * 1024, (name, base, peak)  # far below 200 MiB
        assert origin.count("/hash") == 3
    finally:
        edge.stop()
        origin.stop()


def test_a_slow_client_upload_arrives_whole(tmp_path):
    """A client trickling a 3 MiB body (in pauses) is relayed whole, streamed
    (over stream_upload_bytes: 64 KiB here)."""
    origin = UploadOrigin()
    edge = start(tmp_path, "http://127.0.0.1:%d" % origin.port, "stream_upload_bytes = 65536\n")
    try:
        data = os.urandom(3 * MIB)
        s = socket.create_connection(("127.0.0.1", edge.port), timeout=20)
        s.sendall(b"PUT /hash HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(data))
        for i in range(0, len(data), 256 * 1024):
            s.sendall(data[i:i + 256 * 1024])
            time.sleep(0.1)
        resp = b""
        while b"}" not in resp:
            piece = s.recv(65536)
            if not piece:
                break
            resp += piece
        s.close()
        assert resp.startswith(b"HTTP/1.1 200"), resp
        got = json.loads(resp.split(b"\r\n\r\n", 1)[1])
        assert got["sha256"] == hashlib.sha256(data).hexdigest() and got["length"] == str(len(data))
    finally:
        edge.stop()
        origin.stop()


def test_a_small_streamed_upload_is_replayed_once_at_the_other_origin(tmp_path):
    """Origin a closes before reading: the body (2 MiB, under
    retry_buffer_bytes) is sent again to b, once; a 6 MiB one is not
    (502, one attempt at a, none at b)."""
    a, b = UploadOrigin(die=True), UploadOrigin()
    mport = free_port_base(count=1)
    edge = start(tmp_path, "a=http://127.0.0.1:%d, b=http://127.0.0.1:%d" % (a.port, b.port),
                 "stream_upload_bytes = 1048576\nretry_buffer_bytes = 4194304\n"
                 "metrics_listen = 127.0.0.1:%d\n" % mport)
    try:
        data = os.urandom(2 * MIB)
        path = str(tmp_path / "small")
        with open(path, "wb") as f:
            f.write(data)
        code, body, err = curl("-X", "PUT", "-H", "Idempotency-Key: k1", "--data-binary", "@" + path,
                               edge.url + "/die")
        assert code == 200, (code, body, err, edge.log()[-2000:])
        assert json.loads(body)["sha256"] == hashlib.sha256(data).hexdigest()
        assert a.count("/die") == 1 and b.count("/die") == 1
        assert "its body replayed" in edge.log()
        metrics = requests.get("http://127.0.0.1:%d/metrics" % mport, timeout=10).text
        assert 'tandem_edge_uploads_total{edge="pop",outcome="streamed"} 1' in metrics, metrics
        assert 'tandem_edge_uploads_total{edge="pop",outcome="replayed"} 1' in metrics
    finally:
        edge.stop()
        a.stop()
        b.stop()


def test_a_large_upload_failing_mid_body_is_a_502_not_repeated(tmp_path):
    """The origin reads 2 MiB of 64 MiB then closes: past retry_buffer_bytes
    (1 MiB), the client gets a 502 JSON error and the other origin never
    sees the request."""
    a, b = UploadOrigin(), UploadOrigin()
    edge = start(tmp_path, "a=http://127.0.0.1:%d, b=http://127.0.0.1:%d" % (a.port, b.port))
    try:
        path, _ = big_file(tmp_path, 64 * MIB)
        code, body, err = curl("-X", "PUT", "-H", "Idempotency-Key: k2", "--data-binary", "@" + path,
                               edge.url + "/diemid")
        assert code == 502, (code, body, err)
        assert json.loads(body)["error"]["code"] == "bad_gateway"
        time.sleep(0.5)
        assert a.count("/diemid") == 1 and b.count("/diemid") == 0
        assert "not repeated" in edge.log()
    finally:
        edge.stop()
        a.stop()
        b.stop()


def test_an_origin_refusing_early_is_relayed(tmp_path):
    """The origin answers 413 after the head of a 32 MiB upload, unread:
    the client gets that 413 (the origin's body), promptly."""
    origin = UploadOrigin()
    edge = start(tmp_path, "http://127.0.0.1:%d" % origin.port)
    try:
        path, _ = big_file(tmp_path, 32 * MIB)
        t0 = time.time()
        code, body, err = curl("-X", "PUT", "--data-binary", "@" + path, edge.url + "/early413", timeout=30)
        assert code == 413, (code, body, err)
        assert json.loads(body) == {"error": "too big for me"}
        assert time.time() - t0 < 15
        assert origin.count("/early413") == 1
        # over HTTP/2 (the stream lingers: curl 7.88 saw error 92 when it was reset at once)
        code, body, err = curl("--http2-prior-knowledge", "-X", "PUT", "--data-binary", "@" + path,
                               edge.url + "/early413", timeout=30)
        assert code == 413, (code, body, err)
        assert json.loads(body) == {"error": "too big for me"}
        assert origin.count("/early413") == 2
    finally:
        edge.stop()
        origin.stop()


def test_the_upload_limit_is_a_413_json(tmp_path):
    """max_upload_bytes: an announced length over it is refused before any
    byte is relayed; a chunked body passing it is cut with 413 too, and the
    origin's request is abandoned (never complete)."""
    origin = UploadOrigin()
    edge = start(tmp_path, "http://127.0.0.1:%d" % origin.port, "max_upload_bytes = 8388608\n")
    try:
        path, _ = big_file(tmp_path, 16 * MIB)
        code, body, err = curl("-X", "PUT", "--data-binary", "@" + path, edge.url + "/hash")
        assert code == 413, (code, body, err)
        assert json.loads(body)["error"]["code"] == "payload_too_large"
        # over HTTP/2 too (the rest of the body dropped for a while, not reset at once: curl 7.88
        # took that reset as an error while it still sent, and showed no answer)
        code, body, err = curl("--http2-prior-knowledge", "-X", "PUT", "--data-binary", "@" + path,
                               edge.url + "/hash")
        assert code == 413, (code, body, err)
        assert json.loads(body)["error"]["code"] == "payload_too_large"
        time.sleep(0.5)
        assert origin.seen == [], origin.seen  # an announced length: the origin never asked
        code, body, err = curl("-T", path, "-H", "Transfer-Encoding: chunked", edge.url + "/hash")
        assert code == 413, (code, body, err)
        assert json.loads(body)["error"]["code"] == "payload_too_large"
        time.sleep(0.5)
        assert all(not complete for path_, n, complete in origin.seen), origin.seen
    finally:
        edge.stop()
        origin.stop()


def test_a_client_stopping_mid_body_times_out_and_the_origin_connection_closes(tmp_path):
    """A client sends 2 MiB of an announced 8 MiB, then nothing: after
    body_timeout_ms (1 s, of inactivity for a streamed body) it gets 408,
    and the origin sees its connection closed with the body cut."""
    origin = UploadOrigin()
    edge = start(tmp_path, "http://127.0.0.1:%d" % origin.port, body_timeout_ms=1000)
    try:
        s = socket.create_connection(("127.0.0.1", edge.port), timeout=20)
        s.sendall(b"PUT /hash HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (8 * MIB))
        s.sendall(os.urandom(2 * MIB))
        t0 = time.time()
        resp = s.recv(65536)
        assert resp.startswith(b"HTTP/1.1 408"), resp
        assert b"request_timeout" in resp
        assert time.time() - t0 < 10
        deadline = time.time() + 5
        while time.time() < deadline and not origin.seen:
            time.sleep(0.05)
        assert origin.seen == [("/hash", 2 * MIB, False)], origin.seen
        s.close()
    finally:
        edge.stop()
        origin.stop()


def test_config_check_accepts_the_upload_keys(tmp_path):
    origin = UploadOrigin()
    edge = CacheEdge(tmp_path, "http://127.0.0.1:%d" % origin.port,
                     "stream_upload_bytes = 65536\nmax_upload_bytes = 1073741824\nretry_buffer_bytes = 0\n"
                     "max_upload_memory_bytes = 67108864\n")
    try:
        run("config", "check", edge.config)
        with open(edge.config, "a") as f:
            f.write("max_upload_bytes = 12\n")
        p = run("config", "check", edge.config, check=False)
        assert p.returncode != 0 and "max_upload_bytes: 1024.." in (p.stdout + p.stderr), p
    finally:
        origin.stop()


def test_objects_uploaded_through_the_edge_to_a_real_region(tmp_path, monkeypatch):
    """s3.app.tandem.test through the US edge of `tandem up` (host_origins,
    TLS): boto3 PUTs a 12 MiB object and uploads a 40 MiB file in 8 MiB
    parts (multipart, several parts at once), each body streamed to the
    region; what is read back is what was sent, and the edge's RSS grows by
    far less than the bytes in flight."""
    import socket as socketmod
    import boto3
    import boto3.s3.transfer
    import botocore.config
    from conftest import UP_PORTS, start_up
    import signal
    base = free_port_base(count=UP_PORTS)
    proc, e = start_up(tmp_path / "up", base)
    try:
        edge = e["edges"]["us-pop"]
        real = socketmod.getaddrinfo

        def resolve(host, *a, **kw):
            return real(edge["address"] if host == "s3.app.tandem.test" else host, *a, **kw)
        monkeypatch.setattr(socketmod, "getaddrinfo", resolve)
        keys = e["s3_keys"]
        s3 = boto3.client("s3", endpoint_url="https://s3.app.tandem.test:%d" % edge["port"],
                          aws_access_key_id=keys["access_key_id"], aws_secret_access_key=keys["secret_access_key"],
                          region_name="us", verify=e["ca"],
                          config=botocore.config.Config(s3={"addressing_style": "path"},
                                                        retries={"max_attempts": 1}))
        s3.create_bucket(Bucket="big", CreateBucketConfiguration={"LocationConstraint": "us"})
        base_rss = rss_kb(edge["pid"])
        watch = RssWatch(edge["pid"])
        one = os.urandom(12 * MIB)
        s3.put_object(Bucket="big", Key="one", Body=one)
        path, want = big_file(tmp_path, 40 * MIB)
        s3.upload_file(path, "big", "parts", Config=boto3.s3.transfer.TransferConfig(
            multipart_threshold=8 * MIB, multipart_chunksize=8 * MIB, max_concurrency=5))
        peak = watch.stop()
        got = s3.get_object(Bucket="big", Key="one")
        assert got["Body"].read() == one and got["ResponseMetadata"]["HTTPHeaders"]["x-tandem-edge"] == "us-pop"
        h = hashlib.sha256(s3.get_object(Bucket="big", Key="parts")["Body"].read()).hexdigest()
        assert h == want
        print("edge RSS %d KiB before, peak %d KiB during 52 MiB of S3 uploads" % (base_rss, peak))
        if RSS_MEANINGFUL:
            assert peak - base_rss < 24 * 1024, (base_rss, peak)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, proc.log()[-3000:]


def recv_answer(s):
    """One HTTP/1.1 answer with a Content-Length body from socket s: (head, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = s.recv(65536)
        if not piece:
            return data, b""
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    m = re.search(rb"(?i)content-length: *(\d+)", head)
    want = int(m.group(1)) if m else 0
    while len(body) < want:
        piece = s.recv(65536)
        if not piece:
            break
        body += piece
    return head, body


def test_two_uploads_sharing_one_origin_connection_stay_apart(tmp_path):
    """max_origin_connections = 1: upload A is in flight (half its body
    sent), upload B waits behind it on the one origin connection, its whole
    body arriving meanwhile. B's bytes must not go into A's body: each
    arrives whole and alone (the origin's hashes), A first then B."""
    origin = UploadOrigin()
    edge = start(tmp_path, "http://127.0.0.1:%d" % origin.port,
                 "stream_upload_bytes = 65536\nmax_origin_connections = 1\n")
    try:
        a_data, b_data = os.urandom(MIB), os.urandom(MIB)
        a = socket.create_connection(("127.0.0.1", edge.port), timeout=20)
        a.sendall(b"PUT /hash HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(a_data))
        a.sendall(a_data[:MIB // 2])
        deadline = time.time() + 5  # A's request is at the origin
        while time.time() < deadline and "PUT /hash" not in edge.log() and not origin.seen:
            time.sleep(0.2)
        time.sleep(0.5)
        b = socket.create_connection(("127.0.0.1", edge.port), timeout=20)
        b.sendall(b"PUT /hash HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(b_data))
        b.sendall(b_data)
        time.sleep(0.5)
        a.sendall(a_data[MIB // 2:])
        a_head, a_body = recv_answer(a)
        assert a_head.startswith(b"HTTP/1.1 200"), (a_head, a_body, edge.log()[-2000:])
        assert json.loads(a_body)["sha256"] == hashlib.sha256(a_data).hexdigest()
        b_head, b_body = recv_answer(b)
        assert b_head.startswith(b"HTTP/1.1 200"), (b_head, b_body, edge.log()[-2000:])
        assert json.loads(b_body)["sha256"] == hashlib.sha256(b_data).hexdigest()
        a.close()
        b.close()
    finally:
        edge.stop()
        origin.stop()


def test_an_h2_upload_to_a_slow_origin_arrives_whole_without_a_retry_buffer(tmp_path):
    """retry_buffer_bytes = 0, an HTTP/2 client, an origin reading slowly:
    the edge pauses the stream, the client fills its 1 MiB window meanwhile,
    and on resume that whole window comes at once. It must be relayed, not
    dropped (the origin got a body with a hole, or waited for bytes that
    never came)."""
    origin = UploadOrigin()
    edge = start(tmp_path, "http://127.0.0.1:%d" % origin.port, "retry_buffer_bytes = 0\n")
    try:
        path, want = big_file(tmp_path, 8 * MIB)
        code, body, err = curl("--http2-prior-knowledge", "-X", "PUT", "--data-binary", "@" + path,
                               edge.url + "/slow", timeout=60)
        assert code == 200, (code, body, err, edge.log()[-2000:])
        got = json.loads(body)
        assert got["sha256"] == want and got["bytes"] == 8 * MIB, got
        assert "overflowed" not in edge.log()
    finally:
        edge.stop()
        origin.stop()


def test_an_announced_length_over_the_bound_is_answered_to_a_client_still_sending(tmp_path):
    """A client without Expect: 100-continue announcing more than
    max_upload_bytes and sending on: it gets the 413 (the edge reads and
    drops what it still sends for a while before closing), not a reset."""
    origin = UploadOrigin()
    edge = start(tmp_path, "http://127.0.0.1:%d" % origin.port, "max_upload_bytes = 1048576\n")
    try:
        for attempt in range(3):
            s = socket.create_connection(("127.0.0.1", edge.port), timeout=20)
            s.sendall(b"PUT /hash HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (8 * MIB))

            def send_body():
                try:
                    s.sendall(os.urandom(8 * MIB))
                except OSError:
                    pass
            t = threading.Thread(target=send_body, daemon=True)
            t.start()
            head, body = recv_answer(s)
            assert head.startswith(b"HTTP/1.1 413"), (attempt, head)
            assert json.loads(body)["error"]["code"] == "payload_too_large"
            t.join(10)
            s.close()
        assert origin.seen == []
    finally:
        edge.stop()
        origin.stop()


def test_uploads_beyond_the_memory_budget_are_refused_503_and_the_budget_comes_back(tmp_path):
    """Each streamed upload in progress reserves its buffer's bound (here,
    retry_buffer_bytes = 0: about 1.8 MiB); max_upload_memory_bytes = 4 MiB
    takes two at once: a third, while both are in progress, is answered 503
    overloaded (JSON, Retry-After) without reaching the origin; once the two
    are done, another goes through. Before, nothing bounded what many
    uploads (or one HTTP/2 connection with 100 of them) held together."""
    origin = UploadOrigin()
    edge = start(tmp_path, "http://127.0.0.1:%d" % origin.port,
                 "stream_upload_bytes = 65536\nretry_buffer_bytes = 0\nmax_upload_memory_bytes = 4194304\n")
    data = os.urandom(3 * MIB)

    def begin():
        s = socket.create_connection(("127.0.0.1", edge.port), timeout=20)
        s.sendall(b"PUT /hash HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(data))
        s.sendall(data[:100 * 1024])
        return s

    def finish(s):
        s.sendall(data[100 * 1024:])
        resp = b""
        while b"}" not in resp:
            piece = s.recv(65536)
            if not piece:
                break
            resp += piece
        s.close()
        return resp

    try:
        first, second = begin(), begin()
        time.sleep(0.3)  # both heads in: both reserved
        code, body, err = curl("-X", "PUT", "--data-binary", "@" + big_file(tmp_path, 2 * MIB)[0],
                               "-D", "-", "http://127.0.0.1:%d/hash" % edge.port)
        assert code == 503, (code, body, err)
        assert "retry-after: 1" in body.lower() and '"overloaded"' in body, body
        assert "max_upload_memory_bytes" in body, body
        for s in (first, second):
            resp = finish(s)
            assert resp.startswith(b"HTTP/1.1 200"), resp[:200]
            got = json.loads(resp.split(b"\r\n\r\n", 1)[1])
            assert got["sha256"] == hashlib.sha256(data).hexdigest()
        assert origin.count("/hash") == 2  # the refused one never reached it
        code, body, err = curl("-X", "PUT", "--data-binary", "@" + big_file(tmp_path, 2 * MIB)[0],
                               "http://127.0.0.1:%d/hash" % edge.port)
        assert code == 200, (code, body, err)
    finally:
        edge.stop()
        origin.stop()
