"""`tandem dns` (issue 11, first part): the authoritative server for the
zones of the deployment's config, asked with real clients (dig, kdig and
dnspython) over UDP and TCP. Each test pins behaviour a resolver relies on:
authoritative answers with the question's case, NXDOMAIN vs NODATA with the
SOA at the negative TTL, CNAME chains, wildcards, REFUSED outside the zone
and for transfers, truncation and the TCP retry, pipelined TCP, Client
Subnet echoed with scope 0, malformed packets answered FORMERR (or dropped)
while the server keeps answering, config errors with FILE:LINE, a clean
stop."""
import os
import shutil
import signal
import socket
import struct
import subprocess
import time

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from conftest import TANDEM, drop_dns_sections, free_port_base, run, start_ready

DIG = shutil.which("dig")
KDIG = shutil.which("kdig")

ZONE = """
[zone tandem.test]
soa = ns1 hostmaster 2026120301 3600 600 86400 30
ttl = 300
record = @ NS ns1
record = ns1 A 127.0.0.5
record = api 10 A 127.0.0.2
record = api 10 AAAA ::1
record = www CNAME api
record = ext CNAME app.example.com.
record = *.wild 60 A 127.0.0.9
record = a.b.ent A 127.0.0.10
record = @ MX 10 mail.example.com.
record = @ TXT "v=spf1 -all"
"""


class Dns:
    def __init__(self, tmp_path, extra="", server_extra=""):
        self.data = str(tmp_path / "d")
        base = free_port_base()
        run("init", "--address", "127.0.0.1", "--data", self.data, "--port-base", str(base))
        self.config = os.path.join(self.data, "tandem.ini")
        self.port = base + 9
        big = "".join('record = big TXT "%s"\n' % (chr(97 + i % 26) * 150) for i in range(20))
        with open(self.config) as f:
            text = drop_dns_sections(f.read())
        with open(self.config, "w") as f:
            f.write(text + ZONE + big + extra + "\n[dns ns1]\nlisten = 127.0.0.1:%d\nthreads = 2\n" % self.port
                    + server_extra)
        self.proc = None

    def start(self):
        self.log_path = os.path.join(self.data, "dns.log")
        self.proc = start_ready([TANDEM, "dns", "--config", self.config, "--name", "ns1"], self.log_path, "w")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(10)
        return code

    def udp(self, name, rdtype, **kw):
        q = dns.message.make_query(name, rdtype, **kw)
        return dns.query.udp(q, "127.0.0.1", port=self.port, timeout=5, ignore_trailing=True)

    def tcp(self, name, rdtype, **kw):
        q = dns.message.make_query(name, rdtype, **kw)
        return dns.query.tcp(q, "127.0.0.1", port=self.port, timeout=5)


@pytest.fixture
def server(tmp_path):
    s = Dns(tmp_path)
    s.start()
    yield s
    assert s.stop() == 0, open(s.log_path).read()


def dig(server, *args):
    p = subprocess.run([DIG, "@127.0.0.1", "-p", str(server.port), "+time=3", "+tries=1", *args],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, p.stderr + p.stdout
    return p.stdout


def test_authoritative_answers_with_dig(server):
    out = dig(server, "+norec", "API.tandem.test", "A")
    assert "status: NOERROR" in out and " aa" in out.split("flags:")[1].split(";")[0], out
    assert "API.tandem.test.\t10\tIN\tA\t127.0.0.2" in out, out  # the question's case, its TTL
    assert dig(server, "+short", "api.tandem.test", "AAAA").strip() == "::1"
    assert dig(server, "+short", "www.tandem.test", "A").split() == ["api.tandem.test.", "127.0.0.2"]
    assert dig(server, "+short", "ext.tandem.test", "A").split() == ["app.example.com."]
    assert dig(server, "+short", "x.wild.tandem.test").strip() == "127.0.0.9"
    assert dig(server, "+short", "tandem.test", "MX").strip() == "10 mail.example.com."
    assert dig(server, "+short", "tandem.test", "TXT").strip() == '"v=spf1 -all"'
    p = subprocess.run([TANDEM, "dns", "--config", server.config, "--name", "nosuch"], capture_output=True,
                       text=True, timeout=20)
    assert p.returncode == 1 and "no [dns nosuch] section" in p.stderr, p.stderr


def test_nxdomain_nodata_and_refused(server):
    r = server.udp("nothere.tandem.test", "A")
    assert r.rcode() == dns.rcode.NXDOMAIN and r.flags & dns.flags.AA
    assert not r.answer and r.authority[0].rdtype == dns.rdatatype.SOA
    assert r.authority[0].ttl == 30  # min(SOA TTL, minimum): RFC 2308
    for name, t in (("api.tandem.test", "TXT"), ("b.ent.tandem.test", "A")):  # NODATA, incl. an empty non-terminal
        r = server.udp(name, t)
        assert r.rcode() == dns.rcode.NOERROR and not r.answer, (name, r)
        assert r.authority[0].rdtype == dns.rdatatype.SOA
    r = server.udp("example.org", "A")
    assert r.rcode() == dns.rcode.REFUSED and not r.flags & dns.flags.AA
    # a zone transfer without TSIG from an address that is no secondary: refused
    r = server.tcp("tandem.test", "AXFR")
    assert r.rcode() == dns.rcode.REFUSED


def test_truncation_then_tcp(server):
    # 20 TXT records of 150 bytes: over 512 without EDNS -> TC; dig retries
    # over TCP by itself and gets all of them
    r = server.udp("big.tandem.test", "TXT")
    assert r.flags & dns.flags.TC and len(r.answer[0] if r.answer else []) < 20
    r = server.tcp("big.tandem.test", "TXT")
    assert not r.flags & dns.flags.TC and len(r.answer[0]) == 20
    out = dig(server, "big.tandem.test", "TXT")
    assert out.count("\tIN\tTXT\t") == 20, out
    # with EDNS 1232 the answer is cut at 1232 bytes, TC and the OPT kept
    r = server.udp("big.tandem.test", "TXT", use_edns=0, payload=1232)
    assert r.flags & dns.flags.TC and r.edns == 0


def test_pipelined_tcp_queries(server):
    qs = [dns.message.make_query(n, "A") for n in ("api.tandem.test", "www.tandem.test", "nope.tandem.test")]
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    s.sendall(b"".join(struct.pack(">H", len(w)) + w for w in (q.to_wire() for q in qs)))
    got = []
    buf = b""
    while len(got) < 3:
        chunk = s.recv(65536)
        assert chunk, "connection closed early"
        buf += chunk
        while len(buf) >= 2 and len(buf) >= 2 + struct.unpack(">H", buf[:2])[0]:
            n = struct.unpack(">H", buf[:2])[0]
            got.append(dns.message.from_wire(buf[2:2 + n]))
            buf = buf[2 + n:]
    s.close()
    assert [m.id for m in got] == [q.id for q in qs]
    assert [m.rcode() for m in got] == [dns.rcode.NOERROR, dns.rcode.NOERROR, dns.rcode.NXDOMAIN]


def test_client_subnet_echoed_with_scope_zero(server):
    ecs = dns.edns.ECSOption("10.1.2.0", 24)
    r = server.udp("api.tandem.test", "A", use_edns=0, options=[ecs])
    opts = [o for o in r.options if isinstance(o, dns.edns.ECSOption)]
    assert len(opts) == 1 and opts[0].address == "10.1.2.0" and opts[0].srclen == 24 and opts[0].scopelen == 0
    if KDIG:
        out = subprocess.run([KDIG, "@127.0.0.1", "-p", str(server.port), "+subnet=10.1.2.0/24",
                              "api.tandem.test", "A"], capture_output=True, text=True, timeout=20).stdout
        assert "CLIENT-SUBNET: 10.1.2.0/24/0" in out, out


def test_malformed_packets_do_not_stop_it(server):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1)
    good = dns.message.make_query("api.tandem.test", "A").to_wire()
    bad = [
        b"\x00",                                                   # shorter than a header: no answer
        good[:12] + b"\xc0\x0c\x00\x01\x00\x01",                   # a pointer to itself
        good[:12] + b"\x3f" + b"a" * 10,                           # a label running past the end
        good[:12] + b"\x40abc\x00\x00\x01\x00\x01",                # label type 01
        good[:2] + b"\x81\x00" + good[4:],                         # a response: never answered
        good[:2] + b"\x10\x00" + good[4:],                         # opcode 2: NOTIMP
        os.urandom(300),
    ]
    answered = {}
    for i, pkt in enumerate(bad):
        s.sendto(pkt, ("127.0.0.1", server.port))
        try:
            data, _ = s.recvfrom(4096)
            answered[i] = data[3] & 0xF
        except socket.timeout:
            pass
    assert 0 not in answered and 4 not in answered, answered
    assert answered.get(1) == dns.rcode.FORMERR and answered.get(2) == dns.rcode.FORMERR
    assert answered.get(3) == dns.rcode.FORMERR and answered.get(5) == dns.rcode.NOTIMP
    # a garbage TCP length prefix and a half message: the connection is
    # closed or answered, never the server
    t = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    t.sendall(b"\x00\x05\xff\xff\xff\xff\xff")
    t.close()
    r = server.udp("api.tandem.test", "A")
    assert r.rcode() == dns.rcode.NOERROR and r.answer


def test_config_errors_name_file_and_line(tmp_path):
    s = Dns(tmp_path, extra="\n[zone bad.test]\nrecord = www A 999.1.1.1\n")
    p = run("config", "check", s.config, check=False)
    assert p.returncode == 1
    lines = [l for l in p.stderr.splitlines() if l]
    assert any(l.startswith(s.config + ":") and "999.1.1.1" in l and "IPv4" in l for l in lines), p.stderr
    assert any("[zone bad.test] needs soa" in l for l in lines), p.stderr
    p = subprocess.run([TANDEM, "dns", "--config", s.config, "--name", "ns1"], capture_output=True, text=True,
                       timeout=20)
    assert p.returncode == 1 and "999.1.1.1" in p.stderr


def test_response_rate_limiting(tmp_path):
    """Amplification: over rrl_rate answers/s per source /24, UDP answers
    are dropped, every rrl_slip-th sent truncated (TC, no records) so a real
    client retries over TCP; TCP is never limited."""
    s = Dns(tmp_path, server_extra="threads = 1\nrrl_rate = 5\nrrl_slip = 2\n")
    s.start()
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(0.5)
        q = dns.message.make_query("api.tandem.test", "A")
        wire = q.to_wire()
        for _ in range(40):
            sock.sendto(wire, ("127.0.0.1", s.port))
        full = slipped = 0
        while True:
            try:
                data, _ = sock.recvfrom(4096)
            except socket.timeout:
                break
            m = dns.message.from_wire(data)
            if m.flags & dns.flags.TC:
                assert not m.answer
                slipped += 1
            else:
                assert m.answer
                full += 1
        assert full == 5, (full, slipped)          # the burst: one second's worth
        assert 15 <= slipped <= 18, (full, slipped)  # half of the ~35 limited (a refill may add one)
        r = s.tcp("api.tandem.test", "A")         # TCP: not limited
        assert r.answer
    finally:
        assert s.stop() == 0


def cookie_of(msg):
    for o in msg.options:
        if o.otype == 10:
            return o.data if hasattr(o, "data") else o.to_wire()
    return None


def test_server_cookies_and_rrl_exemption(tmp_path):
    """RFC 7873/9018: a query with a client cookie gets it back with a
    server cookie; sent back, dig calls it good; and a client proving its
    address that way is not rate-limited (rrl_rate 1 here), while the same
    burst without the cookie is."""
    s = Dns(tmp_path, server_extra="threads = 1\nrrl_rate = 1\nrrl_slip = 0\n")
    s.start()
    try:
        cc = os.urandom(8)
        q = dns.message.make_query("api.tandem.test", "A", use_edns=0,
                                   options=[dns.edns.GenericOption(10, cc)])
        r = dns.query.udp(q, "127.0.0.1", port=s.port, timeout=5)
        c = cookie_of(r)
        assert c is not None and len(c) == 24 and c[:8] == cc and c[8] == 1, c  # RFC 9018 version 1
        good = dns.edns.GenericOption(10, c)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(0.5)
        for opts, expect in (([good], 30), ([dns.edns.GenericOption(10, cc)], 0)):
            for _ in range(30):
                sock.sendto(dns.message.make_query("api.tandem.test", "A", use_edns=0, options=opts).to_wire(),
                            ("127.0.0.1", s.port))
            got = 0
            while True:
                try:
                    sock.recvfrom(4096)
                    got += 1
                except socket.timeout:
                    break
            if expect:
                assert got == expect, got      # a valid server cookie: never limited
            else:
                assert got <= 2, got           # the bucket is spent: dropped (slip 0)
        if DIG:
            out = subprocess.run([DIG, "@127.0.0.1", "-p", str(s.port), "+tcp", "+cookie=" + c.hex(),
                                  "api.tandem.test"], capture_output=True, text=True, timeout=20).stdout
            assert "(good)" in out, out
    finally:
        assert s.stop() == 0


def test_tcp_client_that_never_reads_holds_bounded_memory(server):
    """A TCP client pipelining up to 30 MB of queries and never reading its
    answers: the server stops reading that connection once 256 KiB of
    answers wait, so the client's sends block (the kernel's buffers fill)
    long before 30 MB, the server's memory stays bounded, and it goes on
    answering everyone else over UDP and TCP. (Unbounded, it would read
    everything and hold some 45 MB of answers.)"""
    def rss_kb():
        with open("/proc/%d/status" % server.proc.pid) as f:
            return int(next(l for l in f if l.startswith("VmRSS:")).split()[1])
    before = rss_kb()
    wire = dns.message.make_query("api.tandem.test", "A").to_wire()
    framed = struct.pack(">H", len(wire)) + wire
    hog = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    hog.setblocking(False)
    sent, limit = 0, 30 * 1024 * 1024
    deadline, progress = time.time() + 10, time.time()
    while sent < limit and time.time() < deadline and time.time() - progress < 1:
        try:
            sent += hog.send(framed * 100)
            progress = time.time()
        except BlockingIOError:
            time.sleep(0.01)  # the server stopped reading us: what is pinned
    time.sleep(0.5)
    assert sent < limit, "the server read every query of a client that reads nothing"
    assert rss_kb() - before < 16 * 1024, (before, rss_kb())
    assert server.udp("api.tandem.test", "A").answer
    assert server.tcp("www.tandem.test", "A").answer
    hog.close()
