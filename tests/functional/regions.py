"""A local two-region deployment (eu primary, us secondary) made of REAL
`tandem region` processes, for the replication tests.

    pair = TwoRegions(tmp_dir, replication={"min_lsn_wait_ms": 1000})
    pair.start()                    # eu, then us; waits for /healthz
    pair.eu.post(path, token, json=...)
    pair.us.get(path, token, headers={"X-Tandem-Min-LSN": lsn})
    pair.status(); pair.verify(); pair.wait_synced()
    pair.stop_all()                 # SIGTERM, then SIGKILL; returns exit codes

`tandem init --data DIR --port-base P` lays out the deployment: eu's API on
P, us's on P+1, their links on P+2 and P+3, the witness on P+4, their
/metrics listeners (plain HTTP) on P+5 and P+6, one CA in DIR/certs.
"""
import json
import os
import re
import signal
import subprocess
import threading
import time

import requests

from conftest import TANDEM, fast_hashing, free_port_base, new_email, raise_signup_limit, run

LSN = re.compile(r"^(\d+)/(\d+)$")


def lsn_seq(lsn):
    """The SEQ of an "EPOCH/SEQ" position."""
    m = LSN.match(lsn or "")
    assert m, "not a position: %r" % (lsn,)
    return int(m.group(2))


# --- API helpers shared by the two-region test files ---

EVENTUAL = {"X-Tandem-Consistency": "eventual"}


def records_path(collection, rid=None):
    p = "/v1/collections/%s/records" % collection
    return p + "/" + rid if rid else p


def signup(region):
    """A new account at region; its answer plus "email" and "lsn"."""
    email = new_email()
    r = region.post("/v1/auth/signup", json={"email": email, "password": "correct horse battery"})
    assert r.status_code == 201, (region.name, r.status_code, r.text)
    assert LSN.match(r.headers.get("X-Tandem-LSN", "")), dict(r.headers)
    body = r.json()
    body["email"] = email
    body["lsn"] = r.headers["X-Tandem-LSN"]
    return body


def create(region, token, collection, data, headers=None):
    """POST a record; asserts 201 and a position; returns the response."""
    r = region.post(records_path(collection), token, json=data, headers=headers)
    assert r.status_code == 201, (region.name, r.status_code, r.text)
    assert LSN.match(r.headers.get("X-Tandem-LSN", "")), dict(r.headers)
    return r


def list_all(region, token, collection, filter_=None, headers=None):
    """Every record of the collection (following cursors)."""
    items, cursor = [], None
    for _ in range(1000):
        params = {"limit": 1000}
        if filter_:
            params["filter"] = filter_
        if cursor:
            params["cursor"] = cursor
        r = region.get(records_path(collection), token, params=params, headers=headers)
        assert r.status_code == 200, (region.name, r.status_code, r.text)
        body = r.json()
        items += body["items"]
        cursor = body["next_cursor"]
        if not cursor:
            return items
    raise AssertionError("too many pages")


def set_replication(text, settings):
    """The config text with [replication] keys set (replaced or added)."""
    for key, value in settings.items():
        line = "%s = %s" % (key, value)
        pattern = re.compile(r"^%s\s*=.*$" % re.escape(key), re.M)
        # only inside the [replication] section
        start = text.index("[replication]")
        end = text.find("\n[", start + 1)
        end = len(text) if end < 0 else end
        section = text[start:end]
        if pattern.search(section):
            section = pattern.sub(line, section, count=1)
        else:
            section = section.replace("[replication]\n", "[replication]\n" + line + "\n", 1)
        text = text[:start] + section + text[end:]
    return text


class RegionProc:
    """One region process of a TwoRegions deployment."""

    def __init__(self, deployment, name, port, link_port, metrics_port=None):
        self.deployment = deployment
        self.name = name
        self.port = port
        self.link_port = link_port
        self.url = "https://127.0.0.1:%d" % port
        # /metrics: plain HTTP on the region's metrics_listen, not the API port
        self.metrics_url = "http://127.0.0.1:%d/metrics" % metrics_port if metrics_port else None
        self.ca = deployment.ca
        self.log_path = os.path.join(deployment.dir, "region-%s.log" % name)
        self.proc = None
        self.exit_codes = []  # of every stop (None for kill -9)
        self.killed_at = []   # time.time() of every kill -9
        self._local = threading.local()

    # --- process ---

    def start(self, timeout=20):
        assert not self.running(), "%s is already running" % self.name
        log = open(self.log_path, "ab")
        log.write(("--- start %s at %.3f ---\n" % (self.name, time.time())).encode())
        log.flush()
        self.proc = subprocess.Popen(
            [TANDEM, "region", "--config", self.deployment.config, "--region", self.name],
            stdout=log, stderr=log)
        log.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("region %s exited (%s): %s" % (
                    self.name, self.proc.returncode, self.log()[-3000:]))
            try:
                r = requests.get(self.url + "/healthz", verify=self.ca, timeout=1)
                if r.status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError("region %s did not become healthy: %s" % (self.name, self.log()[-3000:]))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """Stop (SIGTERM by default; SIGKILL if it does not exit in time).
        Returns the exit code."""
        if not self.running():
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            code = "did not exit within %s s after signal %s" % (timeout, sig)
        self.exit_codes.append(code)
        self.drop_sessions()
        return code

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.killed_at.append(time.time())
        self.exit_codes.append(None)
        self.drop_sessions()

    def log(self):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    # --- HTTP (one keep-alive session per thread) ---

    def session(self):
        s = requests.Session()
        s.verify = self.ca
        s.trust_env = False  # REQUESTS_CA_BUNDLE / proxies would interfere
        return s

    def _session(self):
        s = getattr(self._local, "s", None)
        if s is None:
            s = self._local.s = self.session()
        return s

    def drop_sessions(self):
        self._local = threading.local()

    def request(self, method, path, token=None, headers=None, timeout=15, **kw):
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        try:
            return self._session().request(method, self.url + path, headers=h,
                                           timeout=timeout, **kw)
        except requests.ConnectionError:
            # a pooled connection to a process that was restarted: drop it
            self._local.s = None
            raise

    def get(self, path, token=None, **kw):
        return self.request("GET", path, token, **kw)

    def post(self, path, token=None, **kw):
        return self.request("POST", path, token, **kw)

    def readyz(self):
        r = self.get("/readyz", timeout=5)
        assert r.status_code == 200, (self.name, r.status_code, r.text)
        return r.json()

    def position(self):
        return self.readyz()["position"]

    def metrics(self):
        """{name{labels}: value} of the Prometheus text at /metrics (on the
        region's metrics_listen)."""
        assert self.metrics_url, "%s has no metrics_listen" % self.name
        with requests.Session() as s:
            s.trust_env = False
            r = s.get(self.metrics_url, timeout=5)
        assert r.status_code == 200, r.text
        out = {}
        for line in r.text.splitlines():
            if not line or line.startswith("#"):
                continue
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
        return out

    def metric(self, name):
        """The value of name{region="<this region>"}."""
        key = '%s{region="%s"}' % (name, self.name)
        values = self.metrics()
        assert key in values, "%s missing from /metrics of %s" % (key, self.name)
        return values[key]

    def wait_position(self, seq, timeout=10):
        deadline = time.time() + timeout
        while True:
            pos = self.position()
            if pos >= seq:
                return pos
            if time.time() > deadline:
                raise AssertionError("%s stayed at position %d < %d for %s s\n%s" % (
                    self.name, pos, seq, timeout, self.log()[-3000:]))
            time.sleep(0.05)


def set_section(text, section, settings):
    """The config text with keys of [section] set (replaced or added)."""
    for key, value in settings.items():
        line = "%s = %s" % (key, value)
        pattern = re.compile(r"^%s\s*=.*$" % re.escape(key), re.M)
        start = text.index("[%s]" % section)
        end = text.find("\n[", start + 1)
        end = len(text) if end < 0 else end
        part = text[start:end]
        if pattern.search(part):
            part = pattern.sub(line, part, count=1)
        else:
            part = part.replace("[%s]\n" % section, "[%s]\n%s\n" % (section, line), 1)
        text = text[:start] + part + text[end:]
    return text


def drop_section(text, section):
    start = text.index("[%s]" % section)
    end = text.find("\n[", start + 1)
    return text[:start] + (text[end + 1:] if end >= 0 else "")


class WitnessProc(RegionProc):
    """The witness process (`tandem witness`): the third voter."""

    def __init__(self, deployment, port):
        RegionProc.__init__(self, deployment, "witness", port, port)
        self.addr = "127.0.0.1:%d" % port

    def start(self, timeout=20):
        assert not self.running(), "the witness is already running"
        log = open(self.log_path, "ab")
        log.write(("--- start witness at %.3f ---\n" % time.time()).encode())
        log.flush()
        r, w = os.pipe()
        env = dict(os.environ, TANDEM_READY_FD=str(w))
        self.proc = subprocess.Popen([TANDEM, "witness", "--config", self.deployment.config],
                                     stdout=log, stderr=log, pass_fds=(w,), env=env)
        log.close()
        os.close(w)
        import select
        ready, _, _ = select.select([r], [], [], timeout)
        line = os.read(r, 16) if ready else b""
        os.close(r)
        if not line.startswith(b"ready"):
            raise RuntimeError("the witness did not start: %s" % self.log()[-3000:])
        return self


class TwoRegions:
    """eu (primary) and us (secondary) of one `tandem init` deployment.

    witness=False (the default for the replication tests) removes the
    [witness] section: two voters, no automatic failover, fixed roles.
    witness=True starts the witness too (failover on); failover={...} sets
    [failover] keys, auth={...} [auth] keys."""

    def __init__(self, directory, replication=None, witness=False, failover=None, auth=None):
        self.dir = str(directory)
        os.makedirs(self.dir, exist_ok=True)
        self.port_base = free_port_base(count=10)
        run("init", "--address", "127.0.0.1", "--data", self.dir, "--port-base", str(self.port_base))
        self.config = os.path.join(self.dir, "tandem.ini")
        self.ca = os.path.join(self.dir, "certs", "ca.pem")
        self.certs = os.path.join(self.dir, "certs")
        with open(self.config) as f:
            text = f.read()
        if replication:
            text = set_replication(text, replication)
        if failover:
            text = set_section(text, "failover", failover)
        text = fast_hashing(raise_signup_limit(text))
        if auth:
            text = set_section(text, "auth", auth)
        if not witness:
            text = drop_section(text, "witness")
        with open(self.config, "w") as f:
            f.write(text)
        p = self.port_base
        self.eu = RegionProc(self, "eu", p, p + 2, metrics_port=p + 5)
        self.us = RegionProc(self, "us", p + 1, p + 3, metrics_port=p + 6)
        self.witness = WitnessProc(self, p + 4) if witness else None

    @property
    def regions(self):
        return [self.eu, self.us]

    def start(self):
        if self.witness:
            self.witness.start()
        self.eu.start()
        self.us.start()
        self.wait_synced()
        return self

    def stop_all(self, timeout=20):
        """Stop every running process (us first). {name: [exit codes]}."""
        for r in (self.us, self.eu) + ((self.witness,) if self.witness else ()):
            try:
                r.stop(timeout=timeout)
            except Exception:  # never leave a process behind
                if r.proc and r.proc.poll() is None:
                    r.proc.kill()
                    r.proc.wait()
        return {r.name: list(r.exit_codes) for r in self.regions + ([self.witness] if self.witness else [])}

    def logs(self, tail=4000):
        return "\n".join("== %s ==\n%s" % (r.name, r.log()[-tail:]) for r in self.regions)

    # --- command line ---

    def status(self):
        p = subprocess.run([TANDEM, "status", "--config", self.config, "--json"],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
        return json.loads(p.stdout)["regions"]

    def verify(self):
        return subprocess.run([TANDEM, "verify", "--config", self.config],
                              capture_output=True, text=True, timeout=120)

    # --- waiting ---

    def wait_synced(self, timeout=15):
        """Until us has applied everything eu has committed (and eu stays
        there for the check) and streams from eu: a secondary that has not
        heard from the primary yet (just started, or restored from a
        snapshot) answers tokens with 503 region_isolated. Returns the
        position."""
        deadline = time.time() + timeout
        while True:
            eu = self.eu.position()
            us = self.us.position()
            if us == eu and self.eu.position() == eu and self._us_streaming():
                return eu
            if time.time() > deadline:
                raise AssertionError("us did not catch up: eu at %d, us at %d\n%s" % (
                    eu, us, self.logs()))
            time.sleep(0.05)

    def _us_streaming(self):
        st = region_status(self.us)
        return bool(st) and st.get("role") == "secondary" and st["link"]["state"] == "up"

    def wait_quiet(self, timeout=10):
        """Until `tandem status` shows no lag on either side; the status."""
        deadline = time.time() + timeout
        while True:
            st = self.status()
            eu, us = st["eu"], st["us"]
            if ("error" not in eu and "error" not in us and eu["lag"]["positions"] == 0
                    and us["lag"]["positions"] == 0 and eu["last_seq"] == us["applied_seq"]):
                return st
            if time.time() > deadline:
                raise AssertionError("no quiet status within %s s: %s" % (timeout, st))
            time.sleep(0.1)


# --- failover helpers (tests/functional/test_failover.py) --------------------

def log_events(path, event=None):
    """The JSON lines of a log file that carry an "event" (or that event),
    in file order; each with "_t" = its time as a Unix timestamp."""
    import datetime
    out = []
    try:
        with open(path, "r", errors="replace") as f:
            lines = f.readlines()
    except OSError:
        return out
    for line in lines:
        if '"event"' not in line:
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if "event" not in obj or (event and obj["event"] != event):
            continue
        t = obj.get("time", "")
        try:
            obj["_t"] = datetime.datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                tzinfo=datetime.timezone.utc).timestamp()
        except ValueError:
            obj["_t"] = None
        out.append(obj)
    return out


def writes_intervals(region, now=None):
    """[(on, off)] times during which `region` accepted writes, from the
    writes_on / writes_off events of its log. An interval still open when
    the process was killed (kill -9 logs nothing) ends at the kill; one
    still open now ends now."""
    timeline = [(e["_t"] or 0, e["event"]) for e in log_events(region.log_path)
                if e["event"] in ("writes_on", "writes_off")]
    timeline += [(k, "kill") for k in region.killed_at]
    timeline.sort(key=lambda x: x[0])
    spans, on = [], None
    for t, what in timeline:
        if what == "writes_on" and on is None:
            on = t
        elif what in ("writes_off", "kill") and on is not None:
            spans.append((on, t))
            on = None
    if on is not None:
        spans.append((on, now or time.time()))
    return spans


class Link:
    """Requests on the link ports, with a certificate of the deployment's CA
    (eu, us, witness or admin). Every call opens a new connection."""

    def __init__(self, deployment):
        self.d = deployment

    def cert(self, name):
        return (os.path.join(self.d.certs, name + ".pem"), os.path.join(self.d.certs, name + ".key"))

    def port(self, target):
        if target == "witness":
            return self.d.witness.port
        return getattr(self.d, target).link_port

    def request(self, target, method, path, as_, json_body=None, data=None, headers=None, timeout=10):
        with requests.Session() as s:
            s.trust_env = False
            return s.request(method, "https://127.0.0.1:%d%s" % (self.port(target), path),
                             json=json_body, data=data, headers=headers or {}, verify=self.d.ca,
                             cert=self.cert(as_), timeout=timeout)

    def post(self, target, path, as_, body=None, **kw):
        return self.request(target, "POST", path, as_, json_body=body, **kw)

    def get(self, target, path, as_, **kw):
        return self.request(target, "GET", path, as_, **kw)

    def fault(self, region, isolate):
        """The fault switch: `region` drops all link traffic with `isolate`."""
        r = self.post(region, "/internal/v1/admin/fault", "admin", {"isolate": list(isolate)})
        assert r.status_code == 200, (region, r.status_code, r.text)
        assert r.json() == {"isolated": list(isolate)}, r.text
        return r.json()

    def status(self, target, timeout=5):
        r = self.get(target, "/internal/v1/status", "admin", timeout=timeout)
        assert r.status_code == 200, (target, r.status_code, r.text)
        return r.json()


def region_status(region, timeout=3):
    """GET /internal/v1/status of one region (admin certificate); None if
    it does not answer."""
    try:
        return Link(region.deployment).status(region.name, timeout=timeout)
    except requests.RequestException:
        return None


def wait_for(predicate, timeout, interval=0.05, what="condition", detail=None):
    """Poll predicate until it returns something true; its value. On
    timeout, AssertionError naming `what`, plus detail() if given."""
    deadline = time.time() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.time() > deadline:
            raise AssertionError("%s not reached within %s s (last: %r)%s" % (
                what, timeout, last, ("\n" + detail()) if detail else ""))
        time.sleep(interval)


def diagnose(deployment, tail=15):
    """What each process of a deployment looks like right now: does it
    answer, its status, the end of its log without request lines."""
    out = []
    for r in deployment.regions + ([deployment.witness] if deployment.witness else []):
        alive = r.running()
        answers = False
        if alive:
            try:
                answers = requests.get(r.url + "/healthz", verify=r.ca, timeout=2).status_code == 200 \
                    if r.name != "witness" else True
            except requests.RequestException:
                answers = False
        st = None
        if alive and r.name != "witness":
            st = region_status(r, timeout=2)
        lines = [x for x in r.log().splitlines() if '"msg":"request"' not in x][-tail:]
        out.append("== %s: %s, %s\n   status: %s\n   %s" % (
            r.name, "running" if alive else "not running",
            "answers" if answers else "DOES NOT ANSWER", json.dumps(st)[:1500] if st else st,
            "\n   ".join(x[:400] for x in lines)))
    return "\n".join(out)


def wait_writable(region, timeout=10, epoch=None):
    """Until `region` is primary with a valid lease (and of `epoch`, if
    given). Its status."""
    def ok():
        st = region_status(region)
        if st and st["role"] == "primary" and st["lease"]["valid"] and (epoch is None or st["epoch"] == epoch):
            return st
        return None
    return wait_for(ok, timeout, what="%s primary with a lease%s" % (
        region.name, "" if epoch is None else " in epoch %d" % epoch),
        detail=lambda: diagnose(region.deployment))


def wait_follower(primary, secondary, timeout=20):
    """Until `secondary` is a secondary that has applied everything
    `primary` (a primary) has committed, with the link up. Its position."""
    def ok():
        p, s = region_status(primary), region_status(secondary)
        if not p or not s or p["role"] != "primary" or s["role"] != "secondary":
            return None
        if s["epoch"] != p["epoch"] or s["applied_seq"] != p["last_seq"] or s["link"]["state"] != "up":
            return None
        again = region_status(primary)
        return (p["last_seq"],) if again and again["last_seq"] == p["last_seq"] else None
    return wait_for(ok, timeout, interval=0.1, what="%s following %s" % (secondary.name, primary.name),
                    detail=lambda: diagnose(primary.deployment))[0]
