"""Browsers, metrics and API errors against the real region node:

- CORS: the exact preflight a browser sends (Origin, Access-Control-Request-
  Method, Access-Control-Request-Headers), then the actual request, for an
  allowed origin, a refused one, `*`, and CORS off; a real headless Chromium
  fetch() from a page on another loopback origin when chromium is installed.
- /metrics only on the region's metrics_listen (plain HTTP), 404 on the API.
- If-Match / If-None-Match without quotes: 400 invalid_precondition.
- malformed_json messages in words, at the offending token.
- a `global` write that times out: the message with and without a key.
- metrics_listen clashes refused by `tandem config check`.

Before this work: no CORS header at all and OPTIONS was 405; /metrics was
public on the API port; `If-Match: 6` was 412; malformed_json leaked
jansson's text ("'[' or '{' expected near 'x'"); the timeout told a client
without a key to "retry with the same Idempotency-Key".
"""
import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid

import pytest
import requests

from conftest import Region, error_code, free_port_base, request, run, signup
from regions import TwoRegions, list_all, records_path

EXPOSED = {"etag", "location", "x-tandem-lsn", "x-tandem-region", "x-request-id", "retry-after",
           "idempotent-replayed"}
ALLOWED_HEADERS = {"authorization", "content-type", "idempotency-key", "if-match", "if-none-match",
                   "x-request-id", "x-tandem-consistency", "x-tandem-durability", "x-tandem-min-lsn"}


def split(value):
    return {v.strip().lower() for v in (value or "").split(",") if v.strip()}


def set_cors(origins):
    def edit(text):
        assert "\ncors_origins =" in text
        return text.replace("\ncors_origins =", "\ncors_origins = " + origins, 1)
    return edit


def preflight(region, path, origin, method, headers="authorization,content-type"):
    """The request a browser sends before a non-simple cross-origin call."""
    h = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        h["Access-Control-Request-Headers"] = headers
    return requests.options(region.url + path, headers=h, verify=region.ca, timeout=10)


APP = "http://localhost:%d" % 4173  # any origin spelled as a browser does


@pytest.fixture(scope="module")
def cors_region(tmp_path_factory):
    r = Region(tmp_path_factory.mktemp("cors"),
               edit_config=set_cors("%s, https://app.example.com" % APP))
    r.start()
    yield r
    assert r.stop() == 0, r.log()[-2000:]


# --- CORS -----------------------------------------------------------------

def test_cors_preflight_then_actual_request_from_an_allowed_origin(cors_region):
    """Pins: no CORS support (OPTIONS was 405, no Access-Control-* header), so
    no browser page on another origin could call the API."""
    rg = cors_region
    u = signup(rg)
    p = records_path("notes")
    r = preflight(rg, p, APP, "POST", "authorization,content-type,idempotency-key,x-tandem-durability")
    assert r.status_code == 204, (r.status_code, r.text)
    assert r.headers["Access-Control-Allow-Origin"] == APP
    assert split(r.headers["Access-Control-Allow-Methods"]) == {"get", "head", "post"}
    assert {"authorization", "content-type", "idempotency-key", "x-tandem-durability"} <= split(
        r.headers["Access-Control-Allow-Headers"])
    assert split(r.headers["Access-Control-Allow-Headers"]) == ALLOWED_HEADERS
    assert int(r.headers["Access-Control-Max-Age"]) > 0
    assert "origin" in split(r.headers.get("Vary"))
    assert r.content == b""
    # the route's methods, not a blanket list
    r = preflight(rg, "/v1/me", APP, "GET", "authorization")
    assert r.status_code == 204
    assert split(r.headers["Access-Control-Allow-Methods"]) == {"get", "head"}
    # the actual request, as the browser then sends it
    r = rg.post(p, u["access_token"], json={"v": 1},
                headers={"Origin": APP, "Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 201, r.text
    assert r.headers["Access-Control-Allow-Origin"] == APP
    assert split(r.headers["Access-Control-Expose-Headers"]) == EXPOSED
    assert "origin" in split(r.headers.get("Vary"))
    # errors too: a page must be able to read the JSON error
    r = rg.get("/v1/me", headers={"Origin": APP})
    assert r.status_code == 401 and error_code(r) == "missing_token"
    assert r.headers["Access-Control-Allow-Origin"] == APP
    # the configured origin with its default port, in another case, is the same origin
    r = rg.get("/healthz", headers={"Origin": "https://APP.example.com:443"})
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    # curl, the same preflight
    out = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-D", "-", "--cacert", rg.ca, "-X", "OPTIONS",
         "-H", "Origin: " + APP, "-H", "Access-Control-Request-Method: DELETE",
         "-H", "Access-Control-Request-Headers: authorization,if-match",
         rg.url + records_path("notes", "abc")],
        capture_output=True, text=True, check=True, timeout=10).stdout
    assert out.startswith("HTTP/1.1 204"), out
    head = out.lower().splitlines()
    assert "access-control-allow-origin: %s" % APP in head, out
    methods = [x for x in head if x.startswith("access-control-allow-methods:")]
    assert methods and "delete" in split(methods[0].split(":", 1)[1]), out


def test_cors_refuses_other_origins(cors_region):
    """A preflight from an origin not in cors_origins: 403 without any
    Access-Control-Allow-* header, so the browser refuses the request."""
    rg = cors_region
    for origin in ["https://evil.example", "http://localhost:4174", "https://app.example.com.evil.example",
                   "null", "http://app.example.com"]:
        r = preflight(rg, records_path("notes"), origin, "POST")
        assert r.status_code == 403, (origin, r.status_code)
        assert error_code(r) == "origin_not_allowed"
        assert not [h for h in r.headers if h.lower().startswith("access-control-")], dict(r.headers)
        r = rg.get("/healthz", headers={"Origin": origin})
        assert r.status_code == 200
        assert "Access-Control-Allow-Origin" not in r.headers
        assert "origin" in split(r.headers.get("Vary"))  # a cache must not mix them up
    # an unknown route: 404, preflight or not
    r = preflight(rg, "/v1/nope", APP, "GET")
    assert r.status_code == 404 and error_code(r) == "not_found"
    # OPTIONS that is not a preflight: what the resource allows
    r = requests.options(rg.url + records_path("notes"), verify=rg.ca, timeout=10)
    assert r.status_code == 204 and split(r.headers["Allow"]) == {"get", "head", "post"}


def test_cors_wildcard_and_off(tmp_path):
    """`*` (development): any origin gets Allow-Origin `*`. CORS off (the
    default, ""): no CORS header at all, every preflight refused."""
    star = Region(tmp_path / "star", edit_config=set_cors("*"))
    off = Region(tmp_path / "off")
    star.start()
    off.start()
    try:
        r = preflight(star, records_path("notes", "abc"), "https://anything.example:8443", "PATCH",
                      "authorization,content-type,if-match")
        assert r.status_code == 204
        assert r.headers["Access-Control-Allow-Origin"] == "*"
        assert "patch" in split(r.headers["Access-Control-Allow-Methods"])
        r = star.get("/readyz", headers={"Origin": "https://anything.example:8443"})
        assert r.headers["Access-Control-Allow-Origin"] == "*"
        assert split(r.headers["Access-Control-Expose-Headers"]) == EXPOSED

        r = preflight(off, records_path("notes"), APP, "POST")
        assert r.status_code == 403 and error_code(r) == "origin_not_allowed"
        assert not [h for h in r.headers if h.lower().startswith("access-control-")]
        r = off.get("/healthz", headers={"Origin": APP})
        assert not [h for h in r.headers if h.lower().startswith("access-control-")]
        assert "Vary" not in r.headers
    finally:
        codes = [star.stop(), off.stop()]
    assert codes == [0, 0], (codes, star.log()[-2000:], off.log()[-2000:])  # clean exits (sanitizers)


def chromium():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


class _Page(http.server.BaseHTTPRequestHandler):
    page = b""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(self.page)))
        self.end_headers()
        self.wfile.write(self.page)

    def log_message(self, *args):
        pass


@pytest.mark.skipif(chromium() is None, reason="chromium is not installed (Debian package chromium)")
def test_cors_real_browser_fetch(tmp_path):
    """A real headless Chromium runs fetch() from a page on another loopback
    origin: the allowed origin reads the answer and its exposed headers; a
    page of another origin is refused by the browser itself."""
    page_port = free_port_base(count=2)
    allowed = "http://127.0.0.1:%d" % page_port
    rg = Region(tmp_path / "r", edit_config=set_cors(allowed))
    rg.start()
    try:
        u = signup(rg)
        script = """
<html><body><pre id="out">pending</pre><script>
(async () => {
  const out = {};
  try {
    const r = await fetch("%(api)s/v1/collections/notes/records", {
      method: "POST",
      headers: {"Authorization": "Bearer %(token)s", "Content-Type": "application/json",
                "Idempotency-Key": "%(key)s"},
      body: JSON.stringify({"from": "chromium"})});
    out.status = r.status;
    out.lsn = r.headers.get("X-Tandem-LSN");
    out.etag = r.headers.get("ETag");
    out.body = await r.json();
  } catch (e) { out.error = String(e); }
  document.getElementById("out").textContent = "RESULT" + JSON.stringify(out) + "END";
})();
</script></body></html>"""
        key = uuid.uuid4().hex
        _Page.page = (script % {"api": rg.url, "token": u["access_token"], "key": key}).encode()
        results = {}
        for port in (page_port, page_port + 1):  # the allowed origin, then another one
            srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Page)
            t = threading.Thread(target=srv.serve_forever, daemon=True)
            t.start()
            try:
                p = subprocess.run(
                    [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--no-first-run", "--user-data-dir=%s" % (tmp_path / ("chrome%d" % port)),
                     "--ignore-certificate-errors", "--virtual-time-budget=10000", "--dump-dom",
                     "http://127.0.0.1:%d/" % port],
                    capture_output=True, text=True, timeout=90)
            finally:
                srv.shutdown()
                srv.server_close()
            dom = p.stdout
            assert "RESULT" in dom, (p.returncode, dom[-2000:], p.stderr[-2000:])
            results[port] = json.loads(dom.split("RESULT", 1)[1].split("END", 1)[0])
        ok = results[page_port]
        assert ok.get("status") == 201, ok
        assert ok["body"]["data"] == {"from": "chromium"}
        assert ok["lsn"] and ok["etag"] == '"1"', ok  # exposed to the page's script
        refused = results[page_port + 1]
        assert "error" in refused and "status" not in refused, refused  # TypeError: Failed to fetch
        # the refused page's write was never sent (the preflight failed first)
        items = list_all(rg, u["access_token"], "notes")
        assert len(items) == 1, items
    finally:
        code = rg.stop()
    assert code == 0, rg.log()[-2000:]


# --- /metrics -------------------------------------------------------------

def test_metrics_only_on_the_metrics_listener(cors_region):
    """Pins: /metrics was public on the API port (traffic, replication and
    failover state for anyone on the internet)."""
    rg = cors_region
    r = rg.get("/metrics")
    assert r.status_code == 404 and error_code(r) == "not_found"
    with requests.Session() as s:
        s.trust_env = False
        r = s.get(rg.metrics_url, timeout=5)
        assert r.status_code == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert 'tandem_http_requests_total{region="eu",route="/healthz",status="2xx"}' in r.text
        assert "tandem_replication_position" in r.text
        # the API's /metrics 404 is counted as an unmatched route, not as /metrics
        assert 'route="/metrics"' not in r.text
        r = s.head(rg.metrics_url, timeout=5)
        assert r.status_code == 200 and r.content == b""
        base = rg.metrics_url[:-len("/metrics")]
        r = s.get(base + "/healthz", timeout=5)
        assert r.status_code == 404 and error_code(r) == "not_found"
        r = s.post(rg.metrics_url, data=b"", timeout=5)
        assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD"
    # plain HTTP only: no TLS on that port, and nothing else to learn there
    raw = socket.create_connection(("127.0.0.1", int(rg.metrics_url.split(":")[2].split("/")[0])), timeout=5)
    raw.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head = raw.recv(64)
    raw.close()
    assert head.startswith(b"HTTP/1.1 200")


def test_metrics_listen_clashes_are_config_errors(tmp_path):
    run("init", "--address", "127.0.0.1", "--data", str(tmp_path), "--port-base", str(free_port_base()))
    cfg = tmp_path / "tandem.ini"
    text = cfg.read_text()
    lines = text.splitlines()
    eu_api = [x for x in lines if x.startswith("api_listen")][0].split("=")[1].strip()
    us_link = [x for x in lines if x.startswith("link_listen")][1].split("=")[1].strip()
    metrics = [n for n, x in enumerate(lines) if x.startswith("metrics_listen")]
    lines[metrics[0]] = "metrics_listen = " + eu_api        # eu's metrics on eu's API
    lines[metrics[1]] = "metrics_listen = " + us_link       # us's metrics on us's link
    cfg.write_text("\n".join(lines) + "\n")
    r = run("config", "check", str(cfg), check=False)
    assert r.returncode == 1
    assert "[region eu] metrics_listen %s is already the api_listen of region eu" % eu_api in r.stderr, r.stderr
    assert "[region us] metrics_listen %s is already the link_listen of region us" % us_link in r.stderr
    assert all(line.startswith(str(cfg) + ":") for line in r.stderr.strip().splitlines())
    # two regions on one metrics address
    lines[metrics[1]] = "metrics_listen = 127.0.0.1:1"
    lines[metrics[0]] = "metrics_listen = 127.0.0.1:1"
    cfg.write_text("\n".join(lines) + "\n")
    r = run("config", "check", str(cfg), check=False)
    assert r.returncode == 1
    assert "[region us] metrics_listen 127.0.0.1:1 is already the metrics_listen of region eu" in r.stderr


# --- errors ---------------------------------------------------------------

def test_if_match_without_quotes_is_400(cors_region):
    """Pins: `If-Match: 6` (no quotes) was compared as an ETag, never
    matched, and answered 412 precondition_failed, blaming the record."""
    rg = cors_region
    u = signup(rg)
    t = u["access_token"]
    r = rg.post(records_path("cas"), t, json={"v": 1})
    rid = r.json()["id"]
    path = records_path("cas", rid)
    for value in ["1", "W/1", '"1', '"1" "2"', '"1";', "abc, \"1\"", ",", "**", '"a b"']:
        for method in ("PUT", "PATCH", "DELETE"):
            r = request(rg, method, path, t, json={"v": 9} if method != "DELETE" else None,
                        headers={"If-Match": value})
            assert r.status_code == 400, (method, value, r.status_code, r.text)
            assert error_code(r) == "invalid_precondition"
            assert "quoted" in r.json()["error"]["message"]
        r = rg.get(path, t, headers={"If-None-Match": value})
        assert r.status_code == 400 and error_code(r) == "invalid_precondition", (value, r.text)
    r = rg.get(path, t)
    assert r.status_code == 200 and r.json()["version"] == 1 and r.json()["data"] == {"v": 1}
    # the valid forms keep working
    assert request(rg, "PUT", path, t, json={"v": 2}, headers={"If-Match": '"9"'}).status_code == 412
    assert request(rg, "PUT", path, t, json={"v": 2}, headers={"If-Match": 'W/"7", "1"'}).status_code == 200
    assert request(rg, "PUT", path, t, json={"v": 3}, headers={"If-Match": "*"}).status_code == 200
    assert rg.get(path, t, headers={"If-None-Match": '"3"'}).status_code == 304
    assert rg.get(path, t, headers={"If-None-Match": '"1", "2"'}).status_code == 200
    r = request(rg, "PUT", path, t, json={"v": 4}, headers={"If-Match": '"' + "x" * 600 + '"'})
    assert r.status_code == 400 and error_code(r) == "invalid_precondition"


@pytest.mark.parametrize("body, message", [
    (b"x", "malformed JSON at line 1, column 1: invalid value x (strings need double quotes; "
           "literals are true, false, null)"),
    (b'{"a":1,}', "malformed JSON at line 1, column 8: unexpected '}'"),
    (b"{'a': 1}", "malformed JSON at line 1, column 2: unexpected character '''"),
    (b'{\n  "a": 1\n  "b": 2\n}', "malformed JSON at line 3, column 3: unexpected string "
                                  "(is a ':' or ',' missing?)"),
    (b'{"a": tru}', "malformed JSON at line 1, column 7: invalid value tru (strings need double quotes; "
                    "literals are true, false, null)"),
    (b'{"a": "b', "malformed JSON at line 1, column 9: the body ends inside a string"),
    (b'{"a": [1, 2', "malformed JSON at line 1, column 12: the body ends before the JSON value is complete"),
    (b'{"a": 1} {"b": 2}', "malformed JSON at line 1, column 10: unexpected text after the JSON value"),
    (b'{"a": 1, "a": 2}', "malformed JSON at line 1, column 10: duplicate key in an object"),
    (b'{"a": "\\x"}', "malformed JSON at line 1, column 8: invalid escape in a string"),
    (b'{"a": "\xff"}', "malformed JSON at line 1, column 8: invalid UTF-8 (byte 0xff)"),
    (b"", "malformed JSON: the body is empty"),
])
def test_malformed_json_message_in_words(cors_region, body, message):
    """Pins: messages carried jansson's text ("'[' or '{' expected near 'x'",
    "string or '}' expected near '}'") and its column (the end of the token)."""
    u = signup(cors_region)
    r = cors_region.post(records_path("notes"), u["access_token"], data=body,
                         headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert error_code(r) == "malformed_json"
    got = r.json()["error"]["message"]
    assert got == message
    assert " near '" not in got and "' expected" not in got and "token" not in got


def test_global_write_timeout_says_what_a_retry_does(tmp_path):
    """Pins: a `global` write that timed out without an Idempotency-Key was
    told to "retry with the same Idempotency-Key": it had none, and a retry
    creates a second record. The message must say the write is durable here
    and what a retry without a key does."""
    pair = TwoRegions(tmp_path, replication={"global_ack_wait_ms": 300})
    pair.start()
    try:
        eu = pair.eu
        u = signup(eu)
        tok = u["access_token"]
        pair.wait_synced()
        assert pair.us.stop() == 0
        glob = {"X-Tandem-Durability": "global"}
        marker = uuid.uuid4().hex
        # without a key
        r = eu.post(records_path("ledger"), tok, json={"m": marker, "k": 0}, headers=glob)
        assert r.status_code == 503 and error_code(r) == "replication_timeout", r.text
        msg = r.json()["error"]["message"]
        assert "durable in this region" in msg
        assert "no Idempotency-Key" in msg and "creates a second record" in msg, msg
        assert "retry with the same Idempotency-Key" not in msg
        assert r.headers.get("X-Tandem-LSN")
        # an update without a key: applied again, not a second record
        rid = list_all(eu, tok, "ledger")[0]["id"]
        r = request(eu, "PUT", records_path("ledger", rid), tok, json={"m": marker, "k": 1}, headers=glob)
        assert r.status_code == 503 and error_code(r) == "replication_timeout"
        assert "applies the write a second time" in r.json()["error"]["message"]
        # with a key: retry with the same key
        r = eu.post(records_path("ledger"), tok, json={"m": marker, "k": 2},
                    headers=dict(glob, **{"Idempotency-Key": uuid.uuid4().hex}))
        assert r.status_code == 503 and error_code(r) == "replication_timeout"
        msg = r.json()["error"]["message"]
        assert "durable in this region" in msg and "retry with the same Idempotency-Key" in msg
        assert "second record" not in msg
        # both creates are there (durable in eu), once each
        assert sorted(i["data"]["k"] for i in list_all(eu, tok, "ledger")) == [1, 2]
    finally:
        codes = pair.stop_all()
    assert all(c == 0 for cs in codes.values() for c in cs), (codes, pair.logs())
