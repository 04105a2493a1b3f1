"""Failover without split brain (docs/FAILOVER.md), against REAL processes:
the witness (`tandem witness`), eu (primary) and us (secondary), started by
regions.TwoRegions(witness=True).

  1. kill -9 of the primary: automatic failover within 10 s, nothing lost
  2. losing the witness, or the secondary, changes nothing for writes
  3. a primary cut off from both voters stops taking writes (no_quorum after
     isolation_ms, then no_lease) and the other region takes over, never
     both at once; healed before its lease ends, it takes writes again
  4. rejoin after divergent writes: reverted into the quarantine; when they
     were trimmed from the log, the whole database is copied there instead
  5. messages from an older epoch are refused (stale_epoch), bad ballots 400
  6. `tandem failover`: refused while the primary holds its lease, --force
  7. `tandem switchover`: RPO 0, short write outage, and back
  8. an idempotent retry in the other region after a failover lands once
  9. configuration: unsafe timings refused, witness without [witness],
     voter state files private

Every deployment is checked at teardown: clean exits, and the writes_on /
writes_off intervals of eu and us (from their logs) never overlap.

Run: cd /work/main && /usr/bin/python3 -m pytest -q tests/functional/test_failover.py
"""
import datetime
import json
import os
import re
import signal
import sqlite3
import stat
import threading
import time
import uuid

import pytest
import requests

from conftest import TANDEM, free_port_base, run
from regions import (EVENTUAL, Link, TwoRegions, create, diagnose, drop_section, list_all, log_events, lsn_seq,
                     records_path, region_status, set_section, signup, wait_follower, wait_for, wait_writable,
                     writes_intervals)

LSN_RE = re.compile(r"^(\d+)/(\d+)$")
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
# what a client may get while there is no primary able to take a write
OUTAGE_CODES = {"primary_unavailable", "no_lease", "no_quorum", "not_primary", "switchover_in_progress"}
# what a cut-off primary answers: no_quorum once it has heard from no other
# voter for isolation_ms, no_lease once its lease ran out
CUT_OFF_CODES = {"no_quorum", "no_lease"}


# --- helpers -----------------------------------------------------------------

def error_code(response):
    try:
        body = response.json()
    except ValueError:
        raise AssertionError("not a JSON error body: %d %r" % (response.status_code, response.text[:300]))
    assert set(body) == {"error"}, body
    assert isinstance(body["error"].get("message"), str) and body["error"]["message"], body
    return body["error"]["code"]


def epoch_of(lsn):
    m = LSN_RE.match(lsn or "")
    assert m, "not a position: %r" % (lsn,)
    return int(m.group(1))


def by_key(region, token, collection, run_id):
    """{data.key: [records]} of one run."""
    out = {}
    for rec in list_all(region, token, collection, filter_="run = '%s'" % run_id, headers=EVENTUAL):
        out.setdefault(rec["data"]["key"], []).append(rec)
    return out


def assert_present_once(pair, token, collection, run_id, acked):
    """Every acknowledged write {key: record} is in both regions exactly
    once, as acknowledged; nothing of the run is there twice."""
    for region in pair.regions:
        got = by_key(region, token, collection, run_id)
        dupes = {k: len(v) for k, v in got.items() if len(v) != 1}
        assert not dupes, (region.name, "written twice", dupes)
        missing = sorted(set(acked) - set(got))
        assert not missing, (region.name, "acknowledged writes lost", len(missing), missing[:10])
        for key, rec in acked.items():
            assert got[key][0]["id"] == rec["id"], (region.name, key, got[key][0], rec)
            assert got[key][0]["data"] == rec["data"], (region.name, key)


def assert_verify_identical(pair):
    v = pair.verify()
    assert v.returncode == 0, (v.returncode, v.stdout, v.stderr, pair.logs())
    assert v.stdout.strip().splitlines()[-1] == "identical", v.stdout


def cli(*args, timeout=60):
    import subprocess
    return subprocess.run([TANDEM, *args], capture_output=True, text=True, timeout=timeout)


def cli_failed(out, pair):
    return "tandem %s: exit %d\nstdout: %s\nstderr: %s\n%s" % (
        " ".join(out.args[1:2]), out.returncode, out.stdout, out.stderr, diagnose(pair))


def overlaps(a, b):
    """Pairs of intervals of a and b that overlap."""
    return [(x, y) for x in a for y in b if x[0] < y[1] and y[0] < x[1]]


_running_writers = []  # stopped by the make_pair fixture, even when a test fails


class Writer:
    """Client threads POSTing records (unique key, Idempotency-Key) to one
    region until stopped; every outcome is recorded with its times."""

    def __init__(self, token, collection="w", run_id=None, headers=None, pause=0.02, timeout=8):
        self.token = token
        self.collection = collection
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.headers = dict(headers or {})
        self.pause = pause
        self.timeout = timeout
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.results = []
        self.threads = []
        _running_writers.append(self)

    def worker(self, region, tag):
        n = 0
        while not self.stop_event.is_set():
            n += 1
            key = "%s-%s-%d" % (self.run_id, tag, n)
            body = {"run": self.run_id, "key": key}
            h = dict(self.headers, **{"Idempotency-Key": key})
            t_send, m0 = time.time(), time.monotonic()
            res = {"key": key, "region": region.name, "body": body, "t_send": t_send}
            try:
                r = region.post(records_path(self.collection), self.token, json=body, headers=h,
                                timeout=self.timeout)
                res.update(status=r.status_code, retry_after=r.headers.get("Retry-After"),
                           lsn=r.headers.get("X-Tandem-LSN"))
                if r.status_code == 201:
                    res["record"] = r.json()
                else:
                    try:
                        res["code"] = r.json()["error"]["code"]
                    except (ValueError, KeyError, TypeError):
                        res["code"] = "?" + r.text[:100]
            except requests.RequestException as e:
                res.update(status=None, error=repr(e)[:200])
            res["t_done"] = time.time()
            res["took"] = time.monotonic() - m0
            with self.lock:
                self.results.append(res)
            time.sleep(self.pause)

    def start(self, region, threads=1):
        for i in range(threads):
            t = threading.Thread(target=self.worker, args=(region, "%s%d" % (region.name, len(self.threads))),
                                 daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def finish(self):
        self.stop_event.set()
        for t in self.threads:
            t.join(30)
            assert not t.is_alive(), "a writer thread hangs"

    def snapshot(self):
        with self.lock:
            return list(self.results)

    def acked(self):
        return {r["key"]: r["record"] for r in self.snapshot() if r["status"] == 201}

    def failures(self):
        return [r for r in self.snapshot() if r["status"] != 201]

    def assert_failures_are_clean(self, codes=OUTAGE_CODES):
        """Every failed write is a 503 with Retry-After and a known code:
        never a hang, a dropped connection or another error."""
        bad = [r for r in self.failures()
               if r["status"] != 503 or not r.get("retry_after") or r.get("code") not in codes]
        assert not bad, bad[:5]


def outage(results, region_name, around):
    """Client-side write outage at one region around time `around`: from the
    completion of the last success before the first failure (or before
    `around`) to the completion of the first success after. Seconds."""
    rs = sorted((r for r in results if r["region"] == region_name), key=lambda r: r["t_send"])
    fails = [r for r in rs if r["status"] != 201 and r["t_send"] >= around - 1]
    start_t = fails[0]["t_send"] if fails else around
    before = [r for r in rs if r["status"] == 201 and r["t_done"] <= start_t]
    after = [r for r in rs if r["status"] == 201 and r["t_send"] >= (fails[-1]["t_send"] if fails else around)]
    assert before, "no successful write at %s before the switch" % region_name
    assert after, "no successful write at %s after the switch" % region_name
    return after[0]["t_done"] - before[-1]["t_done"]


def assert_no_overlap(pair):
    """eu and us never accepted writes at the same time: the intervals
    between their writes_on and writes_off events (kill -9 ends one) do
    not intersect."""
    pair.overlap_checked = True
    eu, us = writes_intervals(pair.eu), writes_intervals(pair.us)
    both = overlaps(eu, us)
    assert not both, "eu and us accepted writes at the same time (overlap %.3f s): %s\neu %s\nus %s\n%s" % (
        max(min(a[1], b[1]) - max(a[0], b[0]) for a, b in both), both, eu, us, diagnose(pair))


def deployment_checks(pair):
    """Teardown: every stop was clean (a region that ignores SIGTERM for
    10 s is killed and reported), and, unless the test checked it itself,
    eu and us never accepted writes at the same time."""
    codes = pair.stop_all(timeout=10)
    bad = {name: c for name, c in codes.items() if any(x not in (0, None) for x in c)}
    assert not bad, "unclean exits %s\n%s" % (bad, pair.logs())
    if not getattr(pair, "overlap_checked", False):
        assert_no_overlap(pair)


@pytest.fixture
def make_pair(tmp_path):
    made = []

    def make(start=True, failover=None, replication=None):
        p = TwoRegions(tmp_path / ("d%d" % len(made)), witness=True, failover=failover,
                       replication=replication)
        made.append(p)
        if start:
            p.start()
            wait_writable(p.eu, timeout=10, epoch=1)
        return p

    yield make
    while _running_writers:
        w = _running_writers.pop()
        w.stop_event.set()
        for t in w.threads:
            t.join(30)
    errors = []
    for p in made:
        try:
            deployment_checks(p)
        except AssertionError as e:
            errors.append(str(e))
    assert not errors, "\n".join(errors)


def steady(pair):
    """Until both other voters hold a binding grant to eu (eu renewed with
    each at least once)."""
    def ok():
        us = region_status(pair.us)
        w = Link(pair).status("witness")
        return (us and us["failover"]["grant"]["holder"] == "eu" and us["failover"]["grant"]["binding"]
                and w["grant"]["holder"] == "eu" and w["grant"]["binding"])
    wait_for(ok, 5, what="grants to eu at us and the witness")


# --- 1. automatic failover after kill -9 of the primary ----------------------

def test_kill9_of_the_primary_fails_over_within_10s_and_loses_nothing(make_pair):
    p = make_pair(replication={"reconnect_max_ms": 300})
    eu, us = p.eu, p.us
    u = signup(eu)
    tok = u["access_token"]
    base = create(eu, tok, "base", {"n": 1}).json()
    wait_follower(eu, us)
    steady(p)

    # reads at us, throughout
    reads = []
    stop_reads = threading.Event()

    def reader():
        while not stop_reads.is_set():
            t = time.time()
            try:
                r = us.get(records_path("base", base["id"]), tok, timeout=8)
                reads.append((t, r.status_code, r.text[:200] if r.status_code != 200 else r.json() == base))
            except requests.RequestException as e:
                reads.append((t, None, repr(e)[:200]))
            time.sleep(0.05)
    rt = threading.Thread(target=reader, daemon=True)
    rt.start()

    w = Writer(tok, collection="loop").start(us, threads=2)
    wait_for(lambda: len(w.acked()) >= 10, 10, what="writes at us before the kill")
    t_kill = time.time()
    eu.kill9()

    def first_success_after_kill():
        ok = [r for r in w.snapshot() if r["status"] == 201 and r["t_send"] > t_kill]
        return min(ok, key=lambda r: r["t_done"]) if ok else None
    try:
        first = wait_for(first_success_after_kill, 15, interval=0.05, what="a write accepted at us after the kill",
                         detail=lambda: diagnose(p))
    except AssertionError:
        stop_reads.set()
        raise
    took = first["t_done"] - t_kill
    print("failover: us accepted a write %.2f s after kill -9 of eu" % took)
    assert took <= 10.0, took
    time.sleep(0.5)  # a few more writes in the new epoch (not an assertion)
    w.finish()
    stop_reads.set()
    rt.join(10)

    # during the outage: only 503 + Retry-After, nothing hung
    w.assert_failures_are_clean()
    assert w.failures(), "the kill failed no write at all: was us still forwarding to a live eu?"
    assert max(r["took"] for r in w.snapshot()) < w.timeout
    # reads at us never failed
    bad_reads = [x for x in reads if x[1] != 200 or x[2] is not True]
    assert not bad_reads, bad_reads[:5]
    assert any(t > t_kill + took for t, _, _ in reads), "no read after the failover"

    # us is primary of epoch 2; writes after the failover carry epoch 2
    st = wait_writable(us, epoch=2)
    assert st["failover"]["elections_won"] == 1, st
    after = [r for r in w.snapshot() if r["status"] == 201 and r["t_send"] > t_kill]
    assert after and all(epoch_of(r["lsn"]) == 2 for r in after), [r["lsn"] for r in after]
    before = [r for r in w.snapshot() if r["status"] == 201 and r["t_done"] < t_kill]
    assert all(epoch_of(r["lsn"]) == 1 for r in before), [r["lsn"] for r in before]
    on = [e for e in log_events(us.log_path, "writes_on") if e.get("epoch") == 2]
    assert on and on[0]["region"] == "us", log_events(us.log_path)

    # eu comes back as a secondary of epoch 2, and catches up
    eu.start()
    wait_follower(us, eu, timeout=20)
    st = p.status()
    assert st["eu"]["role"] == "secondary" and st["eu"]["epoch"] == 2, st["eu"]
    assert st["us"]["role"] == "primary" and st["us"]["epoch"] == 2, st["us"]
    assert st["eu"]["failover"]["promised_epoch"] == 2, st["eu"]
    assert_verify_identical(p)
    # every acknowledged write, in both regions, once
    assert_present_once(p, tok, "loop", w.run_id, w.acked())
    g = eu.get(records_path("base", base["id"]), tok)
    assert g.status_code == 200 and g.json() == base, g.text
    # and the deployment takes writes again in both regions
    create(us, tok, "base", {"n": 2})
    r = create(eu, tok, "base", {"n": 3})
    assert r.headers["X-Tandem-Region"] == "eu" and epoch_of(r.headers["X-Tandem-LSN"]) == 2
    assert_no_overlap(p)


# --- 2. losing the witness, or the secondary, changes nothing ----------------

def write_for(seconds, regions, token, collection, run_id, lease_of=None):
    """Sequential writes alternating between regions for `seconds`; every
    one must succeed. Meanwhile `lease_of` (a region) must keep a valid
    lease. {key: record}."""
    acked = {}
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        region = regions[n % len(regions)]
        n += 1
        key = "%s-%d" % (run_id, n)
        body = {"run": run_id, "key": key}
        r = region.post(records_path(collection), token, json=body, headers={"Idempotency-Key": key},
                        timeout=8)
        assert r.status_code == 201, (region.name, n, r.status_code, r.text)
        acked[key] = r.json()
        if lease_of is not None and n % 3 == 0:
            st = region_status(lease_of)
            assert st["role"] == "primary" and st["lease"]["valid"] and st["epoch"] == 1, st
        time.sleep(0.05)
    return acked


def test_losing_the_witness_or_the_secondary_changes_nothing(make_pair):
    p = make_pair()
    eu, us, wit = p.eu, p.us, p.witness
    link = Link(p)
    tok = signup(eu)["access_token"]
    run_id = uuid.uuid4().hex[:12]
    steady(p)

    # the witness killed: writes at both regions go on for longer than a
    # lease (renewals with us alone), eu keeps its lease
    wit.kill9()
    acked = write_for(5.5, [eu, us], tok, "keep", run_id + "a", lease_of=eu)
    st = p.status()
    assert st["eu"]["role"] == "primary" and st["eu"]["epoch"] == 1, st["eu"]
    assert st["us"]["role"] == "secondary" and st["us"]["epoch"] == 1, st["us"]
    for name in ("eu", "us"):
        assert st[name]["failover"]["elections_won"] == 0 and st[name]["failover"]["step_downs"] == 0, st[name]
        assert st[name]["failover"]["promised_epoch"] == 1, st[name]
    # the witness back: it grants eu again
    wit.start()

    def witness_grants_eu():
        w = link.status("witness")
        return w["grant"]["holder"] == "eu" and w["grant"]["epoch"] == 1 and w["grant"]["binding"] and w
    w = wait_for(witness_grants_eu, 5, what="the restarted witness granting eu")
    assert w["promised_epoch"] == 1, w
    acked.update(write_for(0.5, [eu, us], tok, "keep", run_id + "b"))

    # the secondary killed: writes at eu go on (lease from the witness)
    us.kill9()
    acked.update(write_for(5.5, [eu], tok, "keep", run_id + "c", lease_of=eu))
    st = region_status(eu)
    assert st["role"] == "primary" and st["epoch"] == 1 and st["failover"]["step_downs"] == 0, st
    us.start()
    wait_follower(eu, us)
    st = p.status()
    assert st["us"]["role"] == "secondary" and st["us"]["epoch"] == 1, st["us"]
    acked.update(write_for(0.5, [eu, us], tok, "keep", run_id + "d"))
    wait_follower(eu, us)
    assert_verify_identical(p)
    for region in (eu, us):
        got = {r["id"]: r for r in list_all(region, tok, "keep", headers=EVENTUAL)}
        assert set(got) == {r["id"] for r in acked.values()}, (region.name, len(got), len(acked))
    # no election happened at all
    for region in (eu, us):
        assert not [e for e in log_events(region.log_path, "role")], log_events(region.log_path, "role")


# --- 3. a primary without a lease refuses writes -------------------------------

def partition_writes(eu, token, collection, run_id, t0, limit=8.0):
    """Sequential writes at eu (cut off) until the first refusal. Returns
    (acked {key: record}, sent keys, the first refusal, its send time, the
    time the last acknowledgement arrived)."""
    acked, sent = {}, []
    n = 0
    last_ack = None
    while True:
        n += 1
        key = "%s-p%d" % (run_id, n)
        body = {"run": run_id, "key": key}
        t = time.time()
        r = eu.post(records_path(collection), token, json=body, headers={"Idempotency-Key": key}, timeout=8)
        sent.append(key)
        if r.status_code != 201:
            return acked, sent, r, t, last_ack
        last_ack = time.time()
        acked[key] = r.json()
        assert time.time() - t0 < limit, "eu still accepts writes %.1f s after it was cut off" % (time.time() - t0)
        time.sleep(0.05)


def test_primary_cut_off_from_the_voters_stops_writes_and_us_takes_over(make_pair):
    p = make_pair()
    eu, us = p.eu, p.us
    link = Link(p)
    tok = signup(eu)["access_token"]
    pre = create(eu, tok, "cut", {"run": "pre", "key": "pre"}).json()
    wait_follower(eu, us)
    steady(p)
    run_id = uuid.uuid4().hex[:12]

    t0 = time.time()
    link.fault("eu", ["us", "witness"])
    acked, sent, refused, t_refused, last_ack = partition_writes(eu, tok, "cut", run_id, t0)
    print("eu: %d writes accepted after the cut, refused %.2f s after it" % (len(acked), t_refused - t0))
    # it heard from the voters at most a moment before the cut: refused
    # isolation_ms (1 s) later, long before its lease (3.76 s) runs out
    assert t_refused - t0 <= 1.6, t_refused - t0
    assert refused.status_code == 503, refused.text
    assert error_code(refused) == "no_quorum", refused.text
    assert refused.headers.get("Retry-After") == "1", dict(refused.headers)
    assert refused.headers["X-Tandem-Region"] == "eu"
    assert "X-Tandem-LSN" not in refused.headers, dict(refused.headers)
    # and from then on, every write at eu is refused, reads are served
    for i in range(3):
        r = eu.post(records_path("cut"), tok, json={"run": run_id, "key": "late%d" % i})
        assert r.status_code == 503 and error_code(r) in CUT_OFF_CODES, r.text
        assert r.headers.get("Retry-After") == "1"
    g = eu.get(records_path("cut", pre["id"]), tok)
    assert g.status_code == 200 and g.json() == pre, g.text
    if acked:  # its own last writes are readable there too
        last = list(acked.values())[-1]
        g = eu.get(records_path("cut", last["id"]), tok)
        assert g.status_code == 200 and g.json() == last, g.text
    wait_for(lambda: region_status(eu)["lease"]["valid"] is False, 6, what="eu's lease expired")
    st = region_status(eu)
    assert st["lease"]["valid"] is False and sorted(st["isolated"]) == ["us", "witness"], st

    # us takes over: primary of epoch 2, accepting writes
    st = wait_writable(us, timeout=10, epoch=2)
    r = create(us, tok, "cut", {"run": "us", "key": "us1"})
    assert epoch_of(r.headers["X-Tandem-LSN"]) == 2
    t_us = time.time()
    print("us accepts writes %.2f s after the cut" % (t_us - t0))
    # eu still refuses (it is cut off, it has not even learnt of epoch 2)
    r = eu.post(records_path("cut"), tok, json={"run": run_id, "key": "later"})
    assert r.status_code == 503 and error_code(r) == "no_lease", r.text

    # never both accepting: the intervals in the logs do not overlap, and
    # eu's last interval ended before us's began
    assert_no_overlap(p)
    us_e2 = [e["_t"] for e in log_events(us.log_path, "writes_on") if e.get("epoch") == 2]
    eu_off = [e["_t"] for e in log_events(eu.log_path, "writes_off") if e["_t"] >= t0 - 0.01]
    assert us_e2 and eu_off, (log_events(us.log_path), log_events(eu.log_path))
    assert eu_off[0] <= us_e2[0], (eu_off, us_e2)
    # the client's view agrees: eu's last acknowledgement arrived before us
    # took its first write
    assert acked and last_ack < us_e2[0], (last_ack, us_e2)

    # heal: eu follows us, and the two agree
    link.fault("eu", [])
    wait_follower(us, eu, timeout=20)
    assert_verify_identical(p)


def test_cut_off_primary_refuses_writes_no_quorum_long_before_its_lease_ends(make_pair):
    """Issue 9 item 2, the bug it pins: a primary cut off from both other
    voters kept acknowledging writes until its lease ran out (3.76 s here),
    every one of them lost to the clients' view. Now it refuses them with
    503 no_quorum isolation_ms (1 s) after it last heard from a voter, while
    its lease is still valid; reads go on; /readyz, status and /metrics say
    so; healed before anyone else is elected, it takes writes again (no
    failover). On the old code the first refusal is no_lease after ~3.7 s."""
    p = make_pair()
    eu, us = p.eu, p.us
    link = Link(p)
    tok = signup(eu)["access_token"]
    pre = create(eu, tok, "iso", {"run": "pre", "key": "pre"}).json()
    wait_follower(eu, us)
    steady(p)
    assert eu.readyz()["write_gate"] == "open"
    assert eu.metric("tandem_no_quorum") == 0
    run_id = uuid.uuid4().hex[:12]

    t0 = time.time()
    link.fault("eu", ["us", "witness"])
    acked, sent, refused, t_refused, last_ack = partition_writes(eu, tok, "iso", run_id, t0)
    print("eu: %d writes acknowledged after the cut, refused %.2f s after it" % (len(acked), t_refused - t0))
    assert refused.status_code == 503, refused.text
    assert error_code(refused) == "no_quorum", refused.text
    assert refused.headers.get("Retry-After") == "1", dict(refused.headers)
    assert "X-Tandem-LSN" not in refused.headers, dict(refused.headers)
    # isolation_ms after the last answer (a moment before the cut), plus a
    # tick: far below the lease's 3.76 s
    assert t_refused - t0 <= 1.5, t_refused - t0
    assert last_ack is None or last_ack - t0 <= 1.3, last_ack - t0
    # the lease is still valid: it is the new gate that refuses
    st = region_status(eu)
    assert st["lease"]["valid"] is True and st["lease"]["remaining_ms"] > 0, st
    q = st["quorum"]
    assert q["gate"] is True and q["heard"] is False and q["isolation_ms"] == 1000, q
    assert q["heard_ms_ago"] >= 1000 and q["refusals"] >= 1, q
    ready = eu.readyz()
    assert ready["write_gate"] == "no_quorum" and ready["role"] == "primary", ready
    assert eu.metric("tandem_no_quorum") == 1
    assert eu.metric("tandem_no_quorum_refusals_total") >= 1
    # reads go on
    g = eu.get(records_path("iso", pre["id"]), tok)
    assert g.status_code == 200 and g.json() == pre, g.text
    # the log says why writes stopped
    def isolated_logged():
        offs = [e for e in log_events(eu.log_path, "writes_off") if e["_t"] >= t0 - 0.01]
        return offs and offs
    offs = wait_for(isolated_logged, 2, what="eu logging writes_off")
    assert "isolated" in offs[0]["msg"], offs

    # healed while its lease still runs (us has not stood yet): it hears
    # from the voters again and takes writes, still primary of epoch 1
    link.fault("eu", [])
    def writable_again():
        r = eu.post(records_path("iso"), tok, json={"run": run_id, "key": "after"}, timeout=5)
        return r.status_code == 201 and r
    r = wait_for(writable_again, 3, interval=0.1, what="eu taking writes after the heal")
    assert epoch_of(r.headers["X-Tandem-LSN"]) == 1, r.headers
    assert eu.readyz()["write_gate"] == "open"
    st = p.status()
    assert st["eu"]["role"] == "primary" and st["eu"]["epoch"] == 1, st["eu"]
    assert st["us"]["failover"]["elections_won"] == 0, st["us"]
    wait_follower(eu, us)
    assert_verify_identical(p)


def test_without_a_witness_there_is_no_isolation_gate(tmp_path):
    """The isolation gate needs another voter to hear from: without a
    [witness] (two voters, no failover, fixed roles) a primary whose link is
    cut keeps taking writes past isolation_ms, as before (a guard for the
    new gate: it must not turn a link outage into a write outage there)."""
    p = TwoRegions(tmp_path / "nowit", witness=False)
    p.start()
    try:
        eu, us = p.eu, p.us
        link = Link(p)
        tok = signup(eu)["access_token"]
        wait_follower(eu, us)
        link.fault("eu", ["us"])
        t0 = time.time()
        n = 0
        while time.time() - t0 < 1.8:
            n += 1
            r = eu.post(records_path("nowit"), tok, json={"key": n}, timeout=5)
            assert r.status_code == 201, (time.time() - t0, r.status_code, r.text)
            time.sleep(0.1)
        st = region_status(eu)
        assert st["quorum"]["gate"] is False and st["quorum"]["heard"] is True, st["quorum"]
        assert eu.readyz()["write_gate"] == "open"
        assert eu.metric("tandem_no_quorum") == 0
        link.fault("eu", [])
    finally:
        p.stop_all()


# --- 4. rejoin with divergent writes: the quarantine ---------------------------

def test_rejoin_quarantines_the_writes_the_new_primary_never_got(make_pair):
    p = make_pair()
    eu, us = p.eu, p.us
    link = Link(p)
    tok = signup(eu)["access_token"]
    run_id = uuid.uuid4().hex[:12]
    pre = {}
    for i in range(4):
        key = "%s-pre%d" % (run_id, i)
        pre[key] = create(eu, tok, "div", {"run": run_id, "key": key}).json()
    pre_keys = list(pre)
    wait_follower(eu, us)
    steady(p)

    t0 = time.time()
    link.fault("eu", ["us", "witness"])
    # during the partition, eu changes two old records too: an update and a
    # delete (both acknowledged, both to be taken back)
    upd_key, del_key = pre_keys[0], pre_keys[1]
    r = eu.request("PATCH", records_path("div", pre[upd_key]["id"]), tok, json={"changed": True},
                   headers={"If-Match": '"%d"' % pre[upd_key]["version"]})
    assert r.status_code == 200, r.text
    updated = r.json()
    r = eu.request("DELETE", records_path("div", pre[del_key]["id"]), tok)
    assert r.status_code == 204, r.text
    acked, sent, refused, t_refused, _ = partition_writes(eu, tok, "div", run_id, t0)
    assert acked, "eu acknowledged nothing during the partition: the test proves nothing"
    assert refused.status_code == 503 and error_code(refused) in CUT_OFF_CODES, refused.text
    eu_last = region_status(eu)["last_seq"]

    # us takes over and takes writes of its own
    wait_writable(us, timeout=10, epoch=2)
    mine = {}
    for i in range(3):
        key = "%s-us%d" % (run_id, i)
        mine[key] = create(us, tok, "div", {"run": run_id, "key": key}).json()
    st_us = region_status(us)
    start = [e for e in log_events(us.log_path, "role") if e.get("role") == "primary"][-1]["position"]

    # heal: eu learns epoch 2, steps down, quarantines, follows
    link.fault("eu", [])
    wait_follower(us, eu, timeout=20)
    st = p.status()
    assert st["eu"]["role"] == "secondary" and st["eu"]["epoch"] == 2, st["eu"]
    assert st["eu"]["failover"]["step_downs"] == 1, st["eu"]

    # the quarantine file
    qdir = os.path.join(p.dir, "data", "eu", "quarantine")
    name = "eu-e1-to-e2.jsonl"
    path = os.path.join(qdir, name)
    assert os.listdir(qdir) == [name], os.listdir(qdir)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, oct(os.stat(path).st_mode)
    with open(path) as f:
        lines = [json.loads(line) for line in f.read().splitlines()]
    n = len(lines)
    # every transaction eu committed after the new epoch's start: the
    # acknowledged ones (and at most the one that committed as the lease ended)
    expected = eu_last - start
    assert n == expected, (n, expected, eu_last, start)
    positions = [x["position"] for x in lines]
    assert positions == list(range(start + 1, eu_last + 1)), positions
    inserted, updates, deletes = {}, [], []
    for x in lines:
        assert x["epoch"] == 1, x
        assert ISO.match(x["time"]), x
        assert x["changes"], x
        for c in x["changes"]:
            assert set(c) == {"table", "before", "after"}, c
            if c["table"] != "records":
                continue
            if c["before"] is None:
                inserted[c["after"]["id"]] = (x, c["after"])
            elif c["after"] is None:
                deletes.append(c["before"])
            else:
                updates.append(c)
    for key, rec in acked.items():
        assert rec["id"] in inserted, (key, rec["id"], "not in the quarantine")
        row = inserted[rec["id"]][1]
        assert row["id"] == rec["id"] and row["owner"] == rec["owner"], row
        assert json.loads(row["data"]) == {"run": run_id, "key": key}, row
    # nothing we did not send
    sent_keys = set(sent)
    extra = [json.loads(row["data"])["key"] for _, row in inserted.values()]
    assert set(extra) <= sent_keys, set(extra) - sent_keys
    assert len(updates) == 1 and updates[0]["before"]["id"] == pre[upd_key]["id"], updates
    assert json.loads(updates[0]["after"]["data"]) == updated["data"], updates
    assert json.loads(updates[0]["before"]["data"]) == pre[upd_key]["data"], updates
    assert len(deletes) == 1 and deletes[0]["id"] == pre[del_key]["id"], deletes
    # the quarantined transactions, in time order, all from the partition
    times = [x["time"] for x in lines]
    assert times == sorted(times), times
    stamps = [datetime.datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp() for t in times]
    assert t0 - 0.5 <= stamps[0] and stamps[-1] <= t_refused + 0.5, (t0, times, t_refused)

    # status, log event, command line
    assert st["eu"]["quarantined_transactions"] == n, st["eu"]
    assert st["us"]["quarantined_transactions"] == 0, st["us"]
    ev = log_events(eu.log_path, "quarantine")
    assert len(ev) == 1 and ev[0]["count"] == n and ev[0]["file"].endswith("/" + name), ev
    out = cli("quarantine", "list", "--config", p.config)
    assert out.returncode == 0, (out.stdout, out.stderr)
    assert re.search(r"^eu\s+%s\s+%d transactions" % (re.escape(name), n), out.stdout, re.M), out.stdout
    assert "%d quarantined transactions" % n in out.stdout, out.stdout
    out = cli("quarantine", "show", "--config", p.config, name)
    assert out.returncode == 0, (out.stdout, out.stderr)
    assert [json.loads(x) for x in out.stdout.splitlines()] == lines
    out = cli("quarantine", "show", "--config", p.config, "nope.jsonl")
    assert out.returncode != 0 and "nope.jsonl" in out.stderr, (out.stdout, out.stderr)

    # the data: the partition's writes are gone in both regions, everything
    # else is there as it was
    for region in (eu, us):
        for key, rec in acked.items():
            g = region.get(records_path("div", rec["id"]), tok)
            assert g.status_code == 404, (region.name, key, g.status_code, g.text)
        got = {x["id"]: x for x in list_all(region, tok, "div", headers=EVENTUAL)}
        want = {x["id"]: x for x in list(pre.values()) + list(mine.values())}
        assert got == want, (region.name, sorted(set(got) ^ set(want)))
    assert st_us["role"] == "primary"
    assert_verify_identical(p)
    assert_no_overlap(p)
    # docs/FAILOVER.md: "The quarantine is reported (log at `warn`, ...)"
    assert ev[0]["level"] == "warn", ("the quarantine event is not logged at warn", ev[0])


def repl_log_span(path):
    """(min seq, max seq, total payload bytes) of the replication log in the
    database at `path`, read on a short read-only connection of its own."""
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=5)
    try:
        return con.execute("SELECT min(seq), max(seq), coalesce(sum(length(payload)), 0) FROM repl_log").fetchone()
    finally:
        con.close()


def test_rejoin_with_a_trimmed_log_copies_the_database_and_takes_a_snapshot(make_pair):
    """docs/FAILOVER.md, Rejoin 4 (fallback): the entries eu must take back
    were trimmed from its log (log_max_bytes = 1024), so they cannot be
    reverted one by one: the whole database goes to
    DATA/eu/quarantine/eu-to-e2-at-P.db (0600) and eu takes a snapshot of us."""
    # isolation_ms 3 s: enough acknowledged writes during the cut to outgrow
    # the log (the isolation gate would stop them after 1 s)
    p = make_pair(replication={"log_max_bytes": 1024}, failover={"isolation_ms": 3000})
    eu, us = p.eu, p.us
    link = Link(p)
    tok = signup(eu)["access_token"]
    run_id = uuid.uuid4().hex[:12]
    # one entry: a few hundred bytes, under log_max_bytes (the size trim
    # keeps the newest entries that fit: a newest entry bigger than the bound
    # alone would stop it from trimming anything)
    pad = "p" * 200
    pre = {}
    for i in range(3):
        key = "%s-pre%d" % (run_id, i)
        pre[key] = create(eu, tok, "trim", {"run": run_id, "key": key, "pad": pad}).json()
    wait_follower(eu, us)
    steady(p)

    # cut off: eu acknowledges writes until its lease runs out
    t0 = time.time()
    link.fault("eu", ["us", "witness"])
    acked, first_seq, n = {}, None, 0
    while True:
        n += 1
        key = "%s-cut%d" % (run_id, n)
        body = {"run": run_id, "key": key, "pad": pad}
        r = eu.post(records_path("trim"), tok, json=body, timeout=8)
        if r.status_code != 201:
            break
        acked[key] = r.json()
        if first_seq is None:
            first_seq = lsn_seq(r.headers["X-Tandem-LSN"])
            assert epoch_of(r.headers["X-Tandem-LSN"]) == 1, r.headers
        assert time.time() - t0 < 8.0, "eu still accepts writes %.1f s after the cut" % (time.time() - t0)
        time.sleep(0.05)
    assert r.status_code == 503 and error_code(r) in CUT_OFF_CODES, (r.status_code, r.text)
    assert len(acked) >= 10, ("too few writes acknowledged during the cut to outgrow the log", len(acked))
    st_eu = region_status(eu)
    assert st_eu["role"] == "primary" and st_eu["epoch"] == 1, st_eu  # cut off, it knows of no epoch 2
    eu_last = st_eu["last_seq"]

    # eu is still primary (without a lease): its trim timer (every second)
    # drops the oldest of these entries from its log, past log_max_bytes
    eu_db = os.path.join(p.dir, "data", "eu", "tandem.db")

    def trimmed():
        low, high, size = repl_log_span(eu_db)
        return low is not None and low > first_seq and size <= 1024 and (low, high, size)
    low, high, _ = wait_for(trimmed, 6, interval=0.2, what="the partition's first entries trimmed from eu's log",
                            detail=lambda: "log span %r, first cut position %d, eu last %d" % (
                                repl_log_span(eu_db), first_seq, eu_last))
    assert high == eu_last, (low, high, eu_last)

    # us takes over and takes writes of its own
    wait_writable(us, timeout=10, epoch=2)
    mine = {}
    for i in range(2):
        key = "%s-us%d" % (run_id, i)
        mine[key] = create(us, tok, "trim", {"run": run_id, "key": key}).json()
    start = [e for e in log_events(us.log_path, "role") if e.get("role") == "primary"][-1]["position"]
    assert start < first_seq, (start, first_seq)

    # heal: eu learns epoch 2, steps down, cannot revert, copies, resyncs
    link.fault("eu", [])
    pos = wait_follower(us, eu, timeout=30)
    st = p.status()
    assert st["eu"]["role"] == "secondary" and st["eu"]["epoch"] == 2, st["eu"]
    assert st["us"]["role"] == "primary" and st["us"]["epoch"] == 2, st["us"]
    assert st["eu"]["failover"]["step_downs"] == 1, st["eu"]
    assert st["eu"]["applied_seq"] == st["us"]["last_seq"] == pos, (pos, st)
    assert eu.position() == us.position() == pos
    assert_verify_identical(p)
    assert "snapshot restored" in eu.log(), "eu did not take a snapshot of us\n%s" % diagnose(p)

    # the quarantine: one database copy, private, nothing else
    qdir = os.path.join(p.dir, "data", "eu", "quarantine")
    name = "eu-to-e2-at-%d.db" % eu_last
    path = os.path.join(qdir, name)
    assert sorted(os.listdir(qdir)) == [name], (name, os.listdir(qdir))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, oct(os.stat(path).st_mode)
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = {rid: (owner, json.loads(data)) for rid, owner, data in
                con.execute("SELECT id, owner, data FROM records WHERE collection = 'trim'")}
        copy_state = con.execute("SELECT epoch, last_seq FROM repl_state WHERE id = 1").fetchone()
    finally:
        con.close()
    for key, rec in list(pre.items()) + list(acked.items()):
        assert rec["id"] in rows, (key, rec["id"], "not in the database copy")
        assert rows[rec["id"]] == (rec["owner"], rec["data"]), (key, rows[rec["id"]], rec)
    assert not set(rows) & {rec["id"] for rec in mine.values()}, "us's writes in eu's copy"
    assert copy_state == (1, eu_last), copy_state  # eu's data as it was when it rejoined

    # the partition's writes are gone in both regions, the rest is there
    want = {x["id"]: x for x in list(pre.values()) + list(mine.values())}
    for region in (eu, us):
        for key, rec in acked.items():
            g = region.get(records_path("trim", rec["id"]), tok)
            assert g.status_code == 404, (region.name, key, g.status_code, g.text)
        got = {x["id"]: x for x in list_all(region, tok, "trim", headers=EVENTUAL)}
        assert got == want, (region.name, sorted(set(got) ^ set(want)))

    # the log event, the status
    ev = log_events(eu.log_path, "quarantine")
    assert len(ev) == 1, ev
    ev = ev[0]
    assert ev["level"] == "warn" and ev.get("snapshot") is True, ev
    assert ev["file"] == path or ev["file"].endswith("/quarantine/" + name), (ev, path)
    assert ev["count"] == eu_last - start, (ev, eu_last, start)
    assert st["eu"]["quarantined_transactions"] == ev["count"], st["eu"]
    assert st["us"]["quarantined_transactions"] == 0, st["us"]

    # the command line
    out = cli("quarantine", "list", "--config", p.config)
    assert out.returncode == 0, (out.stdout, out.stderr)
    assert re.search(r"^eu\s+%s\s+database copy\b" % re.escape(name), out.stdout, re.M), out.stdout
    out = cli("quarantine", "show", "--config", p.config, name)
    assert out.returncode == 0, (out.stdout, out.stderr)
    assert name in out.stdout and "copy of eu's whole database" in out.stdout, out.stdout
    assert_no_overlap(p)


# --- 5. stale epochs are fenced, bad ballots refused ----------------------------

def test_messages_from_an_old_epoch_and_bad_ballots_are_refused(make_pair):
    p = make_pair(replication={"reconnect_max_ms": 300})
    eu, us = p.eu, p.us
    link = Link(p)
    tok = signup(eu)["access_token"]
    wait_follower(eu, us)
    steady(p)
    eu.kill9()
    wait_writable(us, timeout=12, epoch=2)
    eu.start()
    create(us, tok, "e2", {"x": 1})
    pos = wait_follower(us, eu)
    before = p.status()
    wit = link.status("witness")
    assert wit["promised_epoch"] == 2, wit

    def stale(r, promised=2):
        assert r.status_code == 409, (r.status_code, r.text)
        body = r.json()
        assert body["error"]["code"] == "stale_epoch", body
        assert body["error"]["message"], body
        assert body["promised_epoch"] == promised, body
        return body

    lease = {"epoch": 1, "holder": "eu", "boot_id": "test"}
    vote = {"epoch": 1, "candidate": "eu", "last_epoch": 1, "last_seq": pos + 100, "pre": False, "force": False}
    # to the new primary, as eu (the deposed one) and as us to eu
    b = stale(link.post("us", "/internal/v1/lease", "eu", lease))
    assert b["granted"] is False
    b = stale(link.post("us", "/internal/v1/vote", "eu", vote))
    assert b["granted"] is False
    b = stale(link.post("us", "/internal/v1/vote", "eu", dict(vote, force=True)))
    stale(link.post("eu", "/internal/v1/lease", "us", dict(lease, holder="us")))
    stale(link.post("eu", "/internal/v1/vote", "us", dict(vote, candidate="us")))
    # even epoch 2 is too old for a vote now (2 is taken)
    stale(link.post("eu", "/internal/v1/vote", "us", dict(vote, candidate="us", epoch=2)))
    # replication messages carrying epoch 1
    e1 = {"X-Tandem-Epoch": "1"}
    stale(link.get("us", "/internal/v1/replication/stream?from=%d&prev_epoch=2" % (pos + 1), "eu", headers=e1))
    stale(link.post("us", "/internal/v1/replication/ack", "eu", {"seq": pos, "epoch": 2}, headers=e1))
    stale(link.get("us", "/internal/v1/replication/history", "eu", headers=e1))
    # a forwarded write from epoch 1: refused, nothing written
    r = link.post("us", records_path("e2"), "eu", {"stale": True},
                  headers=dict(e1, Authorization="Bearer " + tok))
    assert r.status_code == 409 and error_code(r) == "stale_epoch", r.text
    assert not [x for x in list_all(us, tok, "e2", headers=EVENTUAL) if x["data"].get("stale")]
    # the same ack from the current epoch is accepted (the control)
    r = link.post("us", "/internal/v1/replication/ack", "eu", {"seq": pos, "epoch": 2},
                  headers={"X-Tandem-Epoch": "2"})
    assert r.status_code == 200, r.text
    # the witness refuses epoch 1 too
    stale(link.post("witness", "/internal/v1/lease", "eu", lease))
    stale(link.post("witness", "/internal/v1/vote", "eu", vote))

    # malformed ballots: 400 bad_request, whoever receives them
    bad_bodies = [
        ("/internal/v1/lease", {"holder": "eu", "boot_id": "x"}),          # no epoch
        ("/internal/v1/lease", {"epoch": 0, "holder": "eu"}),              # epoch 0
        ("/internal/v1/lease", {"epoch": "3", "holder": "eu"}),            # not an integer
        ("/internal/v1/lease", {"epoch": 3, "holder": "us"}),              # not the sender
        ("/internal/v1/lease", {"epoch": 3}),                              # no holder
        ("/internal/v1/vote", {"epoch": 3, "candidate": "us", "last_epoch": 2, "last_seq": 1}),
        ("/internal/v1/vote", {"epoch": 3, "candidate": "eu"}),            # no position
        ("/internal/v1/handover", {"epoch": 3, "from": "us"}),
    ]
    for target in ("us", "witness"):
        for path, body in bad_bodies:
            if target == "witness" and path.endswith("handover"):
                continue
            r = link.post(target, path, "eu", body)
            assert r.status_code == 400, (target, path, body, r.status_code, r.text)
            assert r.json()["error"]["code"] == "bad_request", r.text
            assert r.json()["error"]["message"], r.text
        r = link.request(target, "POST", "/internal/v1/lease", "eu", data=b"{not json",
                         headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request", r.text
    # the admin certificate (and the witness's, at a region) cannot vote
    # or take leases
    for target in ("us", "eu", "witness"):
        r = link.post(target, "/internal/v1/lease", "admin", {"epoch": 3, "holder": "admin"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", (target, r.text)
        r = link.post(target, "/internal/v1/vote", "admin",
                      {"epoch": 3, "candidate": "admin", "last_epoch": 9, "last_seq": 9})
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", (target, r.text)
    r = link.post("us", "/internal/v1/lease", "witness", {"epoch": 3, "holder": "witness"})
    assert r.status_code == 403, r.text
    # a region cannot use the admin routes
    r = link.post("us", "/internal/v1/admin/fault", "eu", {"isolate": ["witness"]})
    assert r.status_code == 403, r.text

    # and none of this changed anything
    after = p.status()
    for name in ("eu", "us"):
        a, b = before[name], after[name]
        assert (a["role"], a["epoch"], a["failover"]["promised_epoch"]) == \
            (b["role"], b["epoch"], b["failover"]["promised_epoch"]), (name, a, b)
        assert b["isolated"] == [], b
    assert after["us"]["role"] == "primary" and after["us"]["lease"]["valid"], after["us"]
    assert after["us"]["failover"]["grant"]["holder"] == "us", after["us"]
    w2 = link.status("witness")
    assert w2["promised_epoch"] == 2 and w2["grant"]["holder"] == "us", w2
    create(us, tok, "e2", {"x": 2})
    wait_follower(us, eu)
    assert_verify_identical(p)
    assert_no_overlap(p)
    # a handover from an old epoch (a late duplicate of one from a past
    # switchover looks like this) must start nothing: eu stays a plain
    # secondary, us the primary of epoch 2 with its lease
    r = link.post("eu", "/internal/v1/handover", "us", {"epoch": 1, "from": "us"})
    t_end = time.monotonic() + 2.0
    while time.monotonic() < t_end:
        st_eu, st_us = region_status(eu), region_status(us)
        assert st_eu["role"] == "secondary" and not st_eu["failover"]["standing"] and \
            st_eu["failover"]["promised_epoch"] == 2, "a stale handover made eu stand for election\n%s" % diagnose(p)
        assert st_us["role"] == "primary" and st_us["epoch"] == 2 and st_us["lease"]["valid"], \
            "a stale handover deposed the primary\n%s" % diagnose(p)
        time.sleep(0.1)
    # and it is refused like every voter message from an older epoch
    stale(r)


# --- 6. tandem failover ----------------------------------------------------------

def test_failover_is_refused_while_the_primary_holds_its_lease_and_forced_works(make_pair):
    p = make_pair()
    eu, us = p.eu, p.us
    tok = signup(eu)["access_token"]
    glob = {"X-Tandem-Durability": "global"}
    early = {}
    for i in range(5):
        key = "g%d" % i
        early[key] = create(eu, tok, "force", {"run": "early", "key": key}, headers=glob).json()
    wait_follower(eu, us)
    steady(p)
    before = p.status()

    out = cli("failover", "--config", p.config, "--to", "us")
    assert out.returncode == 1, (out.returncode, out.stdout, out.stderr)
    msg = out.stderr.strip()
    assert len(msg.splitlines()) == 1, msg
    assert "lease" in msg and "--force" in msg and "eu" in msg, msg
    # nothing changed: eu is primary of epoch 1 with its lease, through a
    # couple of renewals, and takes writes
    t_end = time.monotonic() + 2.5
    while time.monotonic() < t_end:
        st = p.status()
        assert st["eu"]["role"] == "primary" and st["eu"]["epoch"] == 1 and st["eu"]["lease"]["valid"], st["eu"]
        assert st["us"]["role"] == "secondary" and st["us"]["failover"]["promised_epoch"] == 1, st["us"]
        create(eu, tok, "force", {"run": "mid", "key": "m"})
        time.sleep(0.2)
    assert p.status()["eu"]["failover"]["step_downs"] == 0

    # --force, with global writes going on at eu
    w = Writer(tok, collection="force", headers=glob, pause=0.01).start(eu, threads=2)
    wait_for(lambda: len(w.acked()) >= 5, 10, what="global writes before the forced failover")
    out = cli("failover", "--config", p.config, "--to", "us", "--force")
    time.sleep(0.3)
    w.finish()
    assert out.returncode == 0, cli_failed(out, p)
    assert re.search(r"us is primary of epoch 2\b.*forced", out.stdout), out.stdout
    st = wait_writable(us, timeout=10)
    assert st["epoch"] == 2, st
    st = p.status()
    assert st["eu"]["role"] == "secondary" and st["eu"]["epoch"] == 2, st["eu"]
    assert st["eu"]["failover"]["step_downs"] == 1 and st["eu"]["lease"]["valid"] is False, st["eu"]
    assert st["eu"]["failover"]["promised_epoch"] == 2, st["eu"]
    r = eu.post(records_path("force"), tok, json={"run": "after", "key": "a"})
    assert r.status_code == 201 and epoch_of(r.headers["X-Tandem-LSN"]) == 2, r.text  # forwarded to us
    # failures during the switch: 503 with Retry-After, never a hang
    w.assert_failures_are_clean(codes=OUTAGE_CODES | {"replication_timeout"})
    # no acknowledged global write lost: at us (the new primary) right away
    acked = w.acked()
    assert acked
    at_us = by_key(us, tok, "force", w.run_id)
    assert not set(acked) - set(at_us), sorted(set(acked) - set(at_us))[:10]
    for key, rec in early.items():
        g = us.get(records_path("force", rec["id"]), tok)
        assert g.status_code == 200 and g.json() == rec, (key, g.text)
    wait_follower(us, eu)
    assert_present_once(p, tok, "force", w.run_id, acked)
    assert_verify_identical(p)
    assert before["eu"]["epoch"] == 1
    # eu was reachable all along: it received the forced vote, so it had to
    # stop taking writes before us started (the overlap --force allows is
    # for an old primary cut off from the voters)
    assert_no_overlap(p)


def test_a_refused_failover_does_not_depose_the_primary(make_pair):
    """The target's own grant to eu has expired (it was cut off from eu for
    longer than a lease), the witness's still binds: `tandem failover` is
    refused, and must leave everything as it was."""
    p = make_pair()
    eu, us = p.eu, p.us
    link = Link(p)
    tok = signup(eu)["access_token"]
    wait_follower(eu, us)
    steady(p)
    link.fault("us", ["eu"])
    wait_for(lambda: region_status(us)["failover"]["grant"]["binding"] is False, 8,
             what="us's grant to eu expired")
    st = region_status(eu)
    assert st["role"] == "primary" and st["lease"]["valid"], st  # the witness renews it

    out = cli("failover", "--config", p.config, "--to", "us")
    assert out.returncode == 1, (out.returncode, out.stdout, out.stderr)
    msg = out.stderr.strip()
    assert len(msg.splitlines()) == 1 and "lease" in msg, msg
    st_us = region_status(us)
    link.fault("us", [])
    # nothing changed: eu stays primary of epoch 1 through several renewals
    t_end = time.monotonic() + 3.0
    while time.monotonic() < t_end:
        r = eu.post(records_path("kept"), tok, json={"x": 1}, timeout=8)
        st = region_status(eu)
        assert r.status_code == 201, (
            "the refused failover deposed eu: a write at eu got %d %s\nus right after the refusal: %s\n%s" % (
                r.status_code, r.text, json.dumps(st_us["failover"]), diagnose(p)))
        assert st["role"] == "primary" and st["epoch"] == 1, st
        time.sleep(0.2)
    assert st_us["failover"]["promised_epoch"] == 1, (
        "the refused failover left us with a promise for a new epoch", st_us["failover"])
    wait_follower(eu, us)
    assert_no_overlap(p)
    assert "--force" in msg, "the refusal does not say how to override it: %r" % msg


# --- 7. planned switchover ---------------------------------------------------------

def test_switchover_loses_nothing_and_pauses_writes_briefly(make_pair):
    p = make_pair()
    eu, us = p.eu, p.us
    tok = signup(eu)["access_token"]
    wait_follower(eu, us)
    steady(p)
    w = Writer(tok, collection="sw", pause=0.02).start(eu).start(us)
    wait_for(lambda: len(w.acked()) >= 20, 10, what="writes before the switchover")
    t_switch = time.time()
    out = cli("switchover", "--config", p.config, "--to", "us")
    t_done = time.time()
    assert out.returncode == 0, cli_failed(out, p)
    assert re.search(r"switchover eu -> us done in [\d.]+ s", out.stdout), out.stdout
    # RPO 0: at the moment it is done, us has every acknowledged write
    acked_then = {k: r for k, r in w.acked().items()}
    at_us = by_key(us, tok, "sw", w.run_id)
    lost = sorted(set(k for k, r in acked_then.items()) - set(at_us))
    # writes acknowledged after the switch are us's own (or forwarded to it)
    assert not lost, (len(lost), lost[:10])
    time.sleep(1.0)
    w.finish()
    w.assert_failures_are_clean()
    res = w.snapshot()
    for name in ("eu", "us"):
        gap = outage(res, name, t_switch)
        print("switchover: write outage at %s %.3f s (command took %.2f s)" % (name, gap, t_done - t_switch))
        assert gap <= 2.0, (name, gap)
    st = p.status()
    assert st["us"]["role"] == "primary" and st["us"]["epoch"] == 2 and st["us"]["lease"]["valid"], st["us"]
    assert st["eu"]["role"] == "secondary" and st["eu"]["epoch"] == 2, st["eu"]
    after = [r for r in res if r["status"] == 201 and r["t_send"] > t_done]
    assert after and all(epoch_of(r["lsn"]) == 2 for r in after)
    wait_follower(us, eu)
    assert_present_once(p, tok, "sw", w.run_id, w.acked())
    assert st["eu"]["quarantined_transactions"] == 0

    # and back to eu
    out = cli("switchover", "--config", p.config, "--to", "eu")
    assert out.returncode == 0, (out.returncode, out.stdout, out.stderr)
    assert "us -> eu" in out.stdout, out.stdout
    st = wait_writable(eu, timeout=5, epoch=3)
    r = create(eu, tok, "sw", {"run": "back", "key": "b"})
    assert r.headers["X-Tandem-Region"] == "eu" and epoch_of(r.headers["X-Tandem-LSN"]) == 3
    r = create(us, tok, "sw", {"run": "back", "key": "c"})
    wait_follower(eu, us)
    assert_verify_identical(p)
    out = cli("switchover", "--config", p.config, "--to", "eu")
    assert out.returncode == 0 and "already the primary" in out.stdout, (out.stdout, out.stderr)
    assert_no_overlap(p)


def election_path(region):
    """The election transitions in a region's log: [(from, to, epoch)]."""
    return [(e["from"], e["to"], e["epoch"]) for e in log_events(region.log_path, "election")]


def test_switchover_walks_the_state_diagram(make_pair):
    """The election is an explicit state machine (src/replication/election.c,
    docs/FAILOVER.md "The state machine in the code"): every transition is
    logged (event "election": from, to, epoch) and the state is in the
    status. A switchover takes eu PRIMARY -> SWITCHING -> DEMOTING ->
    FOLLOWER and us FOLLOWER -> PRE_CANDIDATE -> DRAINING -> CANDIDATE ->
    PROMOTING -> PRIMARY, each log a path (each step starts where the last
    ended), with no transition refused. Pins the old code, which had no
    state: a bool, a bare int `standing` and flags, and logged none of it."""
    p = make_pair()
    eu, us = p.eu, p.us
    wait_follower(eu, us)
    steady(p)
    assert region_status(eu)["failover"]["state"] == "primary"
    assert region_status(us)["failover"]["state"] == "follower"
    out = cli("switchover", "--config", p.config, "--to", "us")
    assert out.returncode == 0, cli_failed(out, p)
    wait_writable(us, timeout=5, epoch=2)
    wait_for(lambda: region_status(eu)["failover"]["state"] == "follower", 5, what="eu a follower")
    assert region_status(us)["failover"]["state"] == "primary"
    eu_path, us_path = election_path(eu), election_path(us)
    assert [(f, t) for f, t, _ in eu_path] == [("primary", "switching"), ("switching", "demoting"),
                                               ("demoting", "follower")], eu_path
    assert [(f, t) for f, t, _ in us_path] == [("follower", "pre_candidate"), ("pre_candidate", "draining"),
                                               ("draining", "candidate"), ("candidate", "promoting"),
                                               ("promoting", "primary")], us_path
    assert us_path[-1][2] == 2 and eu_path[0][2] == 1, (us_path, eu_path)
    for region in (eu, us):
        with open(region.log_path, errors="replace") as f:
            assert "not in the state diagram" not in f.read()


# --- 8. an idempotent retry in the other region, across a failover --------------

def test_idempotent_retry_at_the_new_primary_lands_once(make_pair):
    p = make_pair()
    eu, us = p.eu, p.us
    link = Link(p)
    tok = signup(eu)["access_token"]
    wait_follower(eu, us)
    steady(p)
    run_id = uuid.uuid4().hex[:12]
    keys = {name: "%s-%s" % (run_id, name) for name in ("replicated", "unreplicated", "refused")}

    def post(region, name):
        body = {"run": run_id, "key": keys[name]}
        return region.post(records_path("idem"), tok, json=body, headers={"Idempotency-Key": keys[name]},
                           timeout=8)

    # acknowledged by eu and replicated before the cut
    a = post(eu, "replicated")
    assert a.status_code == 201, a.text
    us.wait_position(lsn_seq(a.headers["X-Tandem-LSN"]))
    link.fault("eu", ["us", "witness"])
    # sent to eu right after the cut: acknowledged, never replicated
    b = post(eu, "unreplicated")
    assert b.status_code == 201, ("eu refused a write right after the cut", b.text)
    # sent once eu's lease ran out: refused
    wait_for(lambda: region_status(eu)["lease"]["valid"] is False, 6, what="eu's lease expired")
    c = post(eu, "refused")
    assert c.status_code == 503 and error_code(c) == "no_lease", c.text

    wait_writable(us, timeout=10, epoch=2)
    # retried at us, the new primary
    a2 = post(us, "replicated")
    assert a2.status_code == 201, a2.text
    assert a2.headers.get("Idempotent-Replayed") == "true", dict(a2.headers)
    assert a2.json() == a.json()
    b2 = post(us, "unreplicated")
    assert b2.status_code == 201, b2.text
    assert b2.headers.get("Idempotent-Replayed") is None, dict(b2.headers)
    c2 = post(us, "refused")
    assert c2.status_code == 201, c2.text
    final = {"replicated": a.json(), "unreplicated": b2.json(), "refused": c2.json()}
    # retried again at us: replays
    for name, rec in final.items():
        r = post(us, name)
        assert r.status_code == 201 and r.headers.get("Idempotent-Replayed") == "true", (name, r.text)
        assert r.json() == rec

    # eu rejoins; its own version of the unreplicated write is quarantined
    link.fault("eu", [])
    wait_follower(us, eu, timeout=20)
    for name, rec in final.items():  # at eu, forwarded to us: replays
        r = post(eu, name)
        assert r.status_code == 201, (name, r.text)
        assert r.headers.get("Idempotent-Replayed") == "true" and r.json() == rec, (name, r.text)
    for region in (eu, us):
        got = by_key(region, tok, "idem", run_id)
        assert {k: [x["id"] for x in v] for k, v in got.items()} == \
            {keys[n]: [rec["id"]] for n, rec in final.items()}, (region.name, got)
        g = region.get(records_path("idem", b.json()["id"]), tok)
        assert g.status_code == 404, (region.name, g.text)
    assert_verify_identical(p)
    assert_no_overlap(p)


def test_forwards_waiting_for_a_frozen_primary_end_when_us_takes_over(make_pair):
    """Pins: since forwarding moved to the API thread (forward.c), a write
    that us forwarded to eu just before eu stopped answering (frozen here;
    a partition that drops packets in the drill) waited the whole
    forward_timeout_ms, although us became primary a few seconds later: the
    drill's partition-primary write RTO at us was 10 s (the timeout) at 500
    writes/s. The applier's clients of before ended such forwards when the
    region stood for election. Now becoming primary ends them at once (503
    primary_unavailable) and the retry with the same Idempotency-Key lands
    at us, once."""
    p = make_pair(replication={"forward_timeout_ms": 30000})
    eu, us = p.eu, p.us
    tok = signup(eu)["access_token"]
    wait_follower(eu, us)
    steady(p)
    key = "frozen-" + uuid.uuid4().hex[:8]
    os.kill(eu.proc.pid, signal.SIGSTOP)
    try:
        t0 = time.time()
        r = us.post(records_path("frozen"), tok, json={"n": 1}, headers={"Idempotency-Key": key}, timeout=60)
        took = time.time() - t0
        assert r.status_code == 503 and error_code(r) == "primary_unavailable", r.text
        # us stands after election_timeout_ms and wins with the witness's
        # vote once eu's lease has run out: seconds, far from the 30 s timeout
        assert took < 15, "the forward waited %.1f s" % took
        wait_writable(us, timeout=10, epoch=2)
        assert "forwarded write(s) still waiting for the old primary" in us.log()
        r2 = us.post(records_path("frozen"), tok, json={"n": 1}, headers={"Idempotency-Key": key}, timeout=10)
        assert r2.status_code == 201, r2.text
        items = list_all(us, tok, "frozen")
        assert len(items) == 1, items
    finally:
        os.kill(eu.proc.pid, signal.SIGCONT)
    # eu, frozen with its lease, logs its writes_off only when it runs
    # again, after us's writes_on: the log intervals overlap though eu took
    # no write while frozen (nothing was sent to it). It steps down:
    wait_for(lambda: (region_status(eu) or {}).get("role") == "secondary", 15, what="eu stepped down")
    p.overlap_checked = True


# --- 9. configuration and state files ------------------------------------------

@pytest.mark.parametrize("settings,words", [
    ({"grant_margin_ms": 0, "lease_margin_ms": 0, "max_drift_ppm": 50000}, "unsafe"),
    ({"grant_margin_ms": 0, "lease_margin_ms": 0}, "unsafe"),
    ({"renew_ms": 4000}, "renew_ms"),
    ({"election_timeout_ms": 1500}, "election_timeout_ms"),
    ({"election_timeout_ms": 9000}, "election_timeout_ms"),
    ({"isolation_ms": 3760}, "isolation_ms"),
])
def test_config_check_refuses_unsafe_failover_timings(tmp_path, settings, words):
    run("init", "--address", "127.0.0.1", "--data", str(tmp_path), "--port-base", str(free_port_base(count=5)))
    path = os.path.join(str(tmp_path), "tandem.ini")
    with open(path) as f:
        text = f.read()
    ok = cli("config", "check", path)
    assert ok.returncode == 0 and "ok" in ok.stdout, (ok.stdout, ok.stderr)
    bad = set_section(text, "failover", settings)
    with open(path, "w") as f:
        f.write(bad)
    out = cli("config", "check", path)
    assert out.returncode != 0, (out.stdout, out.stderr)
    lines = [x for x in out.stderr.splitlines() if x.strip()]
    assert lines, out
    m = re.match(r"^(.*):(\d+): (.*)$", lines[0])
    assert m, lines
    assert os.path.abspath(m.group(1)) == path or m.group(1) == path, lines[0]
    assert words in m.group(3), lines[0]
    # the line is in [failover]
    file_lines = bad.splitlines()
    start = file_lines.index("[failover]") + 1
    end = next(i for i in range(start, len(file_lines)) if file_lines[i].startswith("["))
    assert start < int(m.group(2)) <= end, (m.group(2), start, end)
    # a region refuses to start with it
    import subprocess
    r = subprocess.run([TANDEM, "region", "--config", path, "--region", "eu"], capture_output=True,
                       text=True, timeout=20)
    assert r.returncode != 0 and words in r.stderr, (r.returncode, r.stdout, r.stderr)


def test_witness_without_a_witness_section_and_private_voter_files(make_pair, tmp_path):
    d = tmp_path / "nowit"
    run("init", "--address", "127.0.0.1", "--data", str(d), "--port-base", str(free_port_base(count=5)))
    path = str(d / "tandem.ini")
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(drop_section(text, "witness"))
    out = cli("witness", "--config", path, timeout=20)
    assert out.returncode != 0, (out.stdout, out.stderr)
    msg = [x for x in out.stderr.splitlines() if x.strip()]
    assert len(msg) == 1 and "[witness]" in msg[0], out.stderr

    # the voters' durable state: private files, with what was promised
    p = make_pair()
    tok = signup(p.eu)["access_token"]
    create(p.eu, tok, "v", {"x": 1})
    steady(p)
    for name in ("eu", "us", "witness"):
        f = os.path.join(p.dir, "data", name, "voter.json")
        mode = stat.S_IMODE(os.stat(f).st_mode)
        assert mode == 0o600, (name, oct(mode))
        with open(f) as fh:
            state = json.load(fh)
        assert state["promised_epoch"] == 1, (name, state)
        assert state["holder"] == "eu", (name, state)
