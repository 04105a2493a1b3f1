"""The records API against the real region node: create/get/replace/patch/
delete with versions and ETags, conditional requests, ownership, listing with
filter/sort/limit/cursor, Idempotency-Key on writes, and HEAD.

Every test signs up its own user (the `user` fixture), so the records of one
test never show up in another's lists.
"""
import base64
import json
import re
import urllib.parse

import pytest

from conftest import error_code, request, signup

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
MERGE = {"Content-Type": "application/merge-patch+json"}


# --- helpers ---------------------------------------------------------------

def path(collection, rid=None):
    p = "/v1/collections/%s/records" % collection
    return p + "/" + rid if rid else p


def create(region, token, collection, data, headers=None):
    r = region.post(path(collection), token, json=data, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def get(region, token, collection, rid, headers=None):
    return region.get(path(collection, rid), token, headers=headers)


def put(region, token, collection, rid, data, headers=None):
    return request(region, "PUT", path(collection, rid), token, json=data, headers=headers)


def patch(region, token, collection, rid, data, headers=None, content_type=None):
    h = dict(headers or {})
    if content_type:
        h["Content-Type"] = content_type
        return request(region, "PATCH", path(collection, rid), token,
                       data=json.dumps(data), headers=h)
    return request(region, "PATCH", path(collection, rid), token, json=data, headers=h)


def delete(region, token, collection, rid, headers=None):
    return request(region, "DELETE", path(collection, rid), token, headers=headers)


def list_raw(region, token, collection, **params):
    qs = urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
    return region.get(path(collection) + ("?" + qs if qs else ""), token)


def list_ok(region, token, collection, **params):
    r = list_raw(region, token, collection, **params)
    assert r.status_code == 200, (params, r.text)
    body = r.json()
    assert set(body) == {"items", "next_cursor"}, body
    assert body["next_cursor"] is None or (isinstance(body["next_cursor"], str) and body["next_cursor"])
    return body


def list_all(region, token, collection, **params):
    """Every item, paging with the cursor; returns the items."""
    items = []
    cursor = None
    for _ in range(10000):
        p = dict(params)
        if cursor:
            p["cursor"] = cursor
        body = list_ok(region, token, collection, **p)
        items += body["items"]
        cursor = body["next_cursor"]
        if not cursor:
            return items
    raise AssertionError("paging did not end")


def ids(items):
    return [i["id"] for i in items]


def assert_common_headers(r):
    assert r.headers.get("X-Tandem-Region") == "eu", r.headers
    assert r.headers.get("X-Request-Id"), r.headers


def assert_error(r, status, code):
    assert r.status_code == status, r.text
    assert error_code(r) == code, r.text
    assert_common_headers(r)


def assert_record(rec, user, collection, data, version):
    assert set(rec) == {"id", "collection", "owner", "version", "created_at", "updated_at", "data"}, rec
    assert isinstance(rec["id"], str) and rec["id"]
    assert rec["collection"] == collection
    assert rec["owner"] == user["user"]["id"]
    assert rec["version"] == version
    assert ISO.match(rec["created_at"]) and ISO.match(rec["updated_at"]), rec
    assert rec["updated_at"] >= rec["created_at"]
    assert rec["data"] == data


# --- create and get --------------------------------------------------------

def test_create_returns_201_with_the_record_etag_and_location(region, user):
    t = user["access_token"]
    data = {"title": "Buy milk", "done": False, "priority": 2, "tags": ["a", "b"],
            "nested": {"x": {"y": None}}, "n": 1.5, "s": "h\u00e9 \u6f22 \"q\""}
    r = region.post(path("todos"), t, json=data)
    assert r.status_code == 201, r.text
    assert_common_headers(r)
    assert r.headers["Content-Type"].startswith("application/json")
    rec = r.json()
    assert_record(rec, user, "todos", data, 1)
    assert rec["created_at"] == rec["updated_at"]
    assert r.headers["ETag"] == '"1"'
    assert r.headers["Location"] == "/v1/collections/todos/records/" + rec["id"]
    # the Location is the record
    g = region.get(r.headers["Location"], t)
    assert g.status_code == 200, g.text
    assert_common_headers(g)
    assert g.headers["ETag"] == '"1"'
    assert g.json() == rec
    # an empty object is a record too
    empty = create(region, t, "todos", {})
    assert empty["data"] == {} and empty["version"] == 1
    assert empty["id"] != rec["id"]


def test_get_with_if_none_match_is_304(region, user):
    t = user["access_token"]
    rec = create(region, t, "notes", {"text": "hello"})
    for inm in ['"1"', "*", '"7", "1"', 'W/"1"']:
        r = get(region, t, "notes", rec["id"], headers={"If-None-Match": inm})
        assert r.status_code == 304, (inm, r.status_code, r.text)
        assert r.content == b""
        assert r.headers["ETag"] == '"1"'
        assert_common_headers(r)
    # a stale ETag gets the full answer
    r = get(region, t, "notes", rec["id"], headers={"If-None-Match": '"2"'})
    assert r.status_code == 200
    assert r.json() == rec
    # after a change the old ETag no longer matches
    u = put(region, t, "notes", rec["id"], {"text": "changed"})
    assert u.status_code == 200
    r = get(region, t, "notes", rec["id"], headers={"If-None-Match": '"1"'})
    assert r.status_code == 200
    assert r.headers["ETag"] == '"2"'
    assert r.json()["data"] == {"text": "changed"}
    r = get(region, t, "notes", rec["id"], headers={"If-None-Match": '"2"'})
    assert r.status_code == 304


def test_get_missing_other_users_or_other_collections_record_is_404(region, user, other_user):
    t, o = user["access_token"], other_user["access_token"]
    rec = create(region, t, "private", {"secret": 42})
    cases = [
        (t, "private", "01ARZ3NDEKTSV4RRFFQ69G5FAV"),  # well-formed, no such record
        (t, "private", "nope"),
        (o, "private", rec["id"]),                      # another user's record
        (t, "other", rec["id"]),                        # another collection
    ]
    for token, coll, rid in cases:
        r = get(region, token, coll, rid)
        assert_error(r, 404, "record_not_found")
        assert "42" not in r.text
    # and the other user cannot change or delete it either
    assert_error(put(region, o, "private", rec["id"], {"secret": 0}), 404, "record_not_found")
    assert_error(patch(region, o, "private", rec["id"], {"secret": 0}), 404, "record_not_found")
    assert_error(delete(region, o, "private", rec["id"]), 404, "record_not_found")
    # nor through another collection of the owner
    assert_error(put(region, t, "other", rec["id"], {"secret": 0}), 404, "record_not_found")
    assert_error(delete(region, t, "other", rec["id"]), 404, "record_not_found")
    r = get(region, t, "private", rec["id"])
    assert r.status_code == 200
    assert r.json() == rec


def test_records_require_a_token(region, user):
    rec = create(region, user["access_token"], "locked", {"a": 1})
    for method, p in [("GET", path("locked")), ("POST", path("locked")),
                      ("GET", path("locked", rec["id"])), ("PUT", path("locked", rec["id"])),
                      ("PATCH", path("locked", rec["id"])), ("DELETE", path("locked", rec["id"]))]:
        kw = {"json": {"a": 2}} if method in ("POST", "PUT", "PATCH") else {}
        r = request(region, method, p, None, **kw)
        assert_error(r, 401, "missing_token")
        assert r.headers.get("WWW-Authenticate", "").startswith("Bearer")
        r = request(region, method, p, "not.a.token", **kw)
        assert_error(r, 401, "invalid_token")
    assert get(region, user["access_token"], "locked", rec["id"]).json() == rec


# --- update ----------------------------------------------------------------

def test_put_replaces_the_data_and_bumps_the_version(region, user):
    t = user["access_token"]
    rec = create(region, t, "docs", {"a": 1, "b": {"c": 2}, "keep": "no"})
    r = put(region, t, "docs", rec["id"], {"b": {"d": 3}, "new": [1, 2]})
    assert r.status_code == 200, r.text
    assert_common_headers(r)
    assert r.headers["ETag"] == '"2"'
    body = r.json()
    assert_record(body, user, "docs", {"b": {"d": 3}, "new": [1, 2]}, 2)
    assert body["id"] == rec["id"]
    assert body["created_at"] == rec["created_at"]
    assert body["updated_at"] >= rec["updated_at"]
    assert get(region, t, "docs", rec["id"]).json() == body
    r = put(region, t, "docs", rec["id"], {})
    assert r.status_code == 200
    assert r.json()["version"] == 3 and r.json()["data"] == {}
    assert r.headers["ETag"] == '"3"'


def test_patch_is_a_json_merge_patch(region, user):
    t = user["access_token"]
    rec = create(region, t, "docs", {
        "title": "x", "remove": 1, "arr": [1, 2, 3], "obj": {"a": 1, "b": {"c": 1, "d": 2}},
        "scalar": 5})
    r = patch(region, t, "docs", rec["id"], {
        "title": "y",                         # replaced
        "remove": None,                       # deleted
        "absent": None,                       # deleting a missing key: no-op
        "arr": [9],                           # arrays replace
        "obj": {"b": {"d": None, "e": 3}, "z": True},  # nested objects merge
        "scalar": {"now": "object"},          # an object replaces a scalar
        "added": [None],
    }, content_type="application/merge-patch+json")
    assert r.status_code == 200, r.text
    assert r.headers["ETag"] == '"2"'
    expected = {"title": "y", "arr": [9], "obj": {"a": 1, "b": {"c": 1, "e": 3}, "z": True},
                "scalar": {"now": "object"}, "added": [None]}
    body = r.json()
    assert_record(body, user, "docs", expected, 2)
    assert body["created_at"] == rec["created_at"]
    assert get(region, t, "docs", rec["id"]).json()["data"] == expected
    # application/json is accepted for PATCH as well
    r = patch(region, t, "docs", rec["id"], {"obj": None, "title": "z"},
              content_type="application/json")
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 3
    assert r.headers["ETag"] == '"3"'
    expected = {"title": "z", "arr": [9], "scalar": {"now": "object"}, "added": [None]}
    assert r.json()["data"] == expected
    # an empty patch changes nothing in the data (but is a write)
    r = patch(region, t, "docs", rec["id"], {}, content_type="application/merge-patch+json")
    assert r.status_code == 200
    assert r.json()["data"] == expected


def test_if_match_mismatch_is_412_and_changes_nothing(region, user):
    t = user["access_token"]
    rec = create(region, t, "cas", {"v": 1, "keep": True})
    before = get(region, t, "cas", rec["id"]).json()
    for method in ("PUT", "PATCH"):
        for im in ['"2"', '"0"', '"abc"', 'W/"3"']:
            r = request(region, method, path("cas", rec["id"]), t, json={"v": 99},
                        headers={"If-Match": im})
            assert_error(r, 412, "precondition_failed")
            g = get(region, t, "cas", rec["id"])
            assert g.json() == before, (method, im)
            assert g.headers["ETag"] == '"1"'
    # the current ETag succeeds
    r = put(region, t, "cas", rec["id"], {"v": 2}, headers={"If-Match": '"1"'})
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2 and r.json()["data"] == {"v": 2}
    # now "1" is stale
    r = patch(region, t, "cas", rec["id"], {"v": 3}, headers={"If-Match": '"1"'})
    assert_error(r, 412, "precondition_failed")
    assert get(region, t, "cas", rec["id"]).json()["data"] == {"v": 2}
    r = patch(region, t, "cas", rec["id"], {"v": 3}, headers={"If-Match": '"2"'})
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 3 and r.json()["data"] == {"v": 3}
    assert r.headers["ETag"] == '"3"'
    r = put(region, t, "cas", rec["id"], {"v": 4}, headers={"If-Match": "*"})
    assert r.status_code == 200
    assert r.json()["version"] == 4


def test_update_of_a_missing_record_is_404(region, user):
    t = user["access_token"]
    for method in ("PUT", "PATCH"):
        r = request(region, method, path("gone", "01ARZ3NDEKTSV4RRFFQ69G5FAV"), t, json={"a": 1})
        assert_error(r, 404, "record_not_found")
    assert list_ok(region, t, "gone")["items"] == []


# --- delete ----------------------------------------------------------------

def test_delete_then_get_and_delete_again_are_404(region, user):
    t = user["access_token"]
    rec = create(region, t, "trash", {"a": 1})
    keep = create(region, t, "trash", {"a": 2})
    r = delete(region, t, "trash", rec["id"])
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert_common_headers(r)
    assert_error(get(region, t, "trash", rec["id"]), 404, "record_not_found")
    assert_error(delete(region, t, "trash", rec["id"]), 404, "record_not_found")
    assert_error(put(region, t, "trash", rec["id"], {"a": 3}), 404, "record_not_found")
    assert ids(list_ok(region, t, "trash")["items"]) == [keep["id"]]


# --- collections -----------------------------------------------------------

def test_invalid_collection_names_are_400(region, user):
    t = user["access_token"]
    rec = create(region, t, "valid", {"a": 1})
    for bad in ["Todos", "tODOS", "1abc", "_abc", "a" * 65, "to-do", "a.b", "a%20b", "\u00e9t\u00e9"]:
        seg = urllib.parse.quote(bad, safe="%")
        for method, p, kw in [("GET", "/v1/collections/%s/records" % seg, {}),
                              ("POST", "/v1/collections/%s/records" % seg, {"json": {"a": 1}}),
                              ("GET", "/v1/collections/%s/records/%s" % (seg, rec["id"]), {}),
                              ("PATCH", "/v1/collections/%s/records/%s" % (seg, rec["id"]), {"json": {"a": 2}})]:
            r = request(region, method, p, t, **kw)
            assert_error(r, 400, "invalid_collection")
    # boundaries that are valid
    for good in ["a", "a" * 64, "z9_", "a_b_1"]:
        c = create(region, t, good, {"ok": True})
        assert c["collection"] == good
        assert ids(list_ok(region, t, good)["items"]) == [c["id"]]
    assert get(region, t, "valid", rec["id"]).json()["data"] == {"a": 1}


# --- list ------------------------------------------------------------------

def test_list_returns_only_the_callers_records_of_that_collection(region, user, other_user):
    t, o = user["access_token"], other_user["access_token"]
    mine = [create(region, t, "books", {"n": i}) for i in range(3)]
    create(region, t, "films", {"n": 100})
    create(region, o, "books", {"n": 200})
    body = list_ok(region, t, "books")
    assert body["next_cursor"] is None
    assert sorted(ids(body["items"])) == sorted(ids(mine))
    by_id = {i["id"]: i for i in body["items"]}
    for m in mine:
        assert by_id[m["id"]] == m
    assert len(list_ok(region, o, "books")["items"]) == 1
    assert list_ok(region, o, "films")["items"] == []
    assert list_ok(region, t, "nothing_here") == {"items": [], "next_cursor": None}


@pytest.fixture
def dataset(region, user):
    t = user["access_token"]
    coll = "filtered"
    specs = {
        "r1": {"title": "Buy milk", "done": False, "priority": 3, "n": 3, "tags": ["a"],
               "meta": {"owner": {"name": "ann"}}, "x": None},
        "r2": {"title": "Walk dog", "done": True, "priority": 1, "n": "3",
               "meta": {"owner": {"name": "bob"}}},
        "r3": {"title": "Milkshake", "done": False, "priority": 2, "n": 3.5, "x": 3},
        "r4": {"title": "Read book", "done": False, "priority": 1, "flag": 1, "meta": {"owner": "ann"}},
        "r5": {"title": "Call mom", "done": True, "priority": 5, "flag": True, "x": "3"},
        "r6": {},
    }
    recs = {name: create(region, t, coll, data) for name, data in specs.items()}
    return t, coll, recs


def check_filter(region, t, coll, recs, flt, expected):
    items = list_ok(region, t, coll, filter=flt, limit=1000)["items"]
    got = sorted(name for name, r in recs.items() if r["id"] in ids(items))
    assert len(items) == len(got), (flt, items)
    assert got == sorted(expected), (flt, got, sorted(expected))


def test_filter_comparisons_and_connectives(region, dataset):
    t, coll, recs = dataset
    cases = [
        ("done = false && priority >= 2", ["r1", "r3"]),
        ("done = true", ["r2", "r5"]),
        ("done != true", ["r1", "r3", "r4", "r6"]),
        ("priority = 1", ["r2", "r4"]),
        ("priority != 1", ["r1", "r3", "r5", "r6"]),
        ("priority < 3", ["r2", "r3", "r4"]),
        ("priority <= 2", ["r2", "r3", "r4"]),
        ("priority > 2", ["r1", "r5"]),
        ("priority >= 3 && priority < 5", ["r1"]),
        ("priority < 3 && priority > 1", ["r3"]),
        ("title ~ 'ilk'", ["r1", "r3"]),
        ("title ~ 'zzz'", []),
        ("title = 'Walk dog'", ["r2"]),
        ("title > 'M'", ["r3", "r4", "r2"]),
        ("meta.owner.name = 'bob'", ["r2"]),
        ("meta.owner.name != 'bob'", ["r1", "r3", "r4", "r5", "r6"]),
        ("meta.owner = 'ann'", ["r4"]),
        ("no.such.path = 1", []),
        ("no.such.path != 1", ["r1", "r2", "r3", "r4", "r5", "r6"]),
        # || and && with precedence and grouping
        ("priority = 1 || priority = 5 && done = false", ["r2", "r4"]),
        ("(priority = 1 || priority = 5) && done = false", ["r4"]),
        ("(priority = 1 || priority = 5) && done = true", ["r2", "r5"]),
        ("done = false && priority = 1 || priority = 5", ["r4", "r5"]),
        ("done = false && (priority = 1 || priority = 5)", ["r4"]),
        ("((title ~ 'o'))", ["r2", "r4", "r5"]),
        ("  priority   =   3  ", ["r1"]),
        ("priority=3||priority=2", ["r1", "r3"]),
    ]
    for flt, expected in cases:
        check_filter(region, t, coll, recs, flt, expected)


def test_filter_is_typed(region, dataset):
    t, coll, recs = dataset
    cases = [
        ("n = 3", ["r1"]),             # the number, not the string '3'
        ("n = '3'", ["r2"]),           # the string, not the number
        ("n > 3", ["r3"]),             # the string '3' is not a number > 3
        ("n >= 3", ["r1", "r3"]),
        ("n < 4", ["r1", "r3"]),
        ("n = 3.5", ["r3"]),
        ("n != 3", ["r2", "r3", "r4", "r5", "r6"]),
        ("x = 3", ["r3"]),
        ("x = '3'", ["r5"]),
        ("x = null", ["r1", "r2", "r4", "r6"]),   # null or missing
        ("x != null", ["r3", "r5"]),
        ("x != 3", ["r1", "r2", "r4", "r5", "r6"]),  # missing fields are != 3
        ("flag = true", ["r5"]),       # not the number 1
        ("flag = 1", ["r4"]),          # not true
        ("flag != true", ["r1", "r2", "r3", "r4", "r6"]),
        ("done = 'false'", []),
        ("done = 0", []),
        ("tags = null", ["r2", "r3", "r4", "r5", "r6"]),
        ("title ~ '1'", []),
    ]
    for flt, expected in cases:
        check_filter(region, t, coll, recs, flt, expected)


def test_filter_on_id_and_timestamps(region, dataset):
    t, coll, recs = dataset
    r3 = recs["r3"]
    check_filter(region, t, coll, recs, "id = '%s'" % r3["id"], ["r3"])
    check_filter(region, t, coll, recs, "id != '%s'" % r3["id"], ["r1", "r2", "r4", "r5", "r6"])
    for op, fn in [(">=", lambda a, b: a >= b), (">", lambda a, b: a > b),
                   ("<", lambda a, b: a < b), ("=", lambda a, b: a == b)]:
        for field in ("created_at", "updated_at"):
            flt = "%s %s '%s'" % (field, op, r3[field])
            expected = [n for n, r in recs.items() if fn(r[field], r3[field])]
            check_filter(region, t, coll, recs, flt, expected)


def test_bad_filter_is_400_with_the_position(region, user):
    t = user["access_token"]
    cases = [
        ("done =", 7),            # end of input: a value expected
        ("a = 1 &&", 9),
        ("a = 1 b = 2", 7),       # junk after a condition
        ("(a = 1", 7),            # unclosed group
        ("a = 1)", 6),            # unmatched ')'
        ("a ? 1", 3),             # not an operator
        ("= 1", 1),
        ("a = foo", 5),           # unquoted string
        ("a = 1 && && b = 2", 10),
        ("x = '\u00e9' && \u00e9 = 1", 12),  # positions count characters, not bytes
    ]
    for flt, pos in cases:
        r = list_raw(region, t, "things", filter=flt)
        assert_error(r, 400, "invalid_filter")
        err = r.json()["error"]
        assert err["parameter"] == "filter", (flt, err)
        assert err["position"] == pos, (flt, err)
        assert ("position %d" % pos) in err["message"], (flt, err)
    # unterminated string: some position inside the filter
    r = list_raw(region, t, "things", filter="a = 'abc")
    assert_error(r, 400, "invalid_filter")
    err = r.json()["error"]
    assert err["parameter"] == "filter"
    assert isinstance(err["position"], int) and 1 <= err["position"] <= 9
    assert ("position %d" % err["position"]) in err["message"]


def test_sort_orders_with_id_as_tiebreaker(region, user):
    t = user["access_token"]
    coll = "sorted"
    prios = [2, 5, 1, 5, 2, 3, 1, 5, 2, 4]
    titles = ["b", "a", "d", "c", "e", "a", "f", "b", "c", "g"]
    recs = [create(region, t, coll, {"priority": p, "title": s, "grp": {"k": -p}})
            for p, s in zip(prios, titles)]

    def expect(key):
        return ids(sorted(recs, key=key))

    items = list_ok(region, t, coll, sort="-priority,created_at", limit=1000)["items"]
    assert ids(items) == expect(lambda r: (-r["data"]["priority"], r["created_at"], r["id"]))
    items = list_ok(region, t, coll, sort="priority", limit=1000)["items"]
    assert ids(items) == expect(lambda r: (r["data"]["priority"], r["id"]))
    items = list_ok(region, t, coll, sort="-priority", limit=1000)["items"]
    assert ids(items) == expect(lambda r: (-r["data"]["priority"], r["id"]))
    items = list_ok(region, t, coll, sort="title,-priority", limit=1000)["items"]
    assert ids(items) == expect(lambda r: (r["data"]["title"], -r["data"]["priority"], r["id"]))
    items = list_ok(region, t, coll, sort="grp.k", limit=1000)["items"]
    assert ids(items) == expect(lambda r: (r["data"]["grp"]["k"], r["id"]))
    items = list_ok(region, t, coll, sort="id", limit=1000)["items"]
    assert ids(items) == sorted(ids(recs))
    items = list_ok(region, t, coll, sort="-id", limit=1000)["items"]
    assert ids(items) == sorted(ids(recs), reverse=True)
    # filter and sort together
    items = list_ok(region, t, coll, filter="priority >= 3", sort="-priority,title", limit=1000)["items"]
    assert ids(items) == ids(sorted([r for r in recs if r["data"]["priority"] >= 3],
                                    key=lambda r: (-r["data"]["priority"], r["data"]["title"], r["id"])))


def test_bad_sort_is_400(region, user):
    t = user["access_token"]
    for bad in ["priority desc", "-", "a..b", ",", "1abc", "--a", "a,,b", "a;drop", "(a)"]:
        r = list_raw(region, t, "things", sort=bad)
        assert_error(r, 400, "invalid_sort")


def test_limit_default_bounds_and_bad_values(region, user):
    t = user["access_token"]
    coll = "many"
    recs = [create(region, t, coll, {"i": i}) for i in range(55)]
    body = list_ok(region, t, coll)
    assert len(body["items"]) == 50              # the default
    assert body["next_cursor"]
    rest = list_ok(region, t, coll, cursor=body["next_cursor"])
    assert len(rest["items"]) == 5 and rest["next_cursor"] is None
    assert sorted(ids(body["items"] + rest["items"])) == sorted(ids(recs))
    one = list_ok(region, t, coll, limit=1)
    assert len(one["items"]) == 1 and one["next_cursor"]
    full = list_ok(region, t, coll, limit=1000)
    assert len(full["items"]) == 55 and full["next_cursor"] is None
    exact = list_ok(region, t, coll, limit=55)
    assert len(exact["items"]) == 55 and exact["next_cursor"] is None
    for bad in ["0", "1001", "-1", "abc", "1.5", "", "10x", "99999999999999999999"]:
        r = list_raw(region, t, coll, limit=bad)
        assert_error(r, 400, "invalid_limit")


def test_garbage_cursor_is_400(region, user):
    t = user["access_token"]
    create(region, t, "cur", {"a": 1})
    junk_json = base64.urlsafe_b64encode(b'{"not": "a cursor"}').rstrip(b"=").decode()
    for bad in ["garbage!!", "abc", "%%%", junk_json, "eyJ", "W10", "a" * 5000]:
        r = list_raw(region, t, "cur", cursor=bad)
        assert_error(r, 400, "invalid_cursor")


def test_cursor_paging_visits_every_record_once_in_order(region, user):
    t = user["access_token"]
    coll = "paged"
    recs = [create(region, t, coll, {"i": i, "priority": i % 5}) for i in range(60)]
    # default order: each record exactly once, same order as one big page
    items = list_all(region, t, coll, limit=7)
    assert len(items) == 60
    assert sorted(ids(items)) == sorted(ids(recs))
    assert ids(items) == ids(list_ok(region, t, coll, limit=1000)["items"])
    # with a sort full of ties: the exact order, across page boundaries
    pages = []
    cursor = None
    while True:
        params = {"limit": 7, "sort": "-priority,created_at"}
        if cursor:
            params["cursor"] = cursor
        body = list_ok(region, t, coll, **params)
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert [len(p) for p in pages] == [7] * 8 + [4]
    got = [i for p in pages for i in p]
    expected = sorted(recs, key=lambda r: (-r["data"]["priority"], r["created_at"], r["id"]))
    assert ids(got) == ids(expected)
    # with a filter as well
    got = list_all(region, t, coll, limit=7, sort="priority", filter="i >= 10 && priority != 2")
    expected = sorted([r for r in recs if r["data"]["i"] >= 10 and r["data"]["priority"] != 2],
                      key=lambda r: (r["data"]["priority"], r["id"]))
    assert ids(got) == ids(expected)


def test_cursor_paging_with_tricky_numeric_sort_values(region, user):
    t = user["access_token"]
    coll = "numbers"
    values = [0.1 + 0.2, 0.3, 0.30000000000000004, 1e-300, -1e-300, 0, 0, 1.7976931348623157e308,
              -1.7976931348623157e308, 2 ** 53, 2 ** 53 + 1, 2 ** 63 - 1, -2 ** 63, 1.5, 1.5, 1.5,
              -0.5, 123456789.123456789, 3, 3.0000000000000004, 2.9999999999999996]
    recs = [create(region, t, coll, {"v": v, "w": i % 3}) for i, v in enumerate(values)]
    for sort, key in [("v", lambda r: (r["data"]["v"], r["id"])),
                      ("-v", lambda r: (-r["data"]["v"], r["id"])),
                      ("v,-w", lambda r: (r["data"]["v"], -r["data"]["w"], r["id"])),
                      ("-w,v", lambda r: (-r["data"]["w"], r["data"]["v"], r["id"]))]:
        expected = ids(sorted(recs, key=key))
        assert ids(list_ok(region, t, coll, sort=sort, limit=1000)["items"]) == expected, sort
        for limit in (1, 2, 5):
            got = ids(list_all(region, t, coll, sort=sort, limit=limit))
            assert got == expected, (sort, limit)


def test_cursor_paging_with_missing_and_mixed_sort_values(region, user):
    t = user["access_token"]
    coll = "mixed"
    values = [None, "missing", "missing", 1, 2.5, True, False, "a", "", "é", "😀",
              "b'q\"", {"o": 1}, [1, 2], None, 1, "a", "missing"]
    recs = []
    for i, v in enumerate(values):
        data = {"w": i % 2} if v == "missing" else {"v": v, "w": i % 2}
        recs.append(create(region, t, coll, data))
    for sort in ["v", "-v", "v,-w", "-w,-v", "-v,w"]:
        full = ids(list_ok(region, t, coll, sort=sort, limit=1000)["items"])
        assert sorted(full) == sorted(ids(recs)), sort
        for limit in (1, 2, 3):
            got = ids(list_all(region, t, coll, sort=sort, limit=limit))
            assert got == full, (sort, limit)


@pytest.mark.parametrize("sort", [None, "-priority", "priority,-i"])
def test_cursor_paging_is_stable_while_records_are_added(region, user, sort):
    t = user["access_token"]
    coll = "growing"
    old = [create(region, t, coll, {"i": i, "priority": i % 4}) for i in range(30)]
    seen = []
    cursor = None
    added = 0
    for _ in range(100):
        params = {"limit": 7}
        if sort:
            params["sort"] = sort
        if cursor:
            params["cursor"] = cursor
        body = list_ok(region, t, coll, **params)
        seen += body["items"]
        cursor = body["next_cursor"]
        if not cursor:
            break
        # new records that sort before, between and after the current page
        for p in (0, 3, 1):
            create(region, t, coll, {"i": 1000 + added, "priority": p})
            added += 1
    else:
        raise AssertionError("paging did not end")
    seen_ids = ids(seen)
    assert len(seen_ids) == len(set(seen_ids)), "a record appeared twice"
    for r in old:
        assert r["id"] in seen_ids, "a pre-existing record was skipped"
    # the pre-existing records came in their order
    key = {None: lambda r: r["id"],
           "-priority": lambda r: (-r["data"]["priority"], r["id"]),
           "priority,-i": lambda r: (r["data"]["priority"], -r["data"]["i"], r["id"])}[sort]
    old_ids = set(ids(old))
    assert [i for i in seen_ids if i in old_ids] == ids(sorted(old, key=key))
    # and the whole walk is in order too
    assert seen_ids == ids(sorted(seen, key=key))


# --- Idempotency-Key -------------------------------------------------------

def test_post_with_idempotency_key_replays_and_creates_once(region, user):
    t = user["access_token"]
    key = {"Idempotency-Key": "create-1"}
    first = region.post(path("idem"), t, json={"a": 1}, headers=key)
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    again = region.post(path("idem"), t, json={"a": 1}, headers=key)
    assert again.status_code == 201, again.text
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.content == first.content
    assert again.headers["ETag"] == first.headers["ETag"]
    assert again.headers["Location"] == first.headers["Location"]
    assert_common_headers(again)
    items = list_ok(region, t, "idem")["items"]
    assert ids(items) == [first.json()["id"]]
    # same key, different body / different path: 422 and nothing created
    r = region.post(path("idem"), t, json={"a": 2}, headers=key)
    assert_error(r, 422, "idempotency_key_reused")
    r = region.post(path("idem_other"), t, json={"a": 1}, headers=key)
    assert_error(r, 422, "idempotency_key_reused")
    assert len(list_ok(region, t, "idem")["items"]) == 1
    assert list_ok(region, t, "idem_other")["items"] == []
    # another key is another request
    r = region.post(path("idem"), t, json={"a": 1}, headers={"Idempotency-Key": "create-2"})
    assert r.status_code == 201 and "Idempotent-Replayed" not in r.headers
    assert len(list_ok(region, t, "idem")["items"]) == 2


def test_idempotency_keys_are_per_user(region, user, other_user):
    t, o = user["access_token"], other_user["access_token"]
    key = {"Idempotency-Key": "shared-key"}
    a = region.post(path("idem"), t, json={"a": 1}, headers=key)
    assert a.status_code == 201
    b = region.post(path("idem"), o, json={"a": 1}, headers=key)
    assert b.status_code == 201, b.text
    assert "Idempotent-Replayed" not in b.headers
    assert b.json()["owner"] == other_user["user"]["id"]
    assert b.json()["id"] != a.json()["id"]
    c = region.post(path("idem"), o, json={"different": True}, headers={"Idempotency-Key": "k2"})
    assert c.status_code == 201
    d = region.post(path("idem"), t, json={"other": 1}, headers={"Idempotency-Key": "k2"})
    assert d.status_code == 201, d.text
    assert "Idempotent-Replayed" not in d.headers
    assert len(list_ok(region, t, "idem")["items"]) == 2
    assert len(list_ok(region, o, "idem")["items"]) == 2


def test_put_patch_delete_with_idempotency_key_replay(region, user):
    t = user["access_token"]
    rec = create(region, t, "idemw", {"n": 0, "keep": 1})
    rid = rec["id"]
    # PUT
    k = {"Idempotency-Key": "put-1"}
    first = put(region, t, "idemw", rid, {"n": 1}, headers=k)
    assert first.status_code == 200 and first.json()["version"] == 2
    again = put(region, t, "idemw", rid, {"n": 1}, headers=k)
    assert again.status_code == 200
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.content == first.content
    assert again.headers["ETag"] == '"2"'
    assert get(region, t, "idemw", rid).json()["version"] == 2
    assert_error(put(region, t, "idemw", rid, {"n": 2}, headers=k), 422, "idempotency_key_reused")
    # PATCH (with If-Match, retried after the record moved on: still the replay)
    k = {"Idempotency-Key": "patch-1", "If-Match": '"2"'}
    first = patch(region, t, "idemw", rid, {"m": 1}, headers=k)
    assert first.status_code == 200, first.text
    assert first.json()["version"] == 3 and first.json()["data"] == {"n": 1, "m": 1}
    again = patch(region, t, "idemw", rid, {"m": 1}, headers=k)
    assert again.status_code == 200, again.text
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.content == first.content
    assert get(region, t, "idemw", rid).json()["version"] == 3
    assert_error(patch(region, t, "idemw", rid, {"m": 2}, headers=k), 422, "idempotency_key_reused")
    assert get(region, t, "idemw", rid).json()["data"] == {"n": 1, "m": 1}
    # DELETE
    k = {"Idempotency-Key": "delete-1"}
    first = delete(region, t, "idemw", rid, headers=k)
    assert first.status_code == 204
    again = delete(region, t, "idemw", rid, headers=k)
    assert again.status_code == 204, again.text
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.content == b""
    assert_error(get(region, t, "idemw", rid), 404, "record_not_found")
    # the same key on another path is another request
    other = create(region, t, "idemw", {"z": 1})
    assert_error(delete(region, t, "idemw", other["id"], headers=k), 422, "idempotency_key_reused")
    assert get(region, t, "idemw", other["id"]).status_code == 200


def test_failed_writes_are_not_stored_for_replay(region, user):
    t = user["access_token"]
    missing = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
    k = {"Idempotency-Key": "patch-missing"}
    for _ in range(2):
        r = patch(region, t, "idemf", missing, {"a": 1}, headers=k)
        assert_error(r, 404, "record_not_found")
        assert "Idempotent-Replayed" not in r.headers
    # a 412 is not stored either: the same request again is checked again
    rec = create(region, t, "idemf", {"a": 0})
    k = {"Idempotency-Key": "put-stale", "If-Match": '"9"'}
    for _ in range(2):
        r = put(region, t, "idemf", rec["id"], {"a": 1}, headers=k)
        assert_error(r, 412, "precondition_failed")
        assert "Idempotent-Replayed" not in r.headers
    assert get(region, t, "idemf", rec["id"]).json()["version"] == 1


# --- HEAD ------------------------------------------------------------------

def test_head_on_get_routes_returns_headers_only(region, user):
    t = user["access_token"]
    rec = create(region, t, "heads", {"a": 1})
    r = request(region, "HEAD", path("heads", rec["id"]), t)
    assert r.status_code == 200
    assert r.content == b""
    assert r.headers["ETag"] == '"1"'
    assert_common_headers(r)
    r = request(region, "HEAD", path("heads"), t)
    assert r.status_code == 200
    assert r.content == b""
    assert_common_headers(r)
    r = request(region, "HEAD", path("heads", rec["id"]), t, headers={"If-None-Match": '"1"'})
    assert r.status_code == 304
    r = request(region, "HEAD", path("heads", "01ARZ3NDEKTSV4RRFFQ69G5FAV"), t)
    assert r.status_code == 404
    assert r.content == b""
    r = request(region, "HEAD", path("Bad"), t)
    assert r.status_code == 400
    assert r.content == b""
    # HEAD changed nothing
    assert get(region, t, "heads", rec["id"]).json() == rec
