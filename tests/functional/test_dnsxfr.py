"""`tandem dns` zone transfers (issue 11 section 1): AXFR and IXFR only to
the configured secondaries (`secondaries = ADDR key=NAME`; an IXFR gets the whole zone, or the SOA
alone when the secondary is current), over TCP, with
TSIG (RFC 8945, HMAC-SHA256, the secret in the secrets file's [tsig]):
kdig and dig transfer the static zone (routed names as their configured
record sets, an alias as its target's addresses), every message signed
(the clients check the response's TSIG); a request without TSIG, with a
wrong secret, another key, from another address or over UDP is refused
(REFUSED, or NOTAUTH with the TSIG error); Knot DNS (knotd) acts as a
secondary and then answers the zone itself.

Every test here fails on the code before: `secondaries` was an unknown key
and every transfer was REFUSED."""
import base64
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
from unittest import mock

import dns.message
import dns.query
import dns.rcode
import dns.tsig
import dns.tsigkeyring
import pytest

from conftest import TANDEM, drop_dns_sections, free_port_base, run, start_ready

DIG = shutil.which("dig")
KDIG = shutil.which("kdig")
KNOTD = shutil.which("knotd") or (os.path.exists("/usr/sbin/knotd") and "/usr/sbin/knotd")
SECRET = base64.b64encode(b"tandem-tsig-test-secret-32-bytes").decode()
WRONG = base64.b64encode(b"tandem-tsig-test-secret-32-bytez").decode()

ZONE = """
[zone tandem.test]
soa = ns1 hostmaster 2026120301 3600 600 86400 30
ttl = 300
record = @ NS ns1
record = ns1 A 127.0.0.5
record = www CNAME api
record = @ MX 10 mail.example.com.
record = @ TXT "v=spf1 -all"
route = api latency eu=127.0.0.2 us=127.0.0.3,::3 ttl=10
alias = @ api
"""


class XfrDns:
    def __init__(self, tmp_path, secondaries="127.0.0.1 key=xfr1", records=""):
        self.data = str(tmp_path / "d")
        base = free_port_base()
        self.base = base
        run("init", "--address", "127.0.0.1", "--data", self.data, "--port-base", str(base))
        self.config = os.path.join(self.data, "tandem.ini")
        self.port = base + 9
        with open(self.config) as f:
            text = drop_dns_sections(f.read())
        with open(self.config, "w") as f:
            f.write(text + ZONE + records + "\n[dns ns1]\nlisten = 127.0.0.1:%d\nthreads = 2\n"
                    "health_interval_ms = 600000\nsecondaries = %s\n" % (self.port, secondaries))
        with open(os.path.join(self.data, "secrets.ini"), "a") as f:
            f.write("\n[tsig]\nkey.xfr1 = %s\nkey.other = %s\n" % (SECRET, WRONG))
        self.proc = None

    def start(self):
        self.log_path = os.path.join(self.data, "dns.log")
        self.proc = start_ready([TANDEM, "dns", "--config", self.config, "--name", "ns1"], self.log_path, "a")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(10)
        return code

    def log(self):
        with open(self.log_path) as f:
            return f.read()


@pytest.fixture
def server(tmp_path):
    s = XfrDns(tmp_path)
    s.start()
    yield s
    assert s.stop() == 0, s.log()


def xfr_records(out):
    return sorted(" ".join(line.split()) for line in out.splitlines()
                  if line and not line.startswith(";") and "\tTSIG\t" not in line and " TSIG " not in line)


SOA = "tandem.test. 3600 IN SOA ns1.tandem.test. hostmaster.tandem.test. 2026120301 3600 600 86400 30"
EXPECTED = sorted([
    SOA,
    SOA,
    "tandem.test. 300 IN NS ns1.tandem.test.",
    "ns1.tandem.test. 300 IN A 127.0.0.5",
    "www.tandem.test. 300 IN CNAME api.tandem.test.",
    "tandem.test. 300 IN MX 10 mail.example.com.",
    'tandem.test. 300 IN TXT "v=spf1 -all"',
    "api.tandem.test. 10 IN A 127.0.0.2",
    "api.tandem.test. 10 IN A 127.0.0.3",
    "api.tandem.test. 10 IN AAAA ::3",
    "tandem.test. 10 IN A 127.0.0.2",
    "tandem.test. 10 IN A 127.0.0.3",
    "tandem.test. 10 IN AAAA ::3",
])


@pytest.mark.skipif(not KDIG, reason="kdig (knot-dnsutils) not installed")
def test_kdig_and_dig_transfer_with_tsig(server):
    for qtype in ("AXFR", "IXFR=2026120300"):
        p = subprocess.run([KDIG, "@127.0.0.1", "-p", str(server.port), "-y", "hmac-sha256:xfr1:" + SECRET, qtype,
                            "tandem.test"], capture_output=True, text=True, timeout=20)
        assert p.returncode == 0 and ";; ERROR" not in p.stdout + p.stderr, p.stdout + p.stderr
        assert xfr_records(p.stdout) == EXPECTED, p.stdout
        assert "TSIG\thmac-sha256." in p.stdout and "NOERROR" in p.stdout  # the answer is signed
    # an IXFR from a secondary that has our serial (or a newer one): our SOA alone (RFC 1995 2)
    for serial in ("2026120301", "2026120399"):
        p = subprocess.run([KDIG, "@127.0.0.1", "-p", str(server.port), "-y", "hmac-sha256:xfr1:" + SECRET,
                            "IXFR=" + serial, "tandem.test"], capture_output=True, text=True, timeout=20)
        assert ";; ERROR" not in p.stdout + p.stderr, p.stdout + p.stderr
        assert xfr_records(p.stdout) == [SOA], p.stdout
    if DIG:  # dig checks the answer's TSIG: "Transfer failed" / "tsig verify failure" otherwise
        p = subprocess.run([DIG, "@127.0.0.1", "-p", str(server.port), "-y", "hmac-sha256:xfr1:" + SECRET, "AXFR",
                            "tandem.test"], capture_output=True, text=True, timeout=20)
        assert "failed" not in p.stdout and "TSIG" in p.stdout, p.stdout
        assert xfr_records(p.stdout) == EXPECTED, p.stdout
    assert '"event":"dns_xfr"' in server.log() and SECRET not in server.log()


def test_dnspython_verifies_every_message_of_a_large_transfer(tmp_path):
    # 600 TXT records of ~170 bytes: several messages, each signed and
    # chained to the one before (dnspython checks each)
    records = "".join('record = t%d TXT "%s"\n' % (i, "x" * 150) for i in range(600))
    s = XfrDns(tmp_path, records=records)
    s.start()
    try:
        keyring = dns.tsigkeyring.from_text({"xfr1.": ("hmac-sha256", SECRET)})
        q = dns.message.make_query("tandem.test", "AXFR")
        q.use_tsig(keyring, keyname="xfr1.", algorithm=dns.tsig.HMAC_SHA256)
        msgs = list(dns.query.xfr("127.0.0.1", "tandem.test", port=s.port, keyring=keyring, keyname="xfr1.",
                                  keyalgorithm=dns.tsig.HMAC_SHA256, timeout=10))
        assert len(msgs) >= 5
        assert sum(len(rrset) for m in msgs for rrset in m.answer) == len(EXPECTED) + 600
        assert all(m.had_tsig for m in msgs)
    finally:
        assert s.stop() == 0, s.log()


def raw_tcp(server, msg):
    return dns.query.tcp(msg, "127.0.0.1", port=server.port, timeout=5)


def test_unsigned_wrong_and_foreign_requests_refused(server, tmp_path):
    # no TSIG: REFUSED
    r = raw_tcp(server, dns.message.make_query("tandem.test", "AXFR"))
    assert r.rcode() == dns.rcode.REFUSED and not r.answer
    # over UDP, even signed: REFUSED (transfers are TCP only)
    keyring = dns.tsigkeyring.from_text({"xfr1.": ("hmac-sha256", SECRET)})
    q = dns.message.make_query("tandem.test", "AXFR")
    q.use_tsig(keyring, keyname="xfr1.", algorithm=dns.tsig.HMAC_SHA256)
    r = dns.query.udp(q, "127.0.0.1", port=server.port, timeout=5, ignore_trailing=True, ignore_unexpected=True)
    assert r.rcode() == dns.rcode.REFUSED and not r.answer
    # not the zone's apex: REFUSED
    q = dns.message.make_query("www.tandem.test", "AXFR")
    q.use_tsig(keyring, keyname="xfr1.", algorithm=dns.tsig.HMAC_SHA256)
    r = dns.query.tcp(q, "127.0.0.1", port=server.port, timeout=5)
    assert r.rcode() == dns.rcode.REFUSED and not r.answer
    if KDIG:
        def kdig(key, *extra):
            p = subprocess.run([KDIG, "@127.0.0.1", "-p", str(server.port), "-y", key, *extra, "AXFR",
                                "tandem.test"], capture_output=True, text=True, timeout=20)
            return p.stdout + p.stderr
        out = kdig("hmac-sha256:xfr1:" + WRONG)  # a wrong secret: NOTAUTH, BADSIG
        assert "BADSIG" in out and "IN\tSOA" not in out, out
        out = kdig("hmac-sha256:other:" + WRONG)  # a key this address may not use: BADKEY
        assert "BADKEY" in out and "IN\tSOA" not in out, out
        out = kdig("hmac-sha512:xfr1:" + SECRET)  # another algorithm: BADKEY
        assert "BADKEY" in out and "IN\tSOA" not in out, out
    # a request signed 10 minutes ago (past the 300 s fudge): NOTAUTH,
    # BADTIME, signed (dnspython checks the answer's MAC, then raises)
    q = dns.message.make_query("tandem.test", "AXFR")
    q.use_tsig(keyring, keyname="xfr1.", algorithm=dns.tsig.HMAC_SHA256)
    with mock.patch("time.time", return_value=time.time() - 600):
        wire = q.to_wire()
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    s.sendall(struct.pack(">H", len(wire)) + wire)
    n = struct.unpack(">H", s.recv(2, socket.MSG_WAITALL))[0]
    data = s.recv(n, socket.MSG_WAITALL)
    s.close()
    with pytest.raises(dns.tsig.PeerBadTime):
        dns.message.from_wire(data, keyring=keyring, request_mac=q.mac)
    log = server.log()
    for reason in ("the request has no TSIG", "does not verify (BADSIG)", "TSIG BADKEY", "BADTIME"):
        assert reason in log, (reason, log)


def test_other_addresses_refused_and_bad_config(tmp_path):
    s = XfrDns(tmp_path, secondaries="127.0.0.9 key=xfr1")  # not 127.0.0.1
    s.start()
    try:
        keyring = dns.tsigkeyring.from_text({"xfr1.": ("hmac-sha256", SECRET)})
        q = dns.message.make_query("tandem.test", "AXFR")
        q.use_tsig(keyring, keyname="xfr1.", algorithm=dns.tsig.HMAC_SHA256)
        r = raw_tcp(s, q)
        assert r.rcode() == dns.rcode.REFUSED and not r.answer
        # a stranger's refusal is not logged (at debug level only): no one can fill the log
        assert "not a configured secondary" not in s.log()
    finally:
        assert s.stop() == 0, s.log()
    for bad, message in (("127.0.0.1", "each secondary is ADDR[/LEN] key=NAME"),
                         ("127.0.0.300 key=x", "is not an IPv4 or IPv6 address"),
                         ("10.0.0.0/33 key=x", "is not a prefix length of 0 to 32")):
        s2 = XfrDns(tmp_path / bad.replace("/", "_"), secondaries=bad)
        p = subprocess.run([TANDEM, "config", "check", s2.config], capture_output=True, text=True, timeout=20)
        assert p.returncode != 0 and message in p.stderr and "tandem.ini:" in p.stderr, p.stderr
    # a key the secrets file does not have: the server does not start
    s3 = XfrDns(tmp_path / "nokey", secondaries="127.0.0.1 key=nosuch")
    p = subprocess.run([TANDEM, "dns", "--config", s3.config, "--name", "ns1"], capture_output=True, text=True,
                       timeout=20)
    assert p.returncode != 0 and "no [tsig] key.nosuch" in p.stderr, p.stderr


@pytest.mark.skipif(not KNOTD, reason="knotd (knot) not installed")
def test_knot_is_a_secondary(server, tmp_path):
    kdir = tmp_path / "knot"
    kdir.mkdir()
    kport = server.base + 13
    conf = kdir / "knot.conf"
    conf.write_text("""server:
    rundir: "%(d)s"
    listen: 127.0.0.1@%(kport)d
database:
    storage: "%(d)s"
log:
  - target: stderr
    any: info
key:
  - id: xfr1
    algorithm: hmac-sha256
    secret: %(secret)s
remote:
  - id: tandem
    address: 127.0.0.1@%(port)d
    key: xfr1
template:
  - id: default
    storage: "%(d)s"
zone:
  - domain: tandem.test
    master: tandem
""" % {"d": kdir, "kport": kport, "port": server.port, "secret": SECRET})
    knot = subprocess.Popen([KNOTD, "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 10
        answer = None
        while time.time() < deadline:
            try:
                r = dns.query.udp(dns.message.make_query("api.tandem.test", "A"), "127.0.0.1", port=kport, timeout=1)
                if r.rcode() == dns.rcode.NOERROR and r.answer:
                    answer = r
                    break
            except Exception:
                pass
            time.sleep(0.2)
        assert answer is not None, "knot did not load the zone"
        assert sorted(x.address for x in answer.answer[0]) == ["127.0.0.2", "127.0.0.3"]
        r = dns.query.udp(dns.message.make_query("tandem.test", "SOA"), "127.0.0.1", port=kport, timeout=2)
        assert r.answer[0][0].serial == 2026120301
    finally:
        knot.send_signal(signal.SIGTERM)
        out = knot.communicate(timeout=10)[0]
    assert '"event":"dns_xfr"' in server.log(), out
