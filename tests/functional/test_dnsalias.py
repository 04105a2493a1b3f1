"""`tandem dns` apex alias (issue 11 section 1, as Route 53's alias
records): `alias = @ api` (or `record = @ ALIAS api`) makes the zone's apex
answer A and AAAA with the target's addresses: a routed target's current
answer with its ECS scope, a static target's records; never a CNAME at the
apex; signed like the rest (delv validates it); NODATA and the other types
at the apex unchanged; bad aliases refused with FILE:LINE.

Every test here fails on the code before: `alias` was an unknown key and
ALIAS an unknown record type (the config was refused)."""
import os
import re
import shutil
import signal
import subprocess

import dns.dnssec
import dns.edns
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest

from conftest import TANDEM, drop_dns_sections, free_port_base, run, start_ready

DIG = shutil.which("dig")
DELV = shutil.which("delv")
ZONE_NAME = dns.name.from_text("tandem.test.")

ZONE = """
[zone tandem.test]
soa = ns1 hostmaster 2026120301 3600 600 86400 30
ttl = 300
%(dnssec)s
record = @ NS ns1
record = @ MX 10 mail.example.com.
record = ns1 A 127.0.0.5
alias = @ api
route = api latency eu=127.0.0.2,::2 us=127.0.0.3,::3 ttl=10
record = www 60 A 127.0.0.20
record = www 60 A 127.0.0.21
record = static ALIAS www
record = chain ALIAS cn
record = cn CNAME www
"""


class AliasDns:
    def __init__(self, tmp_path, signed=False, zone=None):
        self.data = str(tmp_path / "d")
        base = free_port_base()
        run("init", "--address", "127.0.0.1", "--data", self.data, "--port-base", str(base))
        self.config = os.path.join(self.data, "tandem.ini")
        self.port = base + 9
        with open(self.config) as f:
            text = drop_dns_sections(f.read())
        zone = zone if zone is not None else ZONE % {"dnssec": "dnssec = on" if signed else ""}
        with open(self.config, "w") as f:
            # health checks every 10 minutes: the regions (not started
            # here) stay healthy, so the latency map decides
            f.write(text + zone + "\n[dns ns1]\nlisten = 127.0.0.1:%d\nthreads = 2\n"
                    "latency_map = 10.1.0.0/16 eu us, 10.2.0.0/16 us eu, default eu us\n"
                    "health_interval_ms = 600000\nhealth_timeout_ms = 1000\n" % self.port)
        if signed:  # the zone's key: `tandem dns key` adds it to the secrets file
            run("dns", "key", "--config", self.config, "--zone", "tandem.test")
        self.proc = None

    def start(self):
        self.log_path = os.path.join(self.data, "dns.log")
        self.proc = start_ready([TANDEM, "dns", "--config", self.config, "--name", "ns1"], self.log_path, "a")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(10)
        return code

    def ask(self, name, rdtype, **kw):
        q = dns.message.make_query(name, rdtype, **kw)
        return dns.query.udp(q, "127.0.0.1", port=self.port, timeout=5, ignore_trailing=True)


@pytest.fixture
def server(tmp_path):
    s = AliasDns(tmp_path)
    s.start()
    yield s
    assert s.stop() == 0, open(s.log_path).read()


def addrs(msg, name, rdtype):
    rrs = [rr for rr in msg.answer if rr.rdtype == dns.rdatatype.from_text(rdtype)]
    assert all(str(rr.name) == name for rr in rrs), msg
    return sorted(r.address for rr in rrs for r in rr)


def test_apex_answers_the_routed_targets_addresses_with_its_scope(server):
    for subnet, want4, want6 in (("10.1.2.0", ["127.0.0.2"], ["::2"]), ("10.2.7.0", ["127.0.0.3"], ["::3"])):
        ecs = dns.edns.ECSOption(subnet, 24)
        r = server.ask("tandem.test", "A", use_edns=0, options=[ecs])
        assert r.rcode() == dns.rcode.NOERROR and addrs(r, "tandem.test.", "A") == want4, r
        assert not any(rr.rdtype == dns.rdatatype.CNAME for rr in r.answer)  # never a CNAME at the apex
        assert r.answer[0].ttl == 10  # the target's TTL
        scope = [o for o in r.options if isinstance(o, dns.edns.ECSOption)][0].scopelen
        assert scope == 16, r  # the latency map's prefix, as the target answers
        r = server.ask("tandem.test", "AAAA", use_edns=0, options=[ecs])
        assert addrs(r, "tandem.test.", "AAAA") == want6, r
    if DIG:
        out = subprocess.run([DIG, "@127.0.0.1", "-p", str(server.port), "+short", "+subnet=10.2.0.0/16",
                              "tandem.test", "A"], capture_output=True, text=True, timeout=20).stdout
        assert out.split() == ["127.0.0.3"], out


def test_static_and_chained_aliases_and_the_rest_of_the_apex(server):
    r = server.ask("static.tandem.test", "A")
    assert addrs(r, "static.tandem.test.", "A") == ["127.0.0.20", "127.0.0.21"] and r.answer[0].ttl == 60
    r = server.ask("chain.tandem.test", "A")  # ALIAS -> CNAME -> A: only the addresses, as the alias' own
    assert addrs(r, "chain.tandem.test.", "A") == ["127.0.0.20", "127.0.0.21"] and len(r.answer) == 1, r
    r = server.ask("static.tandem.test", "AAAA")  # the target has no AAAA: NODATA with the SOA
    assert r.rcode() == dns.rcode.NOERROR and not r.answer and r.authority[0].rdtype == dns.rdatatype.SOA
    # the apex's other types are unchanged
    r = server.ask("tandem.test", "MX")
    assert [str(x) for x in r.answer[0]] == ["10 mail.example.com."]
    r = server.ask("tandem.test", "NS")
    assert [str(x) for x in r.answer[0]] == ["ns1.tandem.test."]
    r = server.ask("tandem.test", "TXT")
    assert r.rcode() == dns.rcode.NOERROR and not r.answer and r.authority[0].rdtype == dns.rdatatype.SOA
    r = server.ask("tandem.test", "CNAME")
    assert not r.answer
    r = server.ask("tandem.test", "ANY")
    types = {rr.rdtype for rr in r.answer}
    assert {dns.rdatatype.SOA, dns.rdatatype.NS, dns.rdatatype.MX, dns.rdatatype.A, dns.rdatatype.AAAA} <= types


@pytest.mark.skipif(not DELV, reason="delv (bind9-dnsutils) not installed")
def test_signed_alias_validates(tmp_path):
    s = AliasDns(tmp_path, signed=True)
    s.start()
    try:
        out = run("dns", "ds", "--config", s.config, "--zone", "tandem.test").stdout
        ds = re.findall(r"\tDS\t(\d+) 13 2 ([0-9A-F]{64})", out)
        anchor = tmp_path / "anchor.conf"
        anchor.write_text("trust-anchors {\n%s};\n" % "".join(
            '  "tandem.test." static-ds %s 13 2 "%s";\n' % d for d in ds))
        for name, rdtype, want in (("tandem.test", "A", "127.0.0.2"), ("tandem.test", "AAAA", "::2"),
                                   ("static.tandem.test", "A", "127.0.0.20")):
            p = subprocess.run([DELV, "@127.0.0.1", "-p", str(s.port), "-a", str(anchor), "+root=tandem.test",
                                name, rdtype], capture_output=True, text=True, timeout=30)
            assert "; fully validated" in p.stdout and want in p.stdout, p.stdout + p.stderr
        # the apex's NODATA (TXT) is denied with an NSEC that lists A and AAAA
        r = s.ask("tandem.test", "TXT", want_dnssec=True)
        nsec = [rr for rr in r.authority if rr.rdtype == dns.rdatatype.NSEC][0]
        types = set(nsec[0].windows and dns.rdtypes.ANY.NSEC.Bitmap(nsec[0].windows).to_text().split())
        assert {"A", "AAAA", "SOA"} <= types and "TXT" not in types, types
    finally:
        assert s.stop() == 0, open(s.log_path).read()


@pytest.mark.parametrize("zone_extra, bad_line, message", [
    ("alias = nx nosuch\n", 0, "the alias target nosuch.tandem.test. is not a name of the zone"),
    ("alias = www api\n", 0, "has address records: an alias gives its addresses"),
    ("alias = x www\nrecord = x CNAME www\n", 1, "has an alias: its addresses come from"),
    ("alias = api www\n", 0, "is a routed name or has an alias"),
    ("alias = y example.com.\n", 0, "must be within the zone"),
    ("alias = y www extra\n", 0, "ALIAS needs one target name"),
    ("record = y ALIAS y\n", 0, "cannot point at itself"),
])
def test_bad_aliases_refused_with_file_line(tmp_path, zone_extra, bad_line, message):
    s = AliasDns(tmp_path, zone=ZONE % {"dnssec": ""} + zone_extra)
    p = subprocess.run([TANDEM, "config", "check", s.config], capture_output=True, text=True, timeout=20)
    with open(s.config) as f:
        lines = f.read().split("\n")
    line = lines.index(zone_extra.split("\n")[bad_line]) + 1
    assert p.returncode != 0 and "tandem.ini:%d:" % line in p.stderr and message in p.stderr, p.stderr
