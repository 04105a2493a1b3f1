"""Bad input gets a clear error, and nothing is lost (issue 2, section 6).

Each test sends one kind of bad input to the real region node and checks the
status, the stable error code, and that nothing was created or corrupted.
"""
import os
import signal
import socket
import sqlite3
import ssl
import threading
import time
import uuid

import requests

from conftest import (Region, error_code, is_closed, read_response, signup,
                      tls_connect)

JSON = {"Content-Type": "application/json"}


def count_records(region, token, collection):
    r = region.get("/v1/collections/%s/records?limit=1000" % collection, token)
    assert r.status_code == 200, r.text
    return len(r.json()["items"])


def test_malformed_json_is_400_and_creates_nothing(region, user):
    t = user["access_token"]
    for body in ['{"a": 1', '{"a": }', "{'a': 1}", "", "nul", '{"a": 1}}', '{"a":1,"a":2}']:
        r = region.post("/v1/collections/bad/records", t, data=body, headers=JSON)
        assert r.status_code == 400, (body, r.text)
        assert error_code(r) == "malformed_json"
        assert r.headers["X-Tandem-Region"] == "eu"
        assert r.headers["X-Request-Id"]
    assert count_records(region, t, "bad") == 0


def test_json_that_is_not_an_object_is_400(region, user):
    t = user["access_token"]
    for body in ["[]", "[1,2]", '"text"', "42", "true", "null"]:
        r = region.post("/v1/collections/notobj/records", t, data=body, headers=JSON)
        assert r.status_code == 400, (body, r.text)
        assert error_code(r) == "not_an_object"
    assert count_records(region, t, "notobj") == 0


def test_body_too_large_is_413(region, user):
    t = user["access_token"]
    big = '{"x": "' + "a" * (1024 * 1024) + '"}'
    r = region.post("/v1/collections/big/records", t, data=big, headers=JSON)
    assert r.status_code == 413
    assert error_code(r) == "payload_too_large"
    assert r.headers["X-Tandem-Region"] == "eu"
    # just under the limit is fine
    ok = '{"x": "' + "a" * (1024 * 1024 - 100) + '"}'
    r = region.post("/v1/collections/big/records", t, data=ok, headers=JSON)
    assert r.status_code == 201, r.text
    assert count_records(region, t, "big") == 1


def test_headers_too_large_is_431(region, user):
    r = region.get("/v1/me", user["access_token"], headers={"X-Filler": "a" * 17000})
    assert r.status_code == 431
    assert error_code(r) == "headers_too_large"
    # many small headers beyond the count limit (100)
    h = {"X-H%d" % i: "v" for i in range(120)}
    r = region.get("/v1/me", user["access_token"], headers=h)
    assert r.status_code == 431
    # and the region still serves
    assert region.get("/v1/me", user["access_token"]).status_code == 200


def test_unknown_route_is_404(region):
    for path in ["/nope", "/v1", "/v1/collections", "/v1/collections/a/records/b/c", "/v2/me"]:
        r = region.get(path)
        assert r.status_code == 404, path
        assert error_code(r) == "not_found"


def test_wrong_method_is_405_with_allow(region, user):
    r = requests.delete(region.url + "/v1/me", verify=region.ca)
    assert r.status_code == 405
    assert error_code(r) == "method_not_allowed"
    assert r.headers["Allow"] == "GET, HEAD"
    r = requests.put(region.url + "/v1/collections/x/records", verify=region.ca)
    assert r.status_code == 405
    assert set(a.strip() for a in r.headers["Allow"].split(",")) == {"GET", "HEAD", "POST"}
    r = requests.get(region.url + "/v1/auth/login", verify=region.ca)
    assert r.status_code == 405 and r.headers["Allow"] == "POST"


def test_wrong_content_type_is_415(region, user):
    t = user["access_token"]
    for ctype in ["text/plain", "application/x-www-form-urlencoded", "application/jsonx"]:
        r = region.post("/v1/collections/ct/records", t, data='{"a":1}',
                        headers={"Content-Type": ctype})
        assert r.status_code == 415, ctype
        assert error_code(r) == "unsupported_media_type"
    r = region.post("/v1/collections/ct/records", t, data='{"a":1}')  # no Content-Type
    assert r.status_code == 415
    # with a charset parameter it is accepted
    r = region.post("/v1/collections/ct/records", t, data='{"a":1}',
                    headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 201
    assert count_records(region, t, "ct") == 1


def test_missing_forged_and_revoked_tokens_are_401(region):
    u = signup(region)
    t = u["access_token"]
    r = region.get("/v1/me")
    assert r.status_code == 401 and error_code(r) == "missing_token"
    head, payload, sig = t.split(".")
    forged = head + "." + payload + "." + ("A" if sig[0] != "A" else "B") + sig[1:]
    r = region.get("/v1/me", forged)
    assert r.status_code == 401 and error_code(r) == "invalid_token"
    r = region.get("/v1/me", "not-a-token")
    assert r.status_code == 401 and error_code(r) == "invalid_token"
    assert region.post("/v1/auth/logout", t).status_code == 204
    r = region.get("/v1/me", t)
    assert r.status_code == 401 and error_code(r) == "token_revoked"


def test_another_users_record_is_404(region, user, other_user):
    r = region.post("/v1/collections/notes/records", user["access_token"], json={"secret": 1})
    rid = r.json()["id"]
    for method in ["GET", "PUT", "PATCH", "DELETE"]:
        kw = {"json": {"stolen": True}} if method in ("PUT", "PATCH") else {}
        r = requests.request(method, region.url + "/v1/collections/notes/records/" + rid,
                             headers={"Authorization": "Bearer " + other_user["access_token"]},
                             verify=region.ca, **kw)
        assert r.status_code == 404, method
        assert error_code(r) == "record_not_found"
    r = region.get("/v1/collections/notes/records/" + rid, user["access_token"])
    assert r.status_code == 200 and r.json()["data"] == {"secret": 1} and r.json()["version"] == 1


def test_bad_filter_is_400_with_position(region, user):
    t = user["access_token"]
    cases = [("done = ", 8), ("done == true", 6), ("(a = 1", 7), ("a = 'x", 5), ("a = 1 &&", 9)]
    for flt, pos in cases:
        r = region.get("/v1/collections/f/records", t, params={"filter": flt})
        assert r.status_code == 400, flt
        err = r.json()["error"]
        assert err["code"] == "invalid_filter"
        assert err["position"] == pos, (flt, err)
        assert "position %d" % pos in err["message"]


def test_limit_out_of_range_is_400(region, user):
    t = user["access_token"]
    for limit in ["0", "1001", "-1", "abc", "", "1e3"]:
        r = region.get("/v1/collections/l/records", t, params={"limit": limit})
        assert r.status_code == 400, limit
        assert error_code(r) == "invalid_limit"
    assert region.get("/v1/collections/l/records", t, params={"limit": "1000"}).status_code == 200


def test_slow_client_is_closed_while_others_are_served(tmp_path):
    reg = Region(tmp_path, edit_config=lambda t: t.replace(
        "header_timeout_ms = 10000", "header_timeout_ms = 1500"))
    reg.start()
    try:
        slow = tls_connect(reg)
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        start = time.time()
        closed = False
        served = 0
        # trickle a byte now and then: the header timeout is not reset by it
        while time.time() - start < 6:
            try:
                slow.sendall(b"X")
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
                closed = True
                break
            if is_closed(slow, timeout=0.2):
                closed = True
                break
            r = requests.get(reg.url + "/healthz", verify=reg.ca, timeout=5)
            assert r.status_code == 200
            served += 1
        elapsed = time.time() - start
        assert closed, "slow client was never closed"
        assert 1.0 <= elapsed < 4.5, elapsed
        assert served >= 1
    finally:
        assert reg.stop() == 0


def test_garbage_tls_handshake_is_refused_and_region_survives(region):
    for garbage in [os.urandom(600), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                    b"\x16\x03\x01\x00\x05hello", b"\x16\x03\x03\xff\xff" + os.urandom(100)]:
        s = socket.create_connection(("127.0.0.1", region.port), timeout=5)
        s.sendall(garbage)
        s.settimeout(5)
        try:
            data = s.recv(4096)
        except (ConnectionResetError, socket.timeout):
            data = b""
        # never an HTTP answer over a broken handshake; at most a TLS alert
        assert not data.startswith(b"HTTP/"), data
        s.close()
    assert requests.get(region.url + "/healthz", verify=region.ca).status_code == 200


def test_kill9_during_write_burst_keeps_every_acknowledged_write(tmp_path):
    reg = Region(tmp_path)
    reg.start()
    u = signup(reg)
    token = u["access_token"]
    acked = {}
    lock = threading.Lock()
    stop = threading.Event()

    def writer(n):
        s = reg.session()
        i = 0
        while not stop.is_set():
            marker = "%d-%d-%s" % (n, i, uuid.uuid4().hex[:8])
            try:
                r = s.post(reg.url + "/v1/collections/burst/records",
                           headers={"Authorization": "Bearer " + token},
                           json={"marker": marker, "n": i}, timeout=5)
            except requests.RequestException:
                return  # the region died under us: this write was not acknowledged
            if 200 <= r.status_code < 300:
                with lock:
                    acked[r.json()["id"]] = marker
            i += 1

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for th in threads:
        th.start()
    time.sleep(1.5)
    reg.kill9()
    stop.set()
    for th in threads:
        th.join()
    assert len(acked) > 20, "too few writes acknowledged before the kill"

    db = os.path.join(reg.data, "data", "eu", "tandem.db")
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()

    reg.start()
    found = {}
    cursor = None
    while True:
        params = {"limit": "1000"}
        if cursor:
            params["cursor"] = cursor
        r = reg.get("/v1/collections/burst/records", token, params=params)
        assert r.status_code == 200, r.text
        for item in r.json()["items"]:
            found[item["id"]] = item["data"]["marker"]
        cursor = r.json()["next_cursor"]
        if not cursor:
            break
    missing = [i for i in acked if i not in found]
    assert not missing, "%d acknowledged writes lost" % len(missing)
    for rid, marker in acked.items():
        assert found[rid] == marker
    assert reg.stop() == 0
