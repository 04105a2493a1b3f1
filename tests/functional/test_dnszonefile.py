"""`tandem dns` zone files (issue 11 section 1): `[zone ORIGIN] file = PATH`
reads an RFC 1035 master file: $ORIGIN, $TTL (with units), @, relative and
absolute names, owners carried over by a leading blank, TTL and class in
either order, parentheses across lines, comments (also inside them), quoted
TXT strings (with ';' and escaped quotes inside, several strings, a DKIM key
longer than a config line may be), every supported type; errors as the zone
file's own FILE:LINE; bounds (line length, file size).

Every test here fails on the code before: `file` was an unknown key in
[zone] (the config was refused)."""
import os
import shutil
import signal
import subprocess

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from conftest import TANDEM, drop_dns_sections, free_port_base, run, start_ready

DIG = shutil.which("dig")

DKIM = "p=" + "A" * 400  # one string over 255 bytes is refused; split, it is fine

ZONEFILE = r"""; tandem.test, as an operator writes it
$TTL 1h
$ORIGIN tandem.test.
@   IN  SOA ns1 hostmaster (
            2026120301 ; serial
            3600       ; refresh
            600 86400
            30 )       ; minimum
        IN  NS  ns1
        IN  NS  ns2.tandem.test.
    MX  10 mail.example.com.
ns1     A   127.0.0.5
ns2 300 IN  A   127.0.0.6
api IN 10 A 127.0.0.2          ; class before TTL
        AAAA ::1
www     CNAME api
txt     TXT "v=spf1 -all; not a comment" "two" "with \"quotes\""
dkim._domainkey 2h TXT ( "v=DKIM1; k=rsa; "
        "%s"
        "%s" )
@       CAA 0 issue "letsencrypt.org"
_api._tcp SRV 0 5 443 api
$ORIGIN sub.tandem.test.
host    A   127.0.0.7          ; host.sub.tandem.test
alias   CNAME @
""" % (DKIM[:200], DKIM[200:])


class FileDns:
    def __init__(self, tmp_path, zonefile, extra=""):
        self.data = str(tmp_path / "d")
        base = free_port_base()
        run("init", "--address", "127.0.0.1", "--data", self.data, "--port-base", str(base))
        self.config = os.path.join(self.data, "tandem.ini")
        self.zonefile = os.path.join(self.data, "tandem.test.zone")
        with open(self.zonefile, "w") as f:
            f.write(zonefile)
        self.port = base + 9
        with open(self.config) as f:
            text = drop_dns_sections(f.read())
        with open(self.config, "w") as f:
            f.write(text + "\n[zone tandem.test]\nttl = 300\nfile = tandem.test.zone\n" + extra +
                    "\n[dns ns1]\nlisten = 127.0.0.1:%d\nthreads = 1\n" % self.port)
        self.proc = None

    def check(self):
        return subprocess.run([TANDEM, "config", "check", self.config], capture_output=True, text=True, timeout=20)

    def start(self):
        self.log_path = os.path.join(self.data, "dns.log")
        self.proc = start_ready([TANDEM, "dns", "--config", self.config, "--name", "ns1"], self.log_path, "a")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(10)
        return code

    def ask(self, name, rdtype):
        q = dns.message.make_query(name, rdtype)
        return dns.query.tcp(q, "127.0.0.1", port=self.port, timeout=5)


def rr(msg, rdtype):
    sets = [s for s in msg.answer if s.rdtype == dns.rdatatype.from_text(rdtype)]
    assert sets, msg
    return sets[0]


def test_zone_file_answers_every_record(tmp_path):
    s = FileDns(tmp_path, ZONEFILE)
    s.start()
    try:
        soa = rr(s.ask("tandem.test", "SOA"), "SOA")
        assert soa.ttl == 3600 and soa[0].serial == 2026120301 and soa[0].minimum == 30
        assert str(soa[0].mname) == "ns1.tandem.test." and str(soa[0].rname) == "hostmaster.tandem.test."
        ns = rr(s.ask("tandem.test", "NS"), "NS")
        assert sorted(str(x) for x in ns) == ["ns1.tandem.test.", "ns2.tandem.test."]
        assert [str(x) for x in rr(s.ask("tandem.test", "MX"), "MX")] == ["10 mail.example.com."]
        a = rr(s.ask("ns2.tandem.test", "A"), "A")
        assert a.ttl == 300 and a[0].address == "127.0.0.6"
        a = rr(s.ask("api.tandem.test", "A"), "A")
        assert a.ttl == 10 and a[0].address == "127.0.0.2"
        assert rr(s.ask("api.tandem.test", "AAAA"), "AAAA")[0].address == "::1"  # owner carried over
        assert rr(s.ask("api.tandem.test", "AAAA"), "AAAA").ttl == 3600         # $TTL
        assert str(rr(s.ask("www.tandem.test", "CNAME"), "CNAME")[0].target) == "api.tandem.test."
        txt = rr(s.ask("txt.tandem.test", "TXT"), "TXT")[0]
        assert txt.strings == (b"v=spf1 -all; not a comment", b"two", b'with "quotes"')
        dkim = rr(s.ask("dkim._domainkey.tandem.test", "TXT"), "TXT")
        assert dkim.ttl == 7200 and b"".join(dkim[0].strings) == b"v=DKIM1; k=rsa; " + DKIM.encode()
        assert str(rr(s.ask("tandem.test", "CAA"), "CAA")[0]) == '0 issue "letsencrypt.org"'
        assert str(rr(s.ask("_api._tcp.tandem.test", "SRV"), "SRV")[0]) == "0 5 443 api.tandem.test."
        assert rr(s.ask("host.sub.tandem.test", "A"), "A")[0].address == "127.0.0.7"  # $ORIGIN
        assert str(rr(s.ask("alias.sub.tandem.test", "CNAME"), "CNAME")[0].target) == "sub.tandem.test."
        r = s.ask("nothere.tandem.test", "A")
        assert r.rcode() == dns.rcode.NXDOMAIN and r.authority[0].rdtype == dns.rdatatype.SOA
        if DIG:
            out = subprocess.run([DIG, "@127.0.0.1", "-p", str(s.port), "+short", "txt.tandem.test", "TXT"],
                                 capture_output=True, text=True, timeout=20).stdout
            assert out.strip() == r'"v=spf1 -all; not a comment" "two" "with \"quotes\""', out
    finally:
        assert s.stop() == 0, open(s.log_path).read()


def test_config_records_add_to_the_file(tmp_path):
    s = FileDns(tmp_path, ZONEFILE, extra="record = extra A 127.0.0.99\nalias = @ api\n")
    s.start()
    try:
        assert rr(s.ask("extra.tandem.test", "A"), "A")[0].address == "127.0.0.99"
        assert rr(s.ask("tandem.test", "A"), "A")[0].address == "127.0.0.2"
    finally:
        assert s.stop() == 0, open(s.log_path).read()


@pytest.mark.parametrize("text, line, message", [
    ("@ SOA ns1 hm 1 2 3 4 5\nfoo A 1.2.3\n", 2, "is not an IPv4 address"),
    ("@ SOA ns1 hm 1 2 3 4 5\n\n; c\nfoo BOGUS 1\n", 4, "record type 'BOGUS' is not supported"),
    ("@ SOA ns1 hm (\n 1 2 3\n 4 5\n", 1, "'(' is never closed"),
    ("@ SOA ns1 hm 1 2 3 4 5\nx TXT \"open\n", 2, "a quoted string does not end on its line"),
    ("@ SOA ns1 hm 1 2 3 4 5\n$INCLUDE other.zone\n", 2, "$INCLUDE is not supported"),
    ("@ SOA ns1 hm 1 2 3 4 5\n$ORIGIN example.com.\n", 2, "is not within the zone"),
    ("@ SOA ns1 hm 1 2 3 4 5\nx CH A 1.2.3.4\n", 2, "class CH is not supported"),
    ("@ SOA ns1 hm 1 2 3 4 5\nx.example.com. A 1.2.3.4\n", 2, "is not within the zone"),
    ("@ SOA ns1 hm 1 2 3 4 5\n$TTL 1x\n", 2, "$TTL needs one TTL"),
    ("  A 1.2.3.4\n@ SOA ns1 hm 1 2 3 4 5\n", 1, "needs a previous one"),
    ("@ SOA ns1 hm 1 2 3 4 5\nx TXT \"%s\"\n" % ("a" * 300), 2, "longer than 255 bytes"),
    ("@ SOA ns1 hm 1 2 3 4 5\nx TXT \"%s\"\n" % ("a" * 17000), 2, "the line is over 16384 bytes"),
    ("@ SOA ns1 hm 1 2 3 4 5\nx A 1.2.3.4 )\n", 2, "')' without '('"),
    ("@ NS ns1\n", None, "needs soa"),
])
def test_errors_name_the_zone_files_line(tmp_path, text, line, message):
    s = FileDns(tmp_path, text)
    p = s.check()
    assert p.returncode != 0 and message in p.stderr, p.stderr
    if line is not None:
        assert "tandem.test.zone:%d: " % line in p.stderr, p.stderr


def test_missing_and_oversized_files(tmp_path):
    s = FileDns(tmp_path, "")
    os.unlink(s.zonefile)
    p = s.check()
    assert p.returncode != 0 and "tandem.ini:" in p.stderr and "cannot read" in p.stderr, p.stderr
    with open(s.zonefile, "w") as f:  # over 8 MiB: refused before it is read
        f.truncate(8 * 1024 * 1024 + 1)
    p = s.check()
    assert p.returncode != 0 and "is over 8388608 bytes" in p.stderr, p.stderr
