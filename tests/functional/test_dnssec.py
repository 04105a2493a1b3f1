"""`tandem dns` DNSSEC (issue 11 section 4): online signing with the
zone's ECDSA P-256 key from the secrets file, validated by real validators
against the zone's trust anchor (the DS `tandem dns ds` prints): BIND's
`delv`, Knot's `kdig +dnssec`, and dnspython's dns.dnssec.validate over
every RRset of the answer. Covered: a static A, a latency-routed A chosen
by the query's Client Subnet (signed as answered), NXDOMAIN as a compact
NSEC answer (NOERROR, NXNAME, no zone walking), NODATA, the DNSKEY RRset,
truncation with DO=1 and the TCP retry, a key rollover (pre-publish, then
double signature, then the old key removed) validated across the change,
and the config refusals (a delegation in a signed zone; no key).

Every test here fails on the code before DNSSEC: `dnssec = on` was an
unknown key (the config was refused) and no answer carried an RRSIG."""
import os
import re
import shutil
import signal
import subprocess

import dns.dnssec
import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from conftest import TANDEM, drop_dns_sections, free_port_base, run, start_ready

DELV = shutil.which("delv")
KDIG = shutil.which("kdig")
ZONE_NAME = dns.name.from_text("tandem.test.")

ZONE = """
[zone tandem.test]
soa = ns1 hostmaster 2026120301 3600 600 86400 30
ttl = 300
dnssec = on
record = @ NS ns1
record = ns1 A 127.0.0.5
record = www 60 A 127.0.0.20
record = www 60 A 127.0.0.21
record = www MX 10 Mail.Example.COM.
record = alias CNAME www
record = *.wild 60 A 127.0.0.9
record = a.b.ent A 127.0.0.10
route = api latency eu=127.0.0.2 us=127.0.0.3,::3 ttl=10
"""


class SignedDns:
    def __init__(self, tmp_path):
        self.data = str(tmp_path / "d")
        base = free_port_base()
        run("init", "--address", "127.0.0.1", "--data", self.data, "--port-base", str(base))
        self.config = os.path.join(self.data, "tandem.ini")
        self.secrets = os.path.join(self.data, "secrets.ini")
        self.port = base + 9
        big = "".join('record = big TXT "%s"\n' % (chr(97 + i % 26) * 150) for i in range(12))
        with open(self.config) as f:
            text = drop_dns_sections(f.read())
        with open(self.config, "w") as f:
            # health checks every 10 minutes: the regions (not started
            # here) stay healthy for the test, so the latency map decides
            f.write(text + ZONE + big + "\n[dns ns1]\nlisten = 127.0.0.1:%d\nthreads = 2\n"
                    "latency_map = 10.1.0.0/16 eu us, 10.2.0.0/16 us eu, default eu us\n"
                    "health_interval_ms = 600000\nhealth_timeout_ms = 1000\n" % self.port)
        self.proc = None

    def start(self):
        self.log_path = os.path.join(self.data, "dns.log")
        self.proc = start_ready([TANDEM, "dns", "--config", self.config, "--name", "ns1"], self.log_path, "a")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(10)
        return code

    def restart(self):
        assert self.stop() == 0
        self.start()

    def ds(self):
        """The DS records `tandem dns ds` prints: [(tag, digest)]."""
        out = run("dns", "ds", "--config", self.config, "--zone", "tandem.test").stdout
        return re.findall(r"\tDS\t(\d+) 13 2 ([0-9A-F]{64})", out)

    def anchor(self, tmp_path, ds, name="anchor.conf"):
        path = tmp_path / name
        path.write_text("trust-anchors {\n%s};\n" % "".join(
            '  "tandem.test." static-ds %s 13 2 "%s";\n' % (tag, digest) for tag, digest in ds))
        return str(path)

    def ask(self, name, rdtype, tcp=False, payload=1232, options=None):
        q = dns.message.make_query(name, rdtype, want_dnssec=True, payload=payload, options=options or [])
        if tcp:
            return dns.query.tcp(q, "127.0.0.1", port=self.port, timeout=5)
        return dns.query.udp(q, "127.0.0.1", port=self.port, timeout=5, ignore_trailing=True)

    def dnskey(self):
        r = self.ask("tandem.test", "DNSKEY")
        return r.find_rrset(r.answer, ZONE_NAME, dns.rdataclass.IN, dns.rdatatype.DNSKEY)


@pytest.fixture
def server(tmp_path):
    s = SignedDns(tmp_path)
    s.start()
    yield s
    assert s.stop() == 0, open(s.log_path).read()


def validate_all(msg, keys):
    """Every RRset of the answer and authority sections has an RRSIG that
    dnspython validates with keys; returns the RRsets validated."""
    done = []
    for section in (msg.answer, msg.authority):
        sigs = {(r.name, r.covers): r for r in section if r.rdtype == dns.rdatatype.RRSIG}
        for rrset in section:
            if rrset.rdtype == dns.rdatatype.RRSIG:
                continue
            sig = sigs.get((rrset.name, rrset.rdtype))
            assert sig is not None, "no RRSIG over %s" % rrset
            dns.dnssec.validate(rrset, sig, {ZONE_NAME: keys})  # raises ValidationFailure
            done.append(rrset)
    return done


def delv(server, anchor, name, rdtype):
    p = subprocess.run([DELV, "@127.0.0.1", "-p", str(server.port), "-a", anchor, "+root=tandem.test",
                        name, rdtype], capture_output=True, text=True, timeout=30)
    return p.stdout + p.stderr


@pytest.mark.skipif(not DELV, reason="delv (bind9-dnsutils) not installed")
def test_delv_validates_static_routed_negative_and_dnskey(server, tmp_path):
    ds = server.ds()
    assert len(ds) == 1  # `tandem init` made one key for the signed zone
    anchor = server.anchor(tmp_path, ds)
    out = delv(server, anchor, "www.tandem.test", "A")
    assert "; fully validated" in out and "127.0.0.21" in out, out
    out = delv(server, anchor, "api.tandem.test", "A")  # routed: the resolver (127.0.0.1) gets eu
    assert "; fully validated" in out and "127.0.0.2" in out, out
    out = delv(server, anchor, "alias.tandem.test", "A")  # a CNAME, then its target
    assert "; fully validated" in out and "127.0.0.20" in out, out
    out = delv(server, anchor, "x.wild.tandem.test", "A")  # a wildcard, signed as the name asked
    assert "; fully validated" in out and "127.0.0.9" in out, out
    out = delv(server, anchor, "nope.tandem.test", "A")
    assert "; negative response, fully validated" in out and "TYPE128" in out, out
    out = delv(server, anchor, "www.tandem.test", "TXT")
    assert "; negative response, fully validated" in out, out
    out = delv(server, anchor, "tandem.test", "DNSKEY")
    assert "; fully validated" in out and "DNSKEY\t257 3 13" in out, out
    # a wrong anchor does not validate (the check can fail)
    bad = server.anchor(tmp_path, [(ds[0][0], "00" * 32)], "bad.conf")
    out = delv(server, bad, "www.tandem.test", "A")
    assert "fully validated" not in out, out


def test_dnspython_validates_routed_ecs_and_compact_denial(server):
    keys = server.dnskey()
    assert len(keys) == 1 and keys[0].algorithm == 13 and keys[0].flags == 257
    # the routed A by the Client Subnet, signed as answered (each region's set)
    for subnet, want in (("10.1.7.0", "127.0.0.2"), ("10.2.7.0", "127.0.0.3"), ("10.1.8.0", "127.0.0.2")):
        r = server.ask("api.tandem.test", "A", options=[dns.edns.ECSOption(subnet, 24)])
        assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
        assert [rr.address for rr in r.answer[0]] == [want] or [rr.address for rr in r.find_rrset(
            r.answer, dns.name.from_text("api.tandem.test."), dns.rdataclass.IN, dns.rdatatype.A)] == [want]
        assert len(validate_all(r, keys)) == 1
        ecs = [o for o in r.options if isinstance(o, dns.edns.ECSOption)]
        assert ecs and ecs[0].scopelen == 16  # the matched prefix
    r = server.ask("api.tandem.test", "AAAA", options=[dns.edns.ECSOption("10.2.7.0", 24)])
    assert [rr.address for rr in r.answer[0] if rr.rdtype == dns.rdatatype.AAAA] == ["::3"]
    validate_all(r, keys)
    # static sets: two A (sorted for signing), an MX with a mixed-case name
    for name, rdtype in (("WWW.tandem.test", "A"), ("www.tandem.test", "MX"), ("alias.tandem.test", "A"),
                         ("tandem.test", "SOA"), ("tandem.test", "NS"), ("y.wild.tandem.test", "A")):
        r = server.ask(name, rdtype)
        assert r.rcode() == dns.rcode.NOERROR and len(r.answer) >= 1, r
        validate_all(r, keys)
    # NXDOMAIN: compact (NOERROR, one NSEC at the name with NXNAME)
    r = server.ask("no.such.tandem.test", "A")
    assert r.rcode() == dns.rcode.NOERROR and not r.answer
    rrsets = validate_all(r, keys)
    nsec = [x for x in rrsets if x.rdtype == dns.rdatatype.NSEC]
    assert len(nsec) == 1 and nsec[0].name == dns.name.from_text("no.such.tandem.test.")
    text = nsec[0][0].to_text()
    assert text == "\\000.no.such.tandem.test. RRSIG NSEC TYPE128", text  # covers only itself: no walking
    # NODATA: the NSEC lists what is there, not what was asked
    r = server.ask("www.tandem.test", "TXT")
    nsec = [x for x in validate_all(r, keys) if x.rdtype == dns.rdatatype.NSEC]
    assert nsec[0][0].to_text() == "\\000.www.tandem.test. A MX RRSIG NSEC", nsec[0][0].to_text()
    r = server.ask("api.tandem.test", "MX")  # a routed name: A and AAAA (its regions have both)
    nsec = [x for x in validate_all(r, keys) if x.rdtype == dns.rdatatype.NSEC]
    assert nsec[0][0].to_text() == "\\000.api.tandem.test. A AAAA RRSIG NSEC", nsec[0][0].to_text()
    r = server.ask("tandem.test", "TXT")
    nsec = [x for x in validate_all(r, keys) if x.rdtype == dns.rdatatype.NSEC]
    assert "DNSKEY" in nsec[0][0].to_text() and "SOA" in nsec[0][0].to_text()
    r = server.ask("b.ent.tandem.test", "A")  # an empty non-terminal
    nsec = [x for x in validate_all(r, keys) if x.rdtype == dns.rdatatype.NSEC]
    assert nsec[0][0].to_text() == "\\000.b.ent.tandem.test. RRSIG NSEC"
    # without DO: unsigned, and NXDOMAIN stays NXDOMAIN
    q = dns.message.make_query("no.such.tandem.test", "A", use_edns=0)
    r = dns.query.udp(q, "127.0.0.1", port=server.port, timeout=5)
    assert r.rcode() == dns.rcode.NXDOMAIN
    assert not any(x.rdtype in (dns.rdatatype.RRSIG, dns.rdatatype.NSEC) for x in r.authority)


@pytest.mark.skipif(not KDIG, reason="kdig (knot-dnsutils) not installed")
def test_kdig_truncation_and_tcp_retry_with_do(server):
    keys = server.dnskey()
    # 12 TXT strings of 150 bytes and an RRSIG: over 1232 bytes
    p = subprocess.run([KDIG, "@127.0.0.1", "-p", str(server.port), "+dnssec", "+notcp", "+bufsize=1232",
                        "+ignore", "big.tandem.test", "TXT"], capture_output=True, text=True, timeout=20)
    assert re.search(r"Flags: [^;]*\btc\b", p.stdout) and "UDP" in p.stdout, p.stdout
    p = subprocess.run([KDIG, "@127.0.0.1", "-p", str(server.port), "+dnssec", "+bufsize=1232",
                        "big.tandem.test", "TXT"], capture_output=True, text=True, timeout=20)
    assert "TCP" in p.stdout and "RRSIG\tTXT 13 3 300" in p.stdout, p.stdout  # kdig retried over TCP
    r = server.ask("big.tandem.test", "TXT", tcp=True)
    assert len(r.answer[0]) == 12 and not r.flags & dns.flags.TC
    validate_all(r, keys)
    # a small answer fits in 512 bytes with its RRSIG, without TC
    r = server.ask("www.tandem.test", "A", payload=512)
    assert not r.flags & dns.flags.TC
    validate_all(r, keys)
    # kdig's own check of the answer's signatures
    p = subprocess.run([KDIG, "@127.0.0.1", "-p", str(server.port), "+dnssec", "+multiline",
                        "api.tandem.test", "A"], capture_output=True, text=True, timeout=20)
    assert "RRSIG" in p.stdout and "127.0.0.2" in p.stdout, p.stdout


@pytest.mark.skipif(not DELV, reason="delv (bind9-dnsutils) not installed")
def test_rollover_prepublish_double_signature_then_removal(server, tmp_path):
    old = server.ds()
    old_anchor = server.anchor(tmp_path, old, "old.conf")
    # 1. pre-publish the new key: in the DNSKEY RRset, not signing
    run("dns", "key", "--config", server.config, "--zone", "tandem.test", "--publish")
    server.restart()
    both = server.ds()
    assert len(both) == 2
    new = [d for d in both if d not in old]
    new_anchor = server.anchor(tmp_path, new, "new.conf")
    keys = server.dnskey()
    assert len(keys) == 2
    r = server.ask("www.tandem.test", "A")
    assert len([x for x in r.answer if x.rdtype == dns.rdatatype.RRSIG][0]) == 1
    assert "; fully validated" in delv(server, old_anchor, "www.tandem.test", "A")
    # 2. the new key signs too (double signature): both anchors validate,
    # so the DS can change at the parent at any time
    with open(server.secrets) as f:
        text = f.read()
    with open(server.secrets, "w") as f:
        f.write(text.replace(" publish ", " active "))
    server.restart()
    r = server.ask("www.tandem.test", "A")
    assert len([x for x in r.answer if x.rdtype == dns.rdatatype.RRSIG][0]) == 2
    validate_all(r, server.dnskey())
    for anchor in (old_anchor, new_anchor):
        for name, rdtype in (("www.tandem.test", "A"), ("api.tandem.test", "A"), ("nope.tandem.test", "A")):
            assert "fully validated" in delv(server, anchor, name, rdtype), (anchor, name)
    # 3. the old key removed (after the parent's DS TTL): the new anchor
    # validates, the old one no longer does
    with open(server.secrets) as f:
        lines = f.read().splitlines(keepends=True)
    with open(server.secrets, "w") as f:
        f.write("".join(l for l in lines if not l.startswith("key.k1 = tandem.test")))
    server.restart()
    assert len(server.dnskey()) == 1
    assert "; fully validated" in delv(server, new_anchor, "www.tandem.test", "A")
    assert "; negative response, fully validated" in delv(server, new_anchor, "nope.tandem.test", "A")
    assert "fully validated" not in delv(server, old_anchor, "www.tandem.test", "A")


def test_config_refusals(tmp_path):
    s = SignedDns(tmp_path)
    with open(s.config, "a") as f:
        pass
    text = open(s.config).read()
    lines = text.splitlines()
    line = lines.index("dnssec = on") + 1
    with open(s.config, "w") as f:
        f.write(text.replace("record = @ NS ns1\n", "record = @ NS ns1\nrecord = sub NS ns.other.example.\n"))
    p = subprocess.run([TANDEM, "config", "check", s.config], capture_output=True, text=True, timeout=20)
    assert p.returncode == 1 and "%s:%d:" % (s.config, line) in p.stdout + p.stderr, p.stdout + p.stderr
    assert "delegations below the apex cannot be signed" in p.stdout + p.stderr
    # no key for the zone: `tandem dns` says so and how to add one
    with open(s.config, "w") as f:
        f.write(text)
    with open(s.secrets) as f:
        secrets = f.read()
    with open(s.secrets, "w") as f:
        f.write("".join(l for l in secrets.splitlines(keepends=True) if not l.startswith("key.k1 = tandem.test")))
    p = subprocess.run([TANDEM, "dns", "--config", s.config, "--name", "ns1"], capture_output=True, text=True,
                       timeout=20)
    assert p.returncode == 1 and "no active key for tandem.test." in p.stderr, p.stderr
    assert "tandem dns key" in p.stderr
    p = subprocess.run([TANDEM, "config", "check", s.config], capture_output=True, text=True, timeout=20)
    assert p.returncode == 1 and "no active key for tandem.test." in p.stdout + p.stderr, p.stdout + p.stderr
    # `tandem dns key` adds one; the check passes again
    run("dns", "key", "--config", s.config, "--zone", "tandem.test")
    p = subprocess.run([TANDEM, "config", "check", s.config], capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, p.stdout + p.stderr
    # a bad value
    with open(s.config, "w") as f:
        f.write(text.replace("dnssec = on", "dnssec = yes"))
    p = subprocess.run([TANDEM, "config", "check", s.config], capture_output=True, text=True, timeout=20)
    assert p.returncode == 1 and "%s:%d: dnssec must be on or off" % (s.config, line) in p.stdout + p.stderr
