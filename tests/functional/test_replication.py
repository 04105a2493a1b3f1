"""Replication between two REAL region processes (eu primary, us secondary):
visibility of writes across regions, write forwarding, read consistency
(eventual / session / global, X-Tandem-Min-LSN), global durability,
crashes of either region during write bursts, idempotent retries across
regions, the mutual-TLS link, snapshot catch-up after a long outage,
status / metrics, and schema replication to a fresh secondary.

Run: TANDEM_BIN=$PWD/build/tandem /usr/bin/python3 -m pytest -q tests/functional/test_replication.py
"""
import datetime
import json
import os
import re
import socket
import ssl
import subprocess
import threading
import time
import uuid

import pytest
import requests

from conftest import TANDEM, error_code, read_response, run
from regions import TwoRegions, create, list_all, lsn_seq, records_path, signup

LSN_RE = re.compile(r"^\d+/\d+$")
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


# --- helpers -----------------------------------------------------------------

def wait_until(predicate, timeout=10, interval=0.05, what="condition"):
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError("%s not reached within %s s" % (what, timeout))
        time.sleep(interval)


def stop_pair(pair):
    """Teardown: stop both; every SIGTERM must end the process cleanly."""
    codes = pair.stop_all()
    bad = {name: c for name, c in codes.items() if any(x not in (0, None) for x in c)}
    assert not bad, "unclean exits %s\n%s" % (bad, pair.logs())


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    p = TwoRegions(tmp_path_factory.mktemp("pair"), replication={"min_lsn_wait_ms": 1000})
    try:
        p.start()
        yield p
    finally:
        stop_pair(p)


@pytest.fixture(scope="module")
def slow_pair(tmp_path_factory):
    """A link with 200 ms of delay each way."""
    p = TwoRegions(tmp_path_factory.mktemp("slow"),
                   replication={"link_delay_ms": 200, "min_lsn_wait_ms": 3000})
    try:
        p.start()
        yield p
    finally:
        stop_pair(p)


@pytest.fixture
def make_pair(tmp_path):
    """A fresh deployment per test (for tests that stop or kill regions)."""
    made = []

    def make(start=True, **replication):
        p = TwoRegions(tmp_path / ("d%d" % len(made)), replication=replication)
        made.append(p)
        if start:
            p.start()
        return p

    yield make
    errors = []
    for p in made:  # stop them all, then complain
        try:
            stop_pair(p)
        except AssertionError as e:
            errors.append(str(e))
    assert not errors, "\n".join(errors)


@pytest.fixture(scope="module")
def eu_user(pair):
    """A user signed up at eu, replicated to us."""
    u = signup(pair.eu)
    pair.us.wait_position(lsn_seq(u["lsn"]))
    return u


# --- 1. writes in eu are visible in us ---------------------------------------

def test_writes_in_eu_are_visible_in_us(pair):
    eu, us = pair.eu, pair.us
    u = signup(eu)
    tok = u["access_token"]
    made = []
    for i in range(3):
        r = create(eu, tok, "notes", {"title": "note %d" % i, "n": i})
        assert r.headers["X-Tandem-Region"] == "eu"
        made.append(r)
    last_lsn = made[-1].headers["X-Tandem-LSN"]
    # positions grow
    seqs = [lsn_seq(r.headers["X-Tandem-LSN"]) for r in made]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3, seqs
    # each record at us, with the position of the write: the same record
    for r in made:
        rec = r.json()
        g = us.get(records_path("notes", rec["id"]), tok,
                   headers={"X-Tandem-Min-LSN": r.headers["X-Tandem-LSN"]})
        assert g.status_code == 200, g.text
        assert g.headers["X-Tandem-Region"] == "us"
        assert g.json() == rec
        assert g.headers.get("ETag") == r.headers.get("ETag")
    listed = list_all(us, tok, "notes", headers={"X-Tandem-Min-LSN": last_lsn})
    assert sorted(x["id"] for x in listed) == sorted(r.json()["id"] for r in made)
    # the access token issued by eu works at us
    me = us.get("/v1/me", tok, headers={"X-Tandem-Min-LSN": last_lsn})
    assert me.status_code == 200, me.text
    assert me.json()["id"] == u["user"]["id"]
    assert me.json()["email"] == u["email"]
    # eventually visible without asking for a position
    late = create(eu, tok, "notes", {"title": "late"}).json()

    def seen():
        g = us.get(records_path("notes", late["id"]), tok)
        assert g.status_code in (200, 404), g.text
        return g.status_code == 200 and g.json() == late
    wait_until(seen, timeout=5, what="the record at us without Min-LSN")
    # a session ended at eu is ended at us too, once replicated
    out = eu.post("/v1/auth/logout", tok)
    assert out.status_code == 204, out.text
    assert LSN_RE.match(out.headers.get("X-Tandem-LSN", "")), dict(out.headers)
    me = us.get("/v1/me", tok, headers={"X-Tandem-Min-LSN": out.headers["X-Tandem-LSN"]})
    assert me.status_code == 401, me.text
    assert error_code(me) == "token_revoked"
    g = us.get(records_path("notes", late["id"]), tok)
    assert g.status_code == 401 and error_code(g) == "token_revoked"


# --- 2. a write in us is forwarded and read back at once ---------------------

def test_write_in_us_is_forwarded_and_read_back_at_once(pair):
    eu, us = pair.eu, pair.us
    before = us.metric("tandem_forwarded_writes_total")
    # signup at us: forwarded to eu; the token works at us immediately
    u = signup(us)
    tok = u["access_token"]
    me = us.get("/v1/me", tok)
    assert me.status_code == 200, me.text
    assert me.json()["id"] == u["user"]["id"]
    r = us.post(records_path("todo"), tok, json={"task": "buy milk", "done": False})
    assert r.status_code == 201, r.text
    assert r.headers["X-Tandem-Region"] == "us"
    lsn = r.headers.get("X-Tandem-LSN", "")
    assert LSN_RE.match(lsn), dict(r.headers)
    assert r.headers.get("X-Request-Id")
    rec = r.json()
    assert rec["data"] == {"task": "buy milk", "done": False}
    assert rec["owner"] == u["user"]["id"]
    # session consistency: the very next read at us sees it, no header needed
    g = us.get(records_path("todo", rec["id"]), tok)
    assert g.status_code == 200, g.text
    assert g.json() == rec
    items = us.get(records_path("todo"), tok).json()["items"]
    assert [x["id"] for x in items] == [rec["id"]]
    assert us.position() >= lsn_seq(lsn)
    # and it is at eu, where it was written
    g = eu.get(records_path("todo", rec["id"]), tok)
    assert g.status_code == 200, g.text
    assert g.json() == rec
    # PATCH and DELETE at us: forwarded too, and read back at once
    r = us.request("PATCH", records_path("todo", rec["id"]), tok, json={"done": True},
                   headers={"If-Match": '"%d"' % rec["version"]})
    assert r.status_code == 200, r.text
    assert r.headers["X-Tandem-Region"] == "us"
    assert lsn_seq(r.headers["X-Tandem-LSN"]) > lsn_seq(lsn)
    updated = r.json()
    assert updated["version"] == rec["version"] + 1
    assert updated["data"] == {"task": "buy milk", "done": True}
    g = us.get(records_path("todo", rec["id"]), tok)
    assert g.status_code == 200 and g.json() == updated, g.text
    # a stale If-Match is refused by the primary, through us
    r = us.request("PATCH", records_path("todo", rec["id"]), tok, json={"done": False},
                   headers={"If-Match": '"%d"' % rec["version"]})
    assert r.status_code == 412, r.text
    assert error_code(r) == "precondition_failed"
    r = us.request("DELETE", records_path("todo", rec["id"]), tok)
    assert r.status_code == 204, r.text
    g = us.get(records_path("todo", rec["id"]), tok)
    assert g.status_code == 404 and error_code(g) == "record_not_found", g.text
    g = eu.get(records_path("todo", rec["id"]), tok)
    assert g.status_code == 404, g.text
    assert us.metric("tandem_forwarded_writes_total") >= before + 5


def test_session_consistency_at_us_over_a_slow_link(slow_pair):
    """With 200 ms each way, a client that writes at us and reads at us at
    once still sees its write: records, token refresh and logout."""
    eu, us = slow_pair.eu, slow_pair.us
    u = signup(us)
    tok = u["access_token"]
    assert us.get("/v1/me", tok).status_code == 200
    r = create(us, tok, "slow", {"v": 1})
    assert r.headers["X-Tandem-Region"] == "us"
    g = us.get(records_path("slow", r.json()["id"]), tok)
    assert g.status_code == 200 and g.json() == r.json(), g.text
    r = us.request("PUT", records_path("slow", r.json()["id"]), tok, json={"v": 2})
    assert r.status_code == 200, r.text
    g = us.get(records_path("slow", r.json()["id"]), tok)
    assert g.status_code == 200 and g.json()["data"] == {"v": 2}, g.text
    # refresh at us: the new access token works at us at once
    ref = us.post("/v1/auth/refresh", json={"refresh_token": u["refresh_token"]})
    assert ref.status_code == 200, ref.text
    tok2 = ref.json()["access_token"]
    assert us.get("/v1/me", tok2).status_code == 200
    # logout at us: rejected at us at once, and at eu
    out = us.post("/v1/auth/logout", tok2)
    assert out.status_code == 204, out.text
    me = us.get("/v1/me", tok2)
    assert me.status_code == 401 and error_code(me) == "token_revoked", me.text
    me = eu.get("/v1/me", tok2)
    assert me.status_code == 401 and error_code(me) == "token_revoked", me.text


# --- 3. global read consistency ----------------------------------------------

def test_global_reads_see_the_latest_write_eventual_may_not(slow_pair):
    eu, us = slow_pair.eu, slow_pair.us
    u = signup(eu)
    tok = u["access_token"]
    us.wait_position(lsn_seq(u["lsn"]))
    misses = 0
    for i in range(4):
        w = create(eu, tok, "feed", {"i": i})
        t_acked = time.monotonic()
        rec = w.json()
        ev = us.get(records_path("feed", rec["id"]), tok, headers={"X-Tandem-Consistency": "eventual"})
        if ev.status_code == 404:
            assert error_code(ev) == "record_not_found"
            misses += 1
        else:
            assert ev.status_code == 200, ev.text
        gl = us.get(records_path("feed", rec["id"]), tok, headers={"X-Tandem-Consistency": "global"})
        took = time.monotonic() - t_acked
        assert gl.status_code == 200, gl.text
        assert gl.json() == rec
        assert gl.headers["X-Tandem-Region"] == "us"
        if ev.status_code == 404:
            # the data reached us only after the link delay: global waited for it
            assert took >= 0.15, took
    assert misses >= 1, "an eventual read right after the write never missed it"
    # a global read at the primary answers at once
    g = eu.get(records_path("feed"), tok, headers={"X-Tandem-Consistency": "global"})
    assert g.status_code == 200 and len(g.json()["items"]) == 4
    bad = us.get(records_path("feed"), tok, headers={"X-Tandem-Consistency": "strong"})
    assert bad.status_code == 400 and error_code(bad) == "invalid_consistency"


# --- 4. X-Tandem-Min-LSN -----------------------------------------------------

def test_min_lsn_waits_for_the_position(slow_pair):
    eu, us = slow_pair.eu, slow_pair.us
    u = signup(eu)
    tok = u["access_token"]
    us.wait_position(lsn_seq(u["lsn"]))
    w = create(eu, tok, "waits", {"x": 1})
    t0 = time.monotonic()
    g = us.get(records_path("waits", w.json()["id"]), tok,
               headers={"X-Tandem-Min-LSN": w.headers["X-Tandem-LSN"]})
    took = time.monotonic() - t0
    assert g.status_code == 200, g.text
    assert g.json() == w.json()
    assert 0.1 <= took < 3.0, took  # it waited for the delayed link, not for the timeout


def test_min_lsn_times_out_with_not_caught_up(pair, eu_user):
    us = pair.us
    t0 = time.monotonic()
    r = us.get(records_path("notes"), eu_user["access_token"],
               headers={"X-Tandem-Min-LSN": "1/999999999"})
    took = time.monotonic() - t0
    assert r.status_code == 503, r.text
    assert error_code(r) == "not_caught_up"
    assert r.headers.get("Retry-After", "").isdigit(), dict(r.headers)
    assert 0.8 <= took <= 3.0, took  # min_lsn_wait_ms = 1000
    # a position already reached answers at once
    t0 = time.monotonic()
    r = us.get(records_path("notes"), eu_user["access_token"],
               headers={"X-Tandem-Min-LSN": eu_user["lsn"]})
    assert r.status_code == 200, r.text
    assert time.monotonic() - t0 < 0.8


@pytest.mark.parametrize("value", ["abc", "1/", "/5", "1/x", "-3", "1/-3", "x/5", "1/2/3", ""])
def test_min_lsn_must_be_a_position(pair, eu_user, value):
    for region in pair.regions:
        r = region.get(records_path("notes"), eu_user["access_token"],
                       headers={"X-Tandem-Min-LSN": value})
        assert r.status_code == 400, (region.name, value, r.status_code, r.text)
        assert error_code(r) == "invalid_lsn"


# --- 5. global durability ----------------------------------------------------

def test_global_durability_waits_for_the_secondary(make_pair):
    p = make_pair(global_ack_wait_ms=1000)
    eu, us = p.eu, p.us
    u = signup(eu)
    tok = u["access_token"]
    us.wait_position(lsn_seq(u["lsn"]))
    glob = {"X-Tandem-Durability": "global"}
    # with us running: acknowledged, and us has it at that moment
    r = create(eu, tok, "ledger", {"amount": 1}, headers=glob)
    g = us.get(records_path("ledger", r.json()["id"]), tok, headers={"X-Tandem-Consistency": "eventual"})
    assert g.status_code == 200, g.text
    assert g.json() == r.json()
    # a global write at us (forwarded): acknowledged once us itself has it
    r = create(us, tok, "ledger", {"amount": 10}, headers=glob)
    assert r.headers["X-Tandem-Region"] == "us"
    g = us.get(records_path("ledger", r.json()["id"]), tok, headers={"X-Tandem-Consistency": "eventual"})
    assert g.status_code == 200 and g.json() == r.json(), g.text
    bad = eu.post(records_path("ledger"), tok, json={"amount": 0},
                  headers={"X-Tandem-Durability": "everywhere"})
    assert bad.status_code == 400 and error_code(bad) == "invalid_durability"

    # us stopped: not acknowledged, but durable at eu
    assert us.stop() == 0
    key = "global-" + uuid.uuid4().hex
    marker = uuid.uuid4().hex
    body = {"amount": 2, "marker": marker}
    hdrs = dict(glob, **{"Idempotency-Key": key})
    t0 = time.monotonic()
    r = eu.post(records_path("ledger"), tok, json=body, headers=hdrs)
    took = time.monotonic() - t0
    assert r.status_code == 503, r.text
    assert error_code(r) == "replication_timeout"
    lsn = r.headers.get("X-Tandem-LSN", "")
    assert LSN_RE.match(lsn), dict(r.headers)
    assert r.headers.get("Retry-After")
    assert "Idempotent-Replayed" not in r.headers
    assert 0.8 <= took <= 5, took  # global_ack_wait_ms = 1000
    there = list_all(eu, tok, "ledger", filter_="marker = '%s'" % marker)
    assert len(there) == 1, there
    rid = there[0]["id"]
    assert there[0]["data"] == body

    # retried while us is still down: still not confirmed, same position
    r = eu.post(records_path("ledger"), tok, json=body, headers=hdrs)
    assert r.status_code == 503, r.text
    assert error_code(r) == "replication_timeout"
    assert r.headers.get("X-Tandem-LSN") == lsn
    assert len(list_all(eu, tok, "ledger", filter_="marker = '%s'" % marker)) == 1

    # us back: the retry with the same key answers the first result
    us.start()
    us.wait_position(lsn_seq(lsn))
    r2 = eu.post(records_path("ledger"), tok, json=body, headers=hdrs)
    assert r2.status_code == 201, r2.text
    assert r2.headers.get("Idempotent-Replayed") == "true", dict(r2.headers)
    assert r2.json()["id"] == rid
    assert r2.json() == there[0]
    assert r2.headers.get("X-Tandem-LSN") == lsn
    g = us.get(records_path("ledger", rid), tok, headers={"X-Tandem-Min-LSN": lsn})
    assert g.status_code == 200, g.text
    assert g.json() == there[0]
    assert len(list_all(eu, tok, "ledger", filter_="marker = '%s'" % marker)) == 1
    assert len(list_all(us, tok, "ledger", filter_="marker = '%s'" % marker)) == 1
    # and a global write with us running succeeds again
    create(eu, tok, "ledger", {"amount": 3}, headers=glob)


# --- bursts ------------------------------------------------------------------

class Burst:
    """Writer threads POSTing records (each with a unique key and marker)
    until stopped; records every outcome."""

    def __init__(self, token, run_id, collection="burst"):
        self.token = token
        self.run_id = run_id
        self.collection = collection
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ok = {}        # key -> (region, record)
        self.failed = {}    # key -> (region, body, what)
        self.threads = []

    def body(self, key):
        return {"run": self.run_id, "key": key}

    def worker(self, region, tag):
        n = 0
        while not self.stop.is_set():
            n += 1
            key = "%s-%s-%d" % (self.run_id, tag, n)
            try:
                r = region.post(records_path(self.collection), self.token, json=self.body(key),
                                headers={"Idempotency-Key": key}, timeout=15)
                outcome = r.status_code, r
            except requests.RequestException as e:
                outcome = None, e
            with self.lock:
                if outcome[0] == 201:
                    self.ok[key] = (region, outcome[1].json())
                else:
                    what = outcome[1].text[:200] if outcome[0] else repr(outcome[1])[:200]
                    self.failed[key] = (region, self.body(key), (outcome[0], what))
            if outcome[0] != 201:
                time.sleep(0.05)

    def start(self, region, threads):
        for i in range(threads):
            t = threading.Thread(target=self.worker, args=(region, "%s%d" % (region.name, i)),
                                 daemon=True)
            t.start()
            self.threads.append(t)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(60)
            assert not t.is_alive(), "a writer thread hangs"


def count_by_key(region, token, collection, run_id):
    counts = {}
    for rec in list_all(region, token, collection, filter_="run = '%s'" % run_id):
        counts[rec["data"]["key"]] = counts.get(rec["data"]["key"], 0) + 1
    return counts


def assert_verify_identical(pair):
    v = pair.verify()
    assert v.returncode == 0, (v.returncode, v.stdout, v.stderr, pair.logs())
    assert v.stdout.strip().splitlines()[-1] == "identical", v.stdout


# --- 6. kill -9 of the secondary during a burst ------------------------------

def test_secondary_killed_during_a_burst_catches_up(make_pair):
    p = make_pair()
    eu, us = p.eu, p.us
    u = signup(eu)
    tok = u["access_token"]
    us.wait_position(lsn_seq(u["lsn"]))
    b = Burst(tok, uuid.uuid4().hex[:12])
    b.start(eu, 4)
    time.sleep(0.7)
    us.kill9()
    time.sleep(0.6)
    us.start()
    time.sleep(0.7)
    b.finish()
    assert len(b.ok) > 20, len(b.ok)
    # the primary keeps taking writes while the secondary is gone
    assert not b.failed, list(b.failed.values())[:5]
    p.wait_synced(timeout=20)
    assert_verify_identical(p)
    at_us = count_by_key(us, tok, "burst", b.run_id)
    assert set(at_us) == set(b.ok), (len(at_us), len(b.ok))
    assert all(c == 1 for c in at_us.values())
    # the very records, not only the keys
    rec = {r["data"]["key"]: r for r in list_all(us, tok, "burst", filter_="run = '%s'" % b.run_id)}
    for key, (_, created) in b.ok.items():
        assert rec[key] == created
    st = p.wait_quiet()
    assert st["us"]["link"]["state"] == "up"


# --- 7. kill -9 of the primary during a burst --------------------------------

def test_primary_killed_during_a_burst_loses_and_repeats_nothing(make_pair):
    p = make_pair(min_lsn_wait_ms=2000, reconnect_max_ms=500)
    eu, us = p.eu, p.us
    u = signup(eu)
    tok = u["access_token"]
    us.wait_position(lsn_seq(u["lsn"]))
    b = Burst(tok, uuid.uuid4().hex[:12])
    b.start(eu, 2)
    b.start(us, 2)
    time.sleep(0.8)
    eu.kill9()
    time.sleep(0.6)
    eu.start()
    time.sleep(0.8)
    b.finish()
    acked = dict(b.ok)
    assert len(acked) > 10, len(acked)
    assert any(r is us for r, _ in acked.values()), "no forwarded write was acknowledged"
    print("primary kill: acked=%d (us %d) failed=%d" % (len(acked), sum(1 for r, _ in acked.values() if r is us), len(b.failed)))
    assert b.failed, "killing the primary failed no write at all (the kill came too late?)"
    p.wait_synced(timeout=20)
    # every acknowledged write is in both regions exactly once
    for region in (eu, us):
        counts = count_by_key(region, tok, "burst", b.run_id)
        dupes = {k: c for k, c in counts.items() if c != 1}
        assert not dupes, (region.name, dupes)
        missing = set(acked) - set(counts)
        assert not missing, (region.name, sorted(missing)[:10], len(missing))
    # failed writes retried with the same key land exactly once
    replayed = 0
    for key, (region, body, what) in sorted(b.failed.items()):
        r = region.post(records_path("burst"), tok, json=body, headers={"Idempotency-Key": key})
        assert r.status_code == 201, (key, region.name, what, r.status_code, r.text)
        replayed += r.headers.get("Idempotent-Replayed") == "true"
        assert r.json()["data"] == body
        acked[key] = (region, r.json())
    print("retried %d failed writes, %d were replays" % (len(b.failed), replayed))
    p.wait_synced(timeout=20)
    for region in (eu, us):
        counts = count_by_key(region, tok, "burst", b.run_id)
        assert set(counts) == set(acked), (region.name, len(counts), len(acked))
        assert all(c == 1 for c in counts.values()), (region.name, {k: c for k, c in counts.items() if c != 1})
        recs = {r["data"]["key"]: r for r in list_all(region, tok, "burst", filter_="run = '%s'" % b.run_id)}
        for key, (_, created) in acked.items():
            assert recs[key]["id"] == created["id"], (region.name, key)
    assert_verify_identical(p)


# --- 8. idempotent retries across regions ------------------------------------

@pytest.mark.parametrize("first,second", [("eu", "us"), ("us", "eu")])
def test_idempotent_retry_in_the_other_region_replays(pair, eu_user, first, second):
    a, b = getattr(pair, first), getattr(pair, second)
    tok = eu_user["access_token"]
    key = "cross-%s-%s" % (first, uuid.uuid4().hex)
    marker = uuid.uuid4().hex
    body = {"marker": marker, "text": "once"}
    h = {"Idempotency-Key": key}
    r1 = a.post(records_path("orders"), tok, json=body, headers=h)
    assert r1.status_code == 201, r1.text
    assert "Idempotent-Replayed" not in r1.headers
    assert r1.headers["X-Tandem-Region"] == first
    # the idempotency record replicates with the data: wait for it in b
    b.wait_position(lsn_seq(r1.headers["X-Tandem-LSN"]))
    r2 = b.post(records_path("orders"), tok, json=body, headers=h)
    assert r2.status_code == 201, r2.text
    assert r2.headers.get("Idempotent-Replayed") == "true", dict(r2.headers)
    assert r2.headers["X-Tandem-Region"] == second
    assert r2.content == r1.content
    assert r2.headers.get("ETag") == r1.headers.get("ETag")
    assert r2.headers.get("X-Tandem-LSN") == r1.headers.get("X-Tandem-LSN")
    for region in pair.regions:
        found = list_all(region, tok, "orders", filter_="marker = '%s'" % marker,
                         headers={"X-Tandem-Consistency": "global"})
        assert [x["id"] for x in found] == [r1.json()["id"]], (region.name, found)
    # the same key with another body is refused in either region
    r3 = b.post(records_path("orders"), tok, json={"marker": marker, "text": "other"}, headers=h)
    assert r3.status_code == 422, r3.text
    assert error_code(r3) == "idempotency_key_reused"


# --- 9. the link requires a certificate of the deployment's CA ---------------

def link_get(port, path, ca=None, cert=None, timeout=5):
    """GET path on a link port over TLS, optionally with a client
    certificate. (status, body) or the exception that ended the exchange."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca:
        ctx.load_verify_locations(ca)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(*cert)
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % path).encode())
        status, _, body, _ = read_response(s)
        return status, body
    except socket.timeout as e:
        raise AssertionError("the link neither answered nor closed: %r" % e)
    except (ssl.SSLError, EOFError, OSError) as e:
        return e
    finally:
        raw.close()


def test_link_refuses_foreign_and_anonymous_peers(pair, tmp_path):
    other = tmp_path / "other"
    run("init", "--address", "127.0.0.1", "--data", str(other), "--port-base", "40000")
    certs = pair.certs
    port = pair.eu.link_port
    foreign = (str(other / "certs" / "us.pem"), str(other / "certs" / "us.key"))
    for ca in (pair.ca, None):
        got = link_get(port, "/internal/v1/status", ca=ca, cert=foreign)
        assert isinstance(got, Exception) or got[0] != 200, got
        got = link_get(port, "/internal/v1/status", ca=ca)  # no certificate at all
        assert isinstance(got, Exception) or got[0] != 200, got
    # the same on us's link
    got = link_get(pair.us.link_port, "/internal/v1/status", ca=pair.ca, cert=foreign)
    assert isinstance(got, Exception) or got[0] != 200, got
    # the deployment's admin certificate: status yes, the stream no
    admin = (certs + "/admin.pem", certs + "/admin.key")
    got = link_get(port, "/internal/v1/status", ca=pair.ca, cert=admin)
    assert not isinstance(got, Exception), got
    assert got[0] == 200, got
    st = json.loads(got[1])
    assert st["region"] == "eu" and st["role"] == "primary"
    got = link_get(port, "/internal/v1/replication/stream?from=1", ca=pair.ca, cert=admin)
    assert not isinstance(got, Exception), got
    assert got[0] == 403, got
    assert json.loads(got[1])["error"]["code"] == "forbidden"
    # admin cannot forward API writes either
    got = link_get(port, "/v1/me", ca=pair.ca, cert=admin)
    assert not isinstance(got, Exception) and got[0] == 403, got


# --- 10. snapshot catch-up after a long outage -------------------------------

def test_long_outage_catches_up_from_a_snapshot(make_pair):
    p = make_pair(log_max_age=1)
    eu, us = p.eu, p.us
    u = signup(eu)
    tok = u["access_token"]
    us.wait_position(lsn_seq(u["lsn"]))
    assert us.stop() == 0
    made = [create(eu, tok, "archive", {"n": i}).json() for i in range(50)]
    time.sleep(3)  # the log trim runs every second: entries older than 1 s go
    # the primary's log no longer reaches back to us's position: asking for
    # it as us does gets 410 snapshot_required
    certs = p.certs
    got = link_get(eu.link_port, "/internal/v1/replication/stream?from=%d" % (lsn_seq(u["lsn"]) + 1),
                   ca=p.ca, cert=(certs + "/us.pem", certs + "/us.key"))
    assert not isinstance(got, Exception), got
    assert got[0] == 410, got
    assert json.loads(got[1])["error"]["code"] == "snapshot_required"
    us.start()
    try:
        p.wait_synced(timeout=20)
    except AssertionError:
        raise AssertionError("us did not catch up after the log was trimmed\n" + p.logs())
    assert_verify_identical(p)
    at_us = list_all(us, tok, "archive")
    assert sorted(x["id"] for x in at_us) == sorted(x["id"] for x in made)
    assert {x["id"]: x for x in at_us} == {x["id"]: x for x in made}
    assert us.readyz()["role"] == "secondary"
    # and it keeps streaming afterwards
    w = create(eu, tok, "archive", {"n": "after"})
    g = us.get(records_path("archive", w.json()["id"]), tok,
               headers={"X-Tandem-Min-LSN": w.headers["X-Tandem-LSN"]})
    assert g.status_code == 200, g.text


# --- 11. status and metrics --------------------------------------------------

def test_status_and_metrics(make_pair):
    p = make_pair()
    eu, us = p.eu, p.us
    u = signup(eu)
    tok = u["access_token"]
    create(eu, tok, "m", {"x": 1})
    st = p.wait_quiet()
    e, s = st["eu"], st["us"]
    assert e["role"] == "primary" and s["role"] == "secondary"
    assert e["region"] == "eu" and s["region"] == "us"
    assert e["epoch"] == s["epoch"] >= 1
    assert e["lag"]["positions"] == 0 and s["lag"]["positions"] == 0
    assert e["last_seq"] == s["applied_seq"] == eu.position() >= 3
    assert e["link"]["state"] == "up" and s["link"]["state"] == "up"
    assert e["degraded"] is False and s["degraded"] is False
    assert "degraded_since" not in e

    # metrics: lag and forwarded writes
    for region in (eu, us):
        m = region.metrics()
        for name in ("tandem_replication_lag_seconds", "tandem_replication_lag_positions",
                     "tandem_replication_applied_total", "tandem_forwarded_writes_total",
                     "tandem_replication_degraded"):
            assert '%s{region="%s"}' % (name, region.name) in m, (region.name, name)
        assert m['tandem_replication_degraded{region="%s"}' % region.name] == 0
    assert us.metric("tandem_replication_lag_positions") == 0
    fwd0 = us.metric("tandem_forwarded_writes_total")
    applied0 = us.metric("tandem_replication_applied_total")
    r = us.post(records_path("m"), tok, json={"x": 2})
    assert r.status_code == 201, r.text
    assert us.metric("tandem_forwarded_writes_total") == fwd0 + 1
    assert us.metric("tandem_replication_applied_total") >= applied0 + 1
    assert eu.metric("tandem_forwarded_writes_total") == 0

    # text output too
    text = run("status", "--config", p.config).stdout
    assert re.search(r"^eu\s+primary\s+\d+", text, re.M), text
    assert re.search(r"^us\s+secondary\s+\d+", text, re.M), text

    # us stopped: eu degraded since a time, us not running
    assert us.stop() == 0
    t_stop = time.time()

    def degraded():
        st = p.status()
        return st if st["eu"].get("degraded") else None
    st = wait_until(degraded, timeout=5, what="eu degraded")
    e, s = st["eu"], st["us"]
    assert e["role"] == "primary"
    assert e["link"]["state"] == "down"
    assert ISO.match(e.get("degraded_since", "")), e
    since = datetime.datetime.strptime(e["degraded_since"][:19], "%Y-%m-%dT%H:%M:%S").replace(
        tzinfo=datetime.timezone.utc).timestamp()
    assert abs(since - t_stop) < 3, (e["degraded_since"], t_stop)
    assert s.get("error") == "not running (connection refused)", s
    assert eu.metric("tandem_replication_degraded") == 1
    # writes go on at eu, and the lag grows
    create(eu, tok, "m", {"x": 3})
    time.sleep(0.3)
    st = p.status()
    assert st["eu"]["lag"]["positions"] >= 1, st["eu"]
    assert st["eu"]["lag"]["seconds"] >= 0.2, st["eu"]
    assert eu.metric("tandem_replication_lag_seconds") >= 0.2
    text = run("status", "--config", p.config).stdout
    assert re.search(r"^us\s+not running \(connection refused\)$", text, re.M), text
    assert "since" in text
    assert eu.metric("tandem_replication_lag_positions") >= 1
    # verify cannot compare with a region down
    v = p.verify()
    assert v.returncode == 2, (v.returncode, v.stdout, v.stderr)
    assert "us" in v.stderr


# --- the primary unreachable ---------------------------------------------------

def test_primary_down_writes_at_us_fail_reads_go_on(make_pair):
    p = make_pair(min_lsn_wait_ms=1000, reconnect_max_ms=300)
    eu, us = p.eu, p.us
    u = signup(eu)
    tok = u["access_token"]
    w = create(eu, tok, "keep", {"x": 1})
    us.wait_position(lsn_seq(w.headers["X-Tandem-LSN"]))
    assert eu.stop() == 0
    key = "pd-" + uuid.uuid4().hex
    body = {"x": 2, "key": key}
    t0 = time.monotonic()
    r = us.post(records_path("keep"), tok, json=body, headers={"Idempotency-Key": key})
    assert r.status_code == 503, r.text
    assert error_code(r) == "primary_unavailable"
    assert r.headers.get("Retry-After"), dict(r.headers)
    assert r.headers["X-Tandem-Region"] == "us"
    assert time.monotonic() - t0 < 5
    # reads at us go on (eventual and session); a global one cannot be
    # answered without the primary: 503, never stale data
    for mode in ("eventual", "session"):
        g = us.get(records_path("keep", w.json()["id"]), tok, headers={"X-Tandem-Consistency": mode})
        assert g.status_code == 200 and g.json() == w.json(), (mode, g.text)
    assert len(list_all(us, tok, "keep")) == 1
    g = us.get(records_path("keep"), tok, headers={"X-Tandem-Consistency": "global"})
    assert g.status_code == 503, g.text
    assert error_code(g) == "not_caught_up"
    st = p.status()
    assert "error" in st["eu"], st["eu"]
    assert st["us"]["degraded"] is True and st["us"]["link"]["state"] == "down", st["us"]
    assert us.metric("tandem_replication_degraded") == 1
    assert us.metric("tandem_forwarded_write_failures_total") >= 1
    # the primary back: the same write with the same key lands once
    eu.start()

    def retried():
        r = us.post(records_path("keep"), tok, json=body, headers={"Idempotency-Key": key})
        if r.status_code == 503 and error_code(r) == "primary_unavailable":
            return None
        return r
    r = wait_until(retried, timeout=10, interval=0.1, what="a write at us after eu came back")
    assert r.status_code == 201, r.text
    got = us.get(records_path("keep", r.json()["id"]), tok)
    assert got.status_code == 200 and got.json() == r.json()
    assert len(list_all(eu, tok, "keep", filter_="key = '%s'" % key)) == 1
    p.wait_synced()
    assert_verify_identical(p)


# --- 12. the schema reaches a fresh secondary --------------------------------

def test_fresh_secondary_gets_the_schema_and_the_data(make_pair):
    p = make_pair(start=False)
    eu, us = p.eu, p.us
    eu.start()
    u = signup(eu)
    tok = u["access_token"]
    made = [create(eu, tok, "early", {"n": i}).json() for i in range(5)]
    eu_ready = eu.readyz()
    assert eu_ready["schema_version"] >= 1
    us.start()
    p.wait_synced()
    ready = us.readyz()
    assert ready["role"] == "secondary"
    assert ready["schema_version"] == eu_ready["schema_version"]
    assert ready["position"] == eu.position()
    assert ready["epoch"] == eu_ready["epoch"]
    got = list_all(us, tok, "early")
    assert {x["id"]: x for x in got} == {x["id"]: x for x in made}
    me = us.get("/v1/me", tok)
    assert me.status_code == 200 and me.json()["id"] == u["user"]["id"]
    assert_verify_identical(p)


# --- backpressure (optional in the issue) ------------------------------------

def test_backpressure_slows_writes_when_the_secondary_lags(make_pair):
    p = make_pair(rpo_budget_ms=100, link_delay_ms=400, backpressure_wait_ms=2000)
    eu, us = p.eu, p.us
    u = signup(eu)
    tok = u["access_token"]
    us.wait_position(lsn_seq(u["lsn"]))
    waits0 = eu.metric("tandem_backpressure_waits_total")
    slow, lagged, ok = 0, 0, 0
    t_end = time.monotonic() + 2.5
    while time.monotonic() < t_end:
        t0 = time.monotonic()
        r = eu.post(records_path("bp"), tok, json={"x": 1})
        took = time.monotonic() - t0
        if r.status_code == 503:
            assert error_code(r) == "replication_lag", r.text
            assert r.headers.get("Retry-After")
            lagged += 1
        else:
            assert r.status_code == 201, r.text
            ok += 1
            if took >= 0.3:
                slow += 1
    print("backpressure: ok=%d slow=%d lagged=%d waits=%d" % (ok, slow, lagged, eu.metric("tandem_backpressure_waits_total") - waits0))
    assert eu.metric("tandem_backpressure_waits_total") > waits0
    assert slow + lagged > 0, (ok, slow, lagged)
    assert ok > 0


def link_warnings(region):
    """The msg of every warn line of region's log about its link connections."""
    out = []
    for line in region.log().splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if obj.get("level") == "warn" and obj.get("msg", "").startswith("link: cannot connect"):
            out.append(obj["msg"])
    return out


def test_link_logs_why_it_cannot_connect_rate_limited(tmp_path):
    """Pins issue 8 (section 4): a secondary whose link cannot reach the
    primary said nothing at warn (only a debug "TLS error", and a refused
    port was reported as a TLS error). Now every failed attempt is logged at
    warn with its real cause, once per 10 s per cause: a refused port, then
    a primary with a certificate of another CA. (reconnect_max_ms 300: the
    attempts come quickly, so a short wait sees several.)"""
    pair = TwoRegions(tmp_path / "pair", replication={"reconnect_max_ms": 300})
    try:
        # eu is not running: us's link is refused, attempt after attempt
        pair.us.start()
        lines = wait_until(lambda: link_warnings(pair.us), timeout=10, what="a link warning")
        assert lines[0] == "link: cannot connect to eu at 127.0.0.1:%d: connection refused" % (
            pair.eu.link_port), lines
        time.sleep(1.2)  # several reconnects (at most 0.3 s apart), one line
        lines = link_warnings(pair.us)
        assert len([m for m in lines if "connection refused" in m]) == 1, lines
        # eu with a certificate of another deployment's CA
        other = tmp_path / "other"
        run("init", "--address", "127.0.0.1", "--data", str(other), "--port-base", str(pair.port_base + 40))
        for name in ("eu.pem", "eu.key"):
            with open(str(other / "certs" / name), "rb") as src, \
                    open(os.path.join(pair.certs, name), "wb") as dst:
                dst.write(src.read())
        # (its /healthz cannot be checked with our CA: started by hand)
        log = open(pair.eu.log_path, "ab")
        pair.eu.proc = subprocess.Popen([TANDEM, "region", "--config", pair.config, "--region", "eu"],
                                        stdout=log, stderr=log)
        log.close()
        want = ("link: cannot connect to eu at 127.0.0.1:%d: certificate verify failed: "
                "unable to get local issuer certificate" % pair.eu.link_port)
        wait_until(lambda: want in link_warnings(pair.us), timeout=10, what=want)
        # and the region says so in status, not "TLS or crypto error"
        assert not any("TLS or crypto error" in m for m in link_warnings(pair.us))
    finally:
        pair.stop_all()
