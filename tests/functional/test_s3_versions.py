"""S3 versioning (issue 10 section 1): PutBucketVersioning Enabled /
Suspended, a version per write, GET/HEAD/DELETE/Copy with versionId, delete
markers, Suspended's null version, ListObjectVersions with paging, and the
tools that empty a versioned bucket by listing its versions (awscli's
`s3api list-object-versions` + `delete-objects`, `rclone purge`); bucket
CORS (curl preflights, presigned uploads with an Origin, headless
Chromium); canned ACL public-read and anonymous GET/HEAD/List (curl).

Before this change PutBucketVersioning, `?cors` and `x-amz-acl:
public-read` answered 501 NotImplemented, any versionId other than `null`
400, OPTIONS 405 and every anonymous request 403: every test here fails on
the old code (each says where)."""
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import threading
import time

import botocore.exceptions
import pytest
import requests

from conftest import Region, free_port_base
from test_s3 import AWS, S3, aws, blob_files, bucket_name, dev_key, s3_error

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    region = Region(tmp_path_factory.mktemp("s3ver"))
    region.start()
    yield S3(region, *dev_key(region.data))
    code = region.stop()
    assert code == 0, "region did not stop cleanly (%s): %s" % (code, region.log()[-2000:])


def code_of(exc):
    return exc.value.response["Error"]["Code"]


def versioned_bucket(c, status="Enabled"):
    b = bucket_name()
    c.create_bucket(Bucket=b)
    c.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": status})
    return b


def all_versions(c, b, **kw):
    out = c.list_object_versions(Bucket=b, **kw)
    return out.get("Versions", []), out.get("DeleteMarkers", [])


def test_versions_markers_and_version_ids(s3):
    """Enabled: each PUT a new version id (x-amz-version-id), GET/HEAD of
    an older one by id, DELETE writes a marker (GET then 404 NoSuchKey
    with x-amz-delete-marker), removing the marker brings the object back,
    a version deleted by id is gone for good, copying an old version
    onto its key restores it."""
    c = s3.boto()
    b = bucket_name()
    c.create_bucket(Bucket=b)
    assert c.get_bucket_versioning(Bucket=b).get("Status") is None
    c.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    assert c.get_bucket_versioning(Bucket=b)["Status"] == "Enabled"
    v1 = c.put_object(Bucket=b, Key="k", Body=b"one")["VersionId"]
    v2 = c.put_object(Bucket=b, Key="k", Body=b"two")["VersionId"]
    assert v1 != v2 and "null" not in (v1, v2) and len(v1) == 32
    got = c.get_object(Bucket=b, Key="k")
    assert got["Body"].read() == b"two" and got["VersionId"] == v2
    assert c.get_object(Bucket=b, Key="k", VersionId=v1)["Body"].read() == b"one"
    assert c.head_object(Bucket=b, Key="k", VersionId=v1)["ContentLength"] == 3
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.get_object(Bucket=b, Key="k", VersionId="0" * 32)
    assert code_of(e) == "NoSuchVersion"
    # DELETE without a version id: a delete marker
    d = c.delete_object(Bucket=b, Key="k")
    assert d["DeleteMarker"] is True and len(d["VersionId"]) == 32
    marker = d["VersionId"]
    r = s3.raw("GET", "/%s/k" % b)
    assert r.status_code == 404 and s3_error(r) == "NoSuchKey"
    assert r.headers["x-amz-delete-marker"] == "true" and r.headers["x-amz-version-id"] == marker
    r = s3.raw("HEAD", "/%s/k" % b)
    assert r.status_code == 404 and r.headers["x-amz-delete-marker"] == "true"
    r = s3.raw("GET", "/%s/k" % b, query="versionId=" + marker)
    assert r.status_code == 405 and r.headers["x-amz-delete-marker"] == "true"
    assert "Contents" not in c.list_objects_v2(Bucket=b)
    versions, markers = all_versions(c, b)
    assert [(v["VersionId"], v["IsLatest"]) for v in versions] == [(v2, False), (v1, False)]
    assert [(m["VersionId"], m["IsLatest"]) for m in markers] == [(marker, True)]
    # removing the marker for good: v2 is current again
    d = c.delete_object(Bucket=b, Key="k", VersionId=marker)
    assert d["DeleteMarker"] is True and d["VersionId"] == marker
    assert c.get_object(Bucket=b, Key="k")["Body"].read() == b"two"
    # removing v2 for good: v1 is current
    c.delete_object(Bucket=b, Key="k", VersionId=v2)
    assert c.get_object(Bucket=b, Key="k")["Body"].read() == b"one"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.get_object(Bucket=b, Key="k", VersionId=v2)
    assert code_of(e) == "NoSuchVersion"
    # restore an older version by copying it onto its key
    v3 = c.put_object(Bucket=b, Key="k", Body=b"three")["VersionId"]
    cp = c.copy_object(Bucket=b, Key="k", CopySource={"Bucket": b, "Key": "k", "VersionId": v1})
    assert cp["CopySourceVersionId"] == v1 and cp["VersionId"] not in (v1, v3)
    assert c.get_object(Bucket=b, Key="k")["Body"].read() == b"one"
    # copying from a marker named by id is refused, as S3
    m2 = c.delete_object(Bucket=b, Key="k")["VersionId"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.copy_object(Bucket=b, Key="k2", CopySource={"Bucket": b, "Key": "k", "VersionId": m2})
    assert code_of(e) == "InvalidRequest"
    # a one-part multipart upload is a version too
    up = c.create_multipart_upload(Bucket=b, Key="mp")["UploadId"]
    etag = c.upload_part(Bucket=b, Key="mp", UploadId=up, PartNumber=1, Body=b"part")["ETag"]
    done = c.complete_multipart_upload(Bucket=b, Key="mp", UploadId=up,
                                       MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert len(done["VersionId"]) == 32
    # a malformed configuration and MFA Delete are refused clearly
    r = s3.raw("PUT", "/" + b, query="versioning",
               body=b"<VersioningConfiguration><Status>On</Status></VersioningConfiguration>")
    assert r.status_code == 400 and s3_error(r) == "MalformedXML"
    r = s3.raw("PUT", "/" + b, query="versioning",
               body=b"<VersioningConfiguration><Status>Enabled</Status><MfaDelete>Enabled</MfaDelete>"
                    b"</VersioningConfiguration>")
    assert r.status_code == 501 and s3_error(r) == "NotImplemented"


def test_suspended_writes_replace_the_null_version(s3):
    """Suspended: a PUT writes version "null", replacing the previous null
    version (kept versions untouched); DELETE a null marker. The replaced
    blobs are freed."""
    c = s3.boto()
    b = bucket_name()
    c.create_bucket(Bucket=b)
    c.put_object(Bucket=b, Key="k", Body=b"unversioned")  # the null version
    c.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    v1 = c.put_object(Bucket=b, Key="k", Body=b"v1")["VersionId"]
    c.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Suspended"})
    assert c.get_bucket_versioning(Bucket=b)["Status"] == "Suspended"
    assert c.put_object(Bucket=b, Key="k", Body=b"s1")["VersionId"] == "null"
    assert c.put_object(Bucket=b, Key="k", Body=b"s2")["VersionId"] == "null"
    versions, _ = all_versions(c, b)
    assert [(v["VersionId"], v["IsLatest"], v["Size"]) for v in versions] == [("null", True, 2), (v1, False, 2)]
    assert c.get_object(Bucket=b, Key="k", VersionId="null")["Body"].read() == b"s2"
    d = c.delete_object(Bucket=b, Key="k")
    assert d["DeleteMarker"] is True and d["VersionId"] == "null"
    versions, markers = all_versions(c, b)
    assert [v["VersionId"] for v in versions] == [v1]
    assert [(m["VersionId"], m["IsLatest"]) for m in markers] == [("null", True)]
    assert len(blob_files(s3.region)) >= 1
    c.delete_object(Bucket=b, Key="k", VersionId=v1)
    c.delete_object(Bucket=b, Key="k", VersionId="null")
    c.delete_bucket(Bucket=b)


def test_list_object_versions_paging_prefix_delimiter(s3):
    """ListObjectVersions pages by key-marker/version-id-marker (boto3's
    paginator, 2 entries a page) through the same sequence as one page;
    prefix and delimiter fold keys into common prefixes."""
    c = s3.boto()
    b = versioned_bucket(c)
    for key in ["a/1", "a/2", "b", "c"]:
        for i in range(3):
            c.put_object(Bucket=b, Key=key, Body=b"x" * i)
    c.delete_object(Bucket=b, Key="b")
    whole = c.list_object_versions(Bucket=b)
    assert whole["IsTruncated"] is False
    want = sorted([(v["Key"], v["VersionId"]) for v in whole["Versions"] + whole["DeleteMarkers"]])
    assert len(want) == 13
    paged = []
    pages = 0
    for page in c.get_paginator("list_object_versions").paginate(Bucket=b, PaginationConfig={"PageSize": 2}):
        pages += 1
        paged += [(v["Key"], v["VersionId"]) for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
    assert pages == 7 and sorted(paged) == want and len(set(paged)) == 13
    # each key's versions newest first: the latest one first
    latest = [v["Key"] for v in whole["Versions"] if v["IsLatest"]]
    assert latest == ["a/1", "a/2", "c"]
    out = c.list_object_versions(Bucket=b, Delimiter="/")
    assert [p["Prefix"] for p in out["CommonPrefixes"]] == ["a/"]
    assert sorted({v["Key"] for v in out["Versions"]}) == ["b", "c"]
    out = c.list_object_versions(Bucket=b, Prefix="a/", KeyMarker="a/1")
    assert {v["Key"] for v in out["Versions"]} == {"a/2"}
    r = s3.raw("GET", "/" + b, query="versions&key-marker=a&version-id-marker=bogus")
    assert r.status_code == 400 and s3_error(r) == "InvalidArgument"


def test_awscli_empties_a_versioned_bucket(s3, tmp_path):
    """`aws s3 rm --recursive` on a versioned bucket leaves delete markers
    (rb: BucketNotEmpty); `s3api list-object-versions` + `delete-objects`
    with VersionIds empties it, and every blob is freed."""
    b = bucket_name()
    # the set-up through boto3 (one process: awscli's start costs a second
    # of CPU per command); awscli does what the test is about
    c = s3.boto()
    c.create_bucket(Bucket=b)
    c.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    before = len(blob_files(s3.region))
    for i in range(3):
        c.put_object(Bucket=b, Key="d/f%d" % (i % 2), Body=os.urandom(1000 + i))
    aws(s3, tmp_path, "s3", "rm", "--recursive", "s3://%s/" % b)
    assert aws(s3, tmp_path, "s3", "ls", "s3://%s/" % b, check=False).stdout == ""
    p = aws(s3, tmp_path, "s3", "rb", "s3://" + b, check=False)
    assert p.returncode != 0 and "BucketNotEmpty" in p.stderr
    out = json.loads(aws(s3, tmp_path, "s3api", "list-object-versions", "--bucket", b).stdout)
    assert len(out["Versions"]) == 3 and len(out["DeleteMarkers"]) == 2
    objects = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in out["Versions"] + out["DeleteMarkers"]]
    res = json.loads(aws(s3, tmp_path, "s3api", "delete-objects", "--bucket", b, "--delete",
                         json.dumps({"Objects": objects})).stdout)
    assert len(res["Deleted"]) == 5 and not res.get("Errors")
    assert sum(1 for d in res["Deleted"] if d.get("DeleteMarker")) == 2
    aws(s3, tmp_path, "s3", "rb", "s3://" + b)
    deadline = time.time() + 10  # blobs go in the pool after the commit
    while len(blob_files(s3.region)) > before and time.time() < deadline:
        time.sleep(0.05)
    assert len(blob_files(s3.region)) == before


def test_rclone_purge_empties_a_versioned_bucket(s3, tmp_path):
    """rclone sees the bucket is versioned (GetBucketVersioning), lists its
    versions (ListObjectVersions) and deletes each by id, then the bucket."""
    c = s3.boto()
    b = versioned_bucket(c)
    for i in range(3):
        c.put_object(Bucket=b, Key="p/f%d" % (i % 2), Body=b"data%d" % i)
    c.delete_object(Bucket=b, Key="p/f0")
    conf = tmp_path / "rclone.conf"
    conf.write_text("[t]\ntype = s3\nprovider = Other\naccess_key_id = %s\nsecret_access_key = %s\n"
                    "endpoint = %s\nregion = eu\nforce_path_style = true\n" % (s3.akid, s3.secret, s3.url))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    p = subprocess.run(["rclone", "--config", str(conf), "--ca-cert", s3.ca, "purge", "t:" + b],
                       capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 0, p.stderr + p.stdout
    names = [x["Name"] for x in c.list_buckets()["Buckets"]]
    assert b not in names



# ------------------------------------------------------------------ CORS

CORS_RULES = {"CORSRules": [
    {"ID": "uploads", "AllowedOrigins": ["https://*.example.com"], "AllowedMethods": ["PUT", "GET"],
     "AllowedHeaders": ["content-type", "x-amz-*"], "ExposeHeaders": ["ETag", "x-amz-version-id"],
     "MaxAgeSeconds": 300},
    {"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]},
]}


def curl_preflight(s3, path, origin, method, headers=None):
    """A browser's preflight, sent by curl: (status, lower-cased headers, body)."""
    cmd = ["curl", "-sS", "-i", "--cacert", s3.ca, "-X", "OPTIONS", s3.url + path,
           "-H", "Origin: " + origin, "-H", "Access-Control-Request-Method: " + method]
    if headers:
        cmd += ["-H", "Access-Control-Request-Headers: " + headers]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True).stdout
    head, _, body = out.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, body


def test_bucket_cors_preflight_and_actual_requests(s3):
    """Put/Get/DeleteBucketCors; an unauthenticated OPTIONS preflight (curl)
    answered from the rules (wildcard origin, allowed headers, first rule
    wins) or 403 CORSResponse; a presigned PUT sent "by a browser" (with
    Origin) gets the Access-Control-* headers, a request from an origin no
    rule allows gets none. Before: ?cors answered 501 and OPTIONS 405."""
    c = s3.boto()
    b = bucket_name()
    c.create_bucket(Bucket=b)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.get_bucket_cors(Bucket=b)
    assert code_of(e) == "NoSuchCORSConfiguration"
    status, _, body = curl_preflight(s3, "/%s/up.txt" % b, "https://app.example.com", "PUT")
    assert status == 403 and "CORS is not enabled for this bucket" in body
    c.put_bucket_cors(Bucket=b, CORSConfiguration=CORS_RULES)
    got = c.get_bucket_cors(Bucket=b)["CORSRules"]
    assert got[0]["ID"] == "uploads" and got[0]["AllowedOrigins"] == ["https://*.example.com"]
    assert sorted(got[0]["AllowedMethods"]) == ["GET", "PUT"] and got[0]["MaxAgeSeconds"] == 300
    assert got[1]["AllowedOrigins"] == ["*"]
    # the preflight of a browser upload: allowed by the first rule
    status, h, _ = curl_preflight(s3, "/%s/up.txt" % b, "https://app.example.com", "PUT",
                                  "content-type, x-amz-date")
    assert status == 200, h
    assert h["access-control-allow-origin"] == "https://app.example.com"
    assert "PUT" in h["access-control-allow-methods"]
    assert h["access-control-allow-headers"] == "content-type, x-amz-date"
    assert h["access-control-max-age"] == "300"
    # refused: an origin no rule names for PUT, a header no rule allows, a bucket without rules
    for origin, method, hdrs in [("https://evil.test", "PUT", None),
                                 ("https://app.example.com", "PUT", "authorization"),
                                 ("https://app.example.com", "DELETE", None),
                                 ("https://example.com.evil.test", "PUT", None)]:
        status, h, body = curl_preflight(s3, "/%s/up.txt" % b, origin, method, hdrs)
        assert status == 403 and "<Code>AccessForbidden</Code>" in body, (origin, method, body)
        assert "CORSResponse: This CORS request is not allowed" in body
        assert "access-control-allow-origin" not in h
    # GET from anywhere: the second rule, "*"
    status, h, _ = curl_preflight(s3, "/" + b, "https://other.test", "GET")
    assert status == 200 and h["access-control-allow-origin"] == "*"
    # the actual upload: a presigned PUT with the page's Origin
    url = c.generate_presigned_url("put_object", Params={"Bucket": b, "Key": "up.txt"}, ExpiresIn=300)
    r = requests.put(url, data=b"from a browser", verify=s3.ca,
                     headers={"Origin": "https://app.example.com", "Content-Type": "text/plain"})
    assert r.status_code == 200, r.text
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "ETag" in r.headers["Access-Control-Expose-Headers"]
    assert c.get_object(Bucket=b, Key="up.txt")["Body"].read() == b"from a browser"
    url = c.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "up.txt"}, ExpiresIn=300)
    r = requests.get(url, verify=s3.ca, headers={"Origin": "https://evil.test"})
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == "*"
    r = requests.put(c.generate_presigned_url("put_object", Params={"Bucket": b, "Key": "x"}, ExpiresIn=300),
                     data=b"x", verify=s3.ca, headers={"Origin": "https://evil.test"})
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers
    r = requests.get(url, verify=s3.ca)  # no Origin: no CORS headers
    assert "Access-Control-Allow-Origin" not in r.headers
    # a preflight without its headers, malformed and refused configurations
    r = requests.options(s3.url + "/" + b, verify=s3.ca)
    assert r.status_code == 400 and s3_error(r) == "BadRequest"
    r = s3.raw("PUT", "/" + b, query="cors", body=b"<CORSConfiguration></CORSConfiguration>")
    assert r.status_code == 400 and s3_error(r) == "MalformedXML"
    r = s3.raw("PUT", "/" + b, query="cors",
               body=b"<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin>"
                    b"<AllowedMethod>PATCH</AllowedMethod></CORSRule></CORSConfiguration>")
    assert r.status_code == 400 and s3_error(r) == "InvalidRequest" and "PATCH" in r.text
    rule = b"<CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule>"
    r = s3.raw("PUT", "/" + b, query="cors", body=b"<CORSConfiguration>" + rule * 101 + b"</CORSConfiguration>")
    assert r.status_code == 400 and s3_error(r) == "MalformedXML"
    c.delete_bucket_cors(Bucket=b)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.get_bucket_cors(Bucket=b)
    assert code_of(e) == "NoSuchCORSConfiguration"
    status, _, _ = curl_preflight(s3, "/" + b, "https://other.test", "GET")
    assert status == 403


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
def test_cors_real_browser_presigned_put(s3, tmp_path):
    """A real headless Chromium uploads with fetch(PUT presigned URL) from a
    page on a loopback origin the bucket's rules allow (a real preflight,
    then the PUT, whose ETag the page reads); a page on another origin is
    stopped by the browser and nothing is stored."""
    c = s3.boto()
    b = bucket_name()
    c.create_bucket(Bucket=b)
    page_port = free_port_base(count=2)
    allowed = "http://127.0.0.1:%d" % page_port
    c.put_bucket_cors(Bucket=b, CORSConfiguration={"CORSRules": [
        {"AllowedOrigins": [allowed], "AllowedMethods": ["PUT"], "AllowedHeaders": ["content-type"],
         "ExposeHeaders": ["ETag"]}]})
    results = {}
    for port in (page_port, page_port + 1):
        url = c.generate_presigned_url("put_object", Params={"Bucket": b, "Key": "p%d" % port}, ExpiresIn=300)
        _Page.page = ("""<html><body><pre id="out">pending</pre><script>
(async () => {
  const out = {};
  try {
    const r = await fetch(%s, {method: "PUT", headers: {"Content-Type": "application/octet-stream"},
                               body: "uploaded by chromium"});
    out.status = r.status;
    out.etag = r.headers.get("ETag");
  } catch (e) { out.error = String(e); }
  document.getElementById("out").textContent = "RESULT" + JSON.stringify(out) + "END";
})();
</script></body></html>""" % json.dumps(url)).encode()
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
        assert "RESULT" in p.stdout, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
        results[port] = json.loads(p.stdout.split("RESULT", 1)[1].split("END", 1)[0])
    ok = results[page_port]
    assert ok.get("status") == 200, ok
    assert ok["etag"] == '"%s"' % hashlib.md5(b"uploaded by chromium").hexdigest(), ok
    assert c.get_object(Bucket=b, Key="p%d" % page_port)["Body"].read() == b"uploaded by chromium"
    refused = results[page_port + 1]
    assert "error" in refused and "status" not in refused, refused
    with pytest.raises(botocore.exceptions.ClientError):
        c.head_object(Bucket=b, Key="p%d" % (page_port + 1))


# ------------------------------------------------------------ public-read

def curl_anon(s3, path, method="GET"):
    """An unsigned request with curl: (status, body)."""
    cmd = ["curl", "-sS", "--cacert", s3.ca, "-o", "-", "-w", "\n%{http_code}", s3.url + path]
    if method == "HEAD":
        cmd.insert(1, "-I")
    elif method != "GET":
        cmd[1:1] = ["-X", method]
    out = subprocess.run(cmd, capture_output=True, timeout=30, check=True).stdout
    body, _, status = out.rpartition(b"\n")
    return int(status), body


def all_users_read(acl):
    return any(g["Grantee"].get("URI") == "http://acs.amazonaws.com/groups/global/AllUsers"
               and g["Permission"] == "READ" for g in acl["Grants"])


def test_public_read_objects_and_buckets_anonymous_access(s3):
    """Canned ACL public-read on PutObject / CopyObject / CreateBucket /
    PutObjectAcl / PutBucketAcl (GetObjectAcl shows the AllUsers READ
    grant); unsigned GET/HEAD (curl) of a public-read object or of any
    object of a public-read bucket, unsigned ListObjects(V2) of a
    public-read bucket; everything else unsigned stays 403 AccessDenied.
    Other canned ACLs and grants: 501. Before: public-read answered 501 and
    every unsigned request 403."""
    c = s3.boto()
    b = bucket_name()
    c.create_bucket(Bucket=b)
    c.put_object(Bucket=b, Key="pub.txt", Body=b"for everyone", ACL="public-read")
    c.put_object(Bucket=b, Key="priv.txt", Body=b"secret")
    assert all_users_read(c.get_object_acl(Bucket=b, Key="pub.txt"))
    assert not all_users_read(c.get_object_acl(Bucket=b, Key="priv.txt"))
    assert not all_users_read(c.get_bucket_acl(Bucket=b))
    assert curl_anon(s3, "/%s/pub.txt" % b) == (200, b"for everyone")
    status, head = curl_anon(s3, "/%s/pub.txt" % b, "HEAD")
    assert status == 200 and b"content-length: 12" in head.lower()
    for path, method in [("/%s/priv.txt" % b, "GET"), ("/%s/missing" % b, "GET"), ("/" + b, "GET"),
                         ("/%s?list-type=2" % b, "GET"), ("/%s/pub.txt" % b, "PUT"),
                         ("/%s/pub.txt" % b, "DELETE"), ("/%s/pub.txt?acl" % b, "GET"),
                         ("/%s/new.txt" % b, "PUT"), ("/", "GET"), ("/" + b, "DELETE")]:
        status, body = curl_anon(s3, path, method)
        assert status == 403 and b"<Code>AccessDenied</Code>" in body, (path, method, body)
    assert c.get_object(Bucket=b, Key="pub.txt")["Body"].read() == b"for everyone"  # not deleted
    status, body = curl_anon(s3, "/%s/pub.txt?response-content-type=text/html" % b)
    assert status == 400 and b"InvalidRequest" in body
    # the ACL changes both ways
    c.put_object_acl(Bucket=b, Key="priv.txt", ACL="public-read")
    assert curl_anon(s3, "/%s/priv.txt" % b) == (200, b"secret")
    c.put_object_acl(Bucket=b, Key="pub.txt", ACL="private")
    assert curl_anon(s3, "/%s/pub.txt" % b)[0] == 403
    # a copy takes the ACL it is given, not its source's
    c.copy_object(Bucket=b, Key="copy-pub", CopySource={"Bucket": b, "Key": "priv.txt"}, ACL="public-read")
    c.copy_object(Bucket=b, Key="copy-priv", CopySource={"Bucket": b, "Key": "priv.txt"})
    assert curl_anon(s3, "/%s/copy-pub" % b)[0] == 200
    assert curl_anon(s3, "/%s/copy-priv" % b)[0] == 403
    # a public-read bucket: its objects and its listing
    pb = bucket_name()
    c.create_bucket(Bucket=pb, ACL="public-read")
    assert all_users_read(c.get_bucket_acl(Bucket=pb))
    c.put_object(Bucket=pb, Key="dir/a.txt", Body=b"a")
    status, body = curl_anon(s3, "/%s?list-type=2&prefix=dir/" % pb)
    assert status == 200 and b"<Key>dir/a.txt</Key>" in body
    status, body = curl_anon(s3, "/%s" % pb)
    assert status == 200 and b"<Key>dir/a.txt</Key>" in body
    assert curl_anon(s3, "/%s/dir/a.txt" % pb) == (200, b"a")
    assert curl_anon(s3, "/%s" % pb, "HEAD")[0] == 200
    status, body = curl_anon(s3, "/%s/dir/none" % pb)
    assert status == 404 and b"NoSuchKey" in body
    for path in ["/%s?versions" % pb, "/%s?acl" % pb, "/%s?cors" % pb, "/%s?uploads" % pb]:
        assert curl_anon(s3, path)[0] == 403, path
    c.put_bucket_acl(Bucket=pb, ACL="private")
    assert curl_anon(s3, "/%s?list-type=2" % pb)[0] == 403
    assert curl_anon(s3, "/%s/dir/a.txt" % pb)[0] == 403
    # a version of a public object, by id
    c.put_bucket_versioning(Bucket=pb, VersioningConfiguration={"Status": "Enabled"})
    v1 = c.put_object(Bucket=pb, Key="v", Body=b"one", ACL="public-read")["VersionId"]
    c.put_object(Bucket=pb, Key="v", Body=b"two")
    assert curl_anon(s3, "/%s/v?versionId=%s" % (pb, v1)) == (200, b"one")
    assert curl_anon(s3, "/%s/v" % pb)[0] == 403
    # what is not offered says so
    for acl in ["public-read-write", "authenticated-read", "bucket-owner-full-control"]:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c.put_object(Bucket=b, Key="x", Body=b"x", ACL=acl)
        assert code_of(e) == "NotImplemented", acl
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c.create_bucket(Bucket=bucket_name(), ACL=acl)
        assert code_of(e) == "NotImplemented", acl
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.put_object(Bucket=b, Key="x", Body=b"x", GrantRead='uri="http://acs.amazonaws.com/groups/global/AllUsers"')
    assert code_of(e) == "NotImplemented"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.put_object_acl(Bucket=b, Key="priv.txt", AccessControlPolicy={
            "Owner": {"ID": "dev"}, "Grants": [{"Grantee": {"Type": "Group", "URI":
                "http://acs.amazonaws.com/groups/global/AllUsers"}, "Permission": "READ"}]})
    assert code_of(e) == "NotImplemented"
