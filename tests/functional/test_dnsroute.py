"""`tandem dns` routing with health checks (issue 11 sections 2): routed
record sets answered by the client's subnet (ECS) or the resolver's address
through the latency map (and a MaxMind DB), with the ECS scope of the
matched prefix; health checks of the real regions' /readyz (HTTPS, verified
against the deployment's CA) that withdraw a killed region within
interval x failures + 1 s and bring it back after recovery, under a query
load that never gets an empty answer; fail open when every region is down;
a failover record set that follows a switchover. Asked with dig, kdig and
dnspython; health read from /metrics, /health and `tandem status`.

Every test here fails on the code before routing: `route =` and
`latency_map =` were unknown keys (the config was refused)."""
import json
import os
import shutil
import signal
import subprocess
import threading
import time

import dns.dnssec
import dns.edns
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.query
import dns.rcode
import pytest
import requests

from conftest import TANDEM, UP_PORTS, drop_dns_sections, free_port_base, start_ready, start_up
from regions import TwoRegions, log_events, wait_follower

DIG = shutil.which("dig")
KDIG = shutil.which("kdig")
PERL = shutil.which("perl")

INTERVAL_MS = 200
FAILURES = 3
RECOVERIES = 2

LATENCY_MAP = ("latency_map = 10.1.0.0/16 eu us, 127.0.0.2/32 eu us, 10.2.0.0/16 us eu, 127.0.0.3/32 us eu\n"
               "latency_map = default eu us\n")

# A MaxMind DB of two networks, written with MaxMind's own writer (Debian's
# libmaxmind-db-writer-perl): 10.9.0.0/16 in DE (EU), 10.8.0.0/16 in the US (NA).
MMDB_WRITER = r"""
use MaxMind::DB::Writer::Tree;
my %types = (country => 'map', iso_code => 'utf8_string', continent => 'map', code => 'utf8_string');
my $tree = MaxMind::DB::Writer::Tree->new(ip_version => 6, record_size => 24,
  database_type => 'tandem-test-Country', languages => ['en'], description => {en => 'tandem test'},
  map_key_type_callback => sub { $types{ $_[0] } }, remove_reserved_networks => 0);
$tree->insert_network('10.9.0.0/16', {country => {iso_code => 'DE'}, continent => {code => 'EU'}});
$tree->insert_network('10.8.0.0/16', {country => {iso_code => 'US'}, continent => {code => 'NA'}});
open my $fh, '>:raw', $ARGV[0] or die; $tree->write_tree($fh); close $fh;
"""


def have_mmdb_writer():
    return PERL and subprocess.run([PERL, "-MMaxMind::DB::Writer::Tree", "-e", "1"],
                                   capture_output=True).returncode == 0


class RoutedDns:
    """A `tandem dns` instance beside a TwoRegions deployment, routing
    api (latency), db (failover) and img (weighted) between eu and us."""

    def __init__(self, pair, extra_server="", name="ns1"):
        self.pair = pair
        base = free_port_base(count=2)
        self.port, self.metrics_port = base, base + 1
        self.name = name
        with open(pair.config) as f:
            text = drop_dns_sections(f.read())
        with open(pair.config, "w") as f:
            f.write(text + "\n[zone tandem.test]\n"
                    "soa = ns1 hostmaster 2026120301 3600 600 86400 30\n"
                    "record = @ NS ns1\n"
                    "record = ns1 A 127.0.0.5\n"
                    "route = api latency eu=127.0.0.2 us=127.0.0.3,::3 ttl=10\n"
                    "route = db failover eu=127.0.0.2 us=127.0.0.3 ttl=5\n"
                    "route = img weighted eu=127.0.0.2 us=127.0.0.3 weights=eu:1,us:1\n"
                    "record = www CNAME api\n"
                    "\n[dns %s]\nlisten = 127.0.0.1:%d\nthreads = 2\nrrl_rate = 0\n"
                    "metrics_listen = 127.0.0.1:%d\n"
                    "health_interval_ms = %d\nhealth_timeout_ms = 1000\n"
                    "health_failures = %d\nhealth_recoveries = %d\n%s%s"
                    % (name, self.port, self.metrics_port, INTERVAL_MS, FAILURES, RECOVERIES, LATENCY_MAP,
                       extra_server))
        self.log_path = os.path.join(pair.dir, "dns.log")
        self.proc = None

    def start(self):
        self.proc = start_ready([TANDEM, "dns", "--config", self.pair.config, "--name", self.name],
                                self.log_path, "w")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            code = self.proc.wait(10)
            return code
        return self.proc.returncode if self.proc else None

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def ask(self, name, rdtype="A", subnet=None, source=None, tcp=False):
        kw = {}
        if subnet:
            addr, length = subnet.split("/")
            kw = {"use_edns": 0, "options": [dns.edns.ECSOption(addr, int(length))]}
        q = dns.message.make_query(name, rdtype, **kw)
        if tcp:
            return dns.query.tcp(q, "127.0.0.1", port=self.port, timeout=3, source=source)
        return dns.query.udp(q, "127.0.0.1", port=self.port, timeout=3, source=source)

    def addresses(self, name="api.tandem.test", rdtype="A", **kw):
        r = self.ask(name, rdtype, **kw)
        assert r.rcode() == dns.rcode.NOERROR, r
        return sorted(rd.address for rrset in r.answer for rd in rrset if hasattr(rd, "address"))

    def health(self):
        with requests.Session() as s:
            s.trust_env = False
            r = s.get("http://127.0.0.1:%d/health" % self.metrics_port, timeout=5)
        assert r.status_code == 200, r.text
        return r.json()

    def metrics(self):
        with requests.Session() as s:
            s.trust_env = False
            text = s.get("http://127.0.0.1:%d/metrics" % self.metrics_port, timeout=5).text
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                out[k] = float(v)
        return out

    def wait_answer(self, want, timeout, **kw):
        """Seconds until api's addresses are want (AssertionError after timeout)."""
        t0 = time.time()
        while True:
            got = self.addresses(**kw)
            if got == want:
                return time.time() - t0
            if time.time() - t0 > timeout:
                raise AssertionError("api answered %s, not %s, for %.1f s\n%s" % (got, want, timeout, self.log()))
            time.sleep(0.02)


@pytest.fixture
def deployment(tmp_path):
    made = []

    def make(witness=False, extra_server=""):
        pair = TwoRegions(tmp_path / ("d%d" % len(made)), witness=witness)
        d = RoutedDns(pair, extra_server)
        made.append(d)
        return d

    yield make
    for d in made:
        code = d.stop()
        d.pair.stop_all()
        assert code == 0, d.log()


def ecs_scope(r):
    opts = [o for o in r.options if isinstance(o, dns.edns.ECSOption)]
    assert len(opts) == 1, r
    return opts[0].scopelen


def test_latency_routing_by_subnet_source_and_maxmind_db(deployment, tmp_path):
    """A client's subnet (ECS) or, without one, the resolver's address picks
    the region through the latency map, with the matched prefix as the ECS
    scope; a MaxMind DB maps countries and continents; the health checks of
    the real regions pass (TLS verified against the deployment's CA)."""
    mmdb = ""
    if have_mmdb_writer():
        path = str(tmp_path / "geo.mmdb")
        subprocess.run([PERL, "-e", MMDB_WRITER, path], check=True, timeout=60)
        mmdb = "geoip_db = %s\nlatency_map = country:DE us eu, continent:NA us eu\n" % path
    d = deployment(extra_server=mmdb)
    d.pair.start()
    d.start()
    # by the client's subnet, with the prefix's length as the scope
    r = d.ask("api.tandem.test", subnet="10.1.2.0/24")
    assert [rd.address for rd in r.answer[0]] == ["127.0.0.2"] and r.answer[0].ttl == 10
    assert ecs_scope(r) == 16
    r = d.ask("api.tandem.test", subnet="10.2.9.0/24")
    assert [rd.address for rd in r.answer[0]] == ["127.0.0.3"] and ecs_scope(r) == 16
    assert d.addresses(rdtype="AAAA", subnet="10.2.9.0/24") == ["::3"]
    # eu has no IPv6 address: NODATA for AAAA, not a wrong region
    r = d.ask("api.tandem.test", "AAAA", subnet="10.1.2.0/24")
    assert r.rcode() == dns.rcode.NOERROR and not r.answer and r.authority
    # a CNAME to the routed name, followed
    r = d.ask("www.tandem.test", subnet="10.2.9.0/24")
    assert [str(rd) for rrset in r.answer for rd in rrset] == ["api.tandem.test.", "127.0.0.3"]
    # without ECS: the resolver's own address (127.0.0.3 prefers us)
    assert d.addresses(source="127.0.0.3") == ["127.0.0.3"]
    assert d.addresses(source="127.0.0.2") == ["127.0.0.2"]
    assert d.addresses(source="127.0.0.2", tcp=True) == ["127.0.0.2"]
    assert d.addresses(source="127.0.0.1") == ["127.0.0.2"]  # default: eu then us
    if DIG:
        out = subprocess.run([DIG, "@127.0.0.1", "-p", str(d.port), "+subnet=10.2.0.0/24", "+time=3", "+tries=1",
                              "api.tandem.test", "A"], capture_output=True, text=True, timeout=20).stdout
        assert "CLIENT-SUBNET: 10.2.0.0/24/16" in out and "127.0.0.3" in out, out
    if KDIG:
        out = subprocess.run([KDIG, "@127.0.0.1", "-p", str(d.port), "+subnet=10.1.9.0/24", "api.tandem.test", "A"],
                             capture_output=True, text=True, timeout=20).stdout
        assert "CLIENT-SUBNET: 10.1.9.0/24/16" in out and "127.0.0.2" in out, out
    # the MaxMind DB: DE -> us first (the default would be eu), NA -> us;
    # scope: the DB's network
    if mmdb:
        r = d.ask("api.tandem.test", subnet="10.9.1.0/24")
        assert [rd.address for rd in r.answer[0]] == ["127.0.0.3"] and ecs_scope(r) == 16, r
        assert d.addresses(subnet="10.8.200.0/24") == ["127.0.0.3"]
        assert d.addresses(subnet="10.7.0.0/24") == ["127.0.0.2"]  # not in the DB: default
    else:
        print("MaxMind DB sub-case skipped: perl MaxMind::DB::Writer (libmaxmind-db-writer-perl) missing")
    # weighted: both regions come up over a few dozen queries
    seen = {tuple(d.addresses("img.tandem.test")) for _ in range(40)}
    assert seen == {("127.0.0.2",), ("127.0.0.3",)}, seen
    # the checks pass: /health, /metrics
    deadline = time.time() + 5
    while min(r["checks"] for r in d.health()["regions"].values()) < 2 and time.time() < deadline:
        time.sleep(0.05)
    h = d.health()
    assert h["dns"] == "ns1" and h["fail_open"] is False
    assert set(h["regions"]) == {"eu", "us"}
    for name in ("eu", "us"):
        assert h["regions"][name]["healthy"] is True and h["regions"][name]["checks"] >= 1, h
        assert h["regions"][name]["last_error"] is None, h
    assert h["regions"]["eu"]["role"] == "primary" and h["regions"]["us"]["role"] == "secondary"
    m = d.metrics()
    assert m['tandem_dns_region_healthy{dns="ns1",region="us"}'] == 1
    assert m['tandem_dns_region_primary{dns="ns1",region="eu"}'] == 1
    assert m['tandem_dns_fail_open{dns="ns1"}'] == 0
    assert m['tandem_dns_region_checks_total{dns="ns1",region="eu",result="passed"}'] >= 1


def test_killed_region_withdrawn_in_time_then_back_and_fail_open(deployment):
    """Kill us under a query load: answers for a us client move to eu within
    interval x failures + 1 s (no empty answer meanwhile); us comes back
    after `recoveries` passed checks; both down: fail open, both answered."""
    d = deployment()
    d.pair.start()
    d.start()
    us_client = "10.2.0.0/24"
    assert d.addresses(subnet=us_client) == ["127.0.0.3"]
    # a query load for the whole test: every answer must carry an address
    stop = threading.Event()
    bad, answered = [], [0]

    def load():
        while not stop.is_set():
            try:
                got = d.addresses(subnet=us_client)
                answered[0] += 1
                if not got:
                    bad.append(got)
            except Exception as e:  # a timeout counts too
                bad.append(repr(e))

    t = threading.Thread(target=load)
    t.start()
    try:
        t_kill = time.time()
        d.pair.us.kill9()
        took = d.wait_answer(["127.0.0.2"], timeout=10, subnet=us_client)
        bound = INTERVAL_MS * FAILURES / 1000 + 1
        print("withdrawn %.2f s after the kill (bound %.1f s)" % (time.time() - t_kill, bound))
        assert time.time() - t_kill <= bound, "withdrawn after %.2f s" % took
        ev = log_events(d.log_path, "dns_region_unhealthy")
        assert ev and ev[-1]["dns_region"] == "us", d.log()
        h = d.health()
        assert h["regions"]["us"]["healthy"] is False and h["regions"]["us"]["last_error"], h
        assert h["regions"]["eu"]["healthy"] is True
        # `tandem status` shows it
        st = subprocess.run([TANDEM, "status", "--config", d.pair.config], capture_output=True, text=True,
                            timeout=30)
        assert st.returncode == 0, st.stderr
        assert "dns ns1" in st.stdout and "us" in st.stdout and "unhealthy" in st.stdout, st.stdout
        # back: restarted, in the answers again after `recoveries` checks
        t_start = time.time()
        d.pair.us.start()
        took = d.wait_answer(["127.0.0.3"], timeout=10, subnet=us_client)
        print("back %.2f s after the restart answered /healthz" % took)
        assert took <= INTERVAL_MS * (RECOVERIES + 1) / 1000 + 1
        assert log_events(d.log_path, "dns_region_healthy")[-1]["dns_region"] == "us"
        # both down: fail open (both answered), logged and in /metrics
        d.pair.us.kill9()
        d.pair.eu.kill9()
        d.wait_answer(["127.0.0.2", "127.0.0.3"], timeout=INTERVAL_MS * FAILURES / 1000 + 1, subnet=us_client)
        assert log_events(d.log_path, "dns_fail_open"), d.log()
        assert d.metrics()['tandem_dns_fail_open{dns="ns1"}'] == 1
        assert d.health()["fail_open"] is True
    finally:
        stop.set()
        t.join(10)
    assert not bad, bad[:5]
    assert answered[0] > 20, answered
    del t_start


def test_failover_route_follows_a_switchover(deployment):
    """db is a failover record set: it answers the region whose /readyz says
    primary, and follows `tandem switchover` to us and back."""
    d = deployment(witness=True)
    d.pair.start()
    d.start()
    wait = lambda want: d.wait_answer(want, timeout=15, name="db.tandem.test")  # noqa: E731
    wait(["127.0.0.2"])
    out = subprocess.run([TANDEM, "switchover", "--config", d.pair.config, "--to", "us"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr + elections(d.pair)
    took = wait(["127.0.0.3"])
    print("db followed the switchover to us in %.2f s" % took)
    assert d.health()["regions"]["us"]["role"] == "primary"
    # and the latency route is not affected by roles
    assert d.addresses(subnet="10.1.0.0/24") == ["127.0.0.2"]
    # eu follows us before it can be switched back to (under TSan's slowdown
    # the second switchover came before eu streamed: "could not catch up")
    wait_follower(d.pair.us, d.pair.eu, timeout=30)
    out = subprocess.run([TANDEM, "switchover", "--config", d.pair.config, "--to", "eu"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr + elections(d.pair)
    wait(["127.0.0.2"])


def elections(pair):
    """What the regions' logs say of elections, leases and handovers (for a
    failed switchover's message: CI keeps no logs)."""
    out = []
    for name in ("eu", "us"):
        try:
            with open(os.path.join(pair.dir, "region-%s.log" % name), errors="replace") as f:
                lines = [ln for ln in f if any(w in ln for w in ("election", "handover", "lease", "vote", "writes_"))]
        except OSError as e:
            lines = [str(e)]
        out.append("\n--- %s ---\n%s" % (name, "".join(lines[-40:])))
    return "".join(out)


def test_routing_config_errors_name_file_and_line(tmp_path):
    """Bad routes and maps are refused with FILE:LINE, before anything starts."""
    pair = TwoRegions(tmp_path / "d")
    with open(pair.config) as f:
        text = drop_dns_sections(f.read())
    with open(pair.config, "w") as f:
        f.write(text + "\n[zone tandem.test]\nsoa = ns1 hostmaster 1 3600 600 86400 30\n"
                "route = api nearest eu=127.0.0.2\n"           # line +3
                "route = db latency ap=127.0.0.9\n"            # a region without [region ap]
                "\n[dns ns1]\nlisten = 127.0.0.1:1053\n"
                "latency_map = 10.0.0.0/33 eu\n"
                "latency_map = country:DE eu\n")
    p = subprocess.run([TANDEM, "config", "check", pair.config], capture_output=True, text=True, timeout=20)
    assert p.returncode != 0
    err = p.stderr + p.stdout
    assert "policy is latency, failover or weighted" in err, err
    assert "region 'ap' has no [region ap] section" in err, err
    assert "10.0.0.0/33" in err and "need geoip_db" in err, err
    assert "tandem.ini:" in err


def test_up_serves_the_zone_on_its_own_addresses(tmp_path):
    """`tandem up` (issue 11 section 3): every component on its own loopback
    address, two DNS instances in endpoints.json serving tandem.test with
    api latency-routed (127.0.0.2 and 127.0.0.3 as resolvers prefer their
    own region), and the dev certificates naming api.tandem.test, so that
    curl --resolve to what DNS answered verifies; the zone is signed, both
    instances with the same key (init made it; the NS set shares the
    secrets file). Before: no DNS, every component on 127.0.0.1,
    certificates without api.tandem.test; before DNSSEC: no RRSIG."""
    base = free_port_base(count=UP_PORTS)
    data = tmp_path / "up"
    proc, e = start_up(data, base)
    try:
        assert e["zone"] == "tandem.test"
        assert e["dns"]["ns1"]["address"] == "127.0.0.5" and e["dns"]["ns2"]["address"] == "127.0.0.6", e
        assert e["regions"]["eu"]["api"] == "https://127.0.0.2:%d" % base
        assert e["regions"]["us"]["api"] == "https://127.0.0.3:%d" % (base + 1)
        assert e["witness"]["addr"] == "127.0.0.4:%d" % (base + 4)
        ports = {"127.0.0.2": base, "127.0.0.3": base + 1}
        for ns in ("ns1", "ns2"):
            server, port = e["dns"][ns]["address"], e["dns"][ns]["port"]
            for source, want in (("127.0.0.2", "127.0.0.2"), ("127.0.0.3", "127.0.0.3"), ("127.0.0.1", "127.0.0.2")):
                q = dns.message.make_query("api.tandem.test", "A")
                r = dns.query.udp(q, server, port=port, timeout=3, source=source)
                assert [rd.address for rd in r.answer[0]] == [want], (ns, source, r)
            r = dns.query.udp(dns.message.make_query("tandem.test", "NS"), server, port=port, timeout=3)
            assert sorted(str(rd) for rd in r.answer[0]) == ["ns1.tandem.test.", "ns2.tandem.test."]
            zone = dns.name.from_text("tandem.test.")
            r = dns.query.udp(dns.message.make_query(zone, "DNSKEY", want_dnssec=True), server, port=port,
                              timeout=3)
            keys = r.find_rrset(r.answer, zone, dns.rdataclass.IN, dns.rdatatype.DNSKEY)
            if ns == "ns1":
                first_keys = keys
            assert keys == first_keys  # one key for the NS set
            r = dns.query.udp(dns.message.make_query("api.tandem.test", "A", want_dnssec=True), server, port=port,
                              timeout=3, source="127.0.0.3")
            name = dns.name.from_text("api.tandem.test.")
            a = r.find_rrset(r.answer, name, dns.rdataclass.IN, dns.rdatatype.A)
            sig = r.find_rrset(r.answer, name, dns.rdataclass.IN, dns.rdatatype.RRSIG, dns.rdatatype.A)
            assert [rd.address for rd in a] == ["127.0.0.3"]
            dns.dnssec.validate(a, sig, {zone: keys})
        # the answer, used as curl would: the certificate names api.tandem.test
        for addr, port in ports.items():
            out = subprocess.run(["curl", "-sS", "--cacert", e["ca"], "--resolve",
                                  "api.tandem.test:%d:%s" % (port, addr), "https://api.tandem.test:%d/readyz" % port],
                                 capture_output=True, text=True, timeout=30)
            assert out.returncode == 0, out.stderr
            assert json.loads(out.stdout)["region"] == ("eu" if addr == "127.0.0.2" else "us")
        # both DNS instances check both regions: `tandem status` says so
        deadline = time.time() + 10
        while True:
            st = subprocess.run([TANDEM, "status", "--config", e["config"], "--json"], capture_output=True,
                                text=True, timeout=30)
            assert st.returncode == 0, st.stderr
            d = json.loads(st.stdout)["dns"]
            if all(d[ns]["regions"][r]["checks"] > 0 for ns in ("ns1", "ns2") for r in ("eu", "us")):
                break
            assert time.time() < deadline, d
            time.sleep(0.2)
        assert d["ns1"]["regions"]["eu"]["healthy"] and d["ns2"]["regions"]["us"]["healthy"], d
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, proc.log()[-3000:]
