"""S3 versioning (issue 10 section 1): PutBucketVersioning Enabled /
Suspended, a version per write, GET/HEAD/DELETE/Copy with versionId, delete
markers, Suspended's null version, ListObjectVersions with paging, and the
tools that empty a versioned bucket by listing its versions (awscli's
`s3api list-object-versions` + `delete-objects`, `rclone purge`).

Before this change PutBucketVersioning answered 501 NotImplemented and any
versionId other than `null` 400: every test here fails on the old code
(boto3's put_bucket_versioning raised NotImplemented)."""
import json
import os
import subprocess
import time

import botocore.exceptions
import pytest

from conftest import Region
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
    aws(s3, tmp_path, "s3", "mb", "s3://" + b)
    aws(s3, tmp_path, "s3api", "put-bucket-versioning", "--bucket", b,
        "--versioning-configuration", "Status=Enabled")
    before = len(blob_files(s3.region))
    src = tmp_path / "f"
    for i in range(3):
        src.write_bytes(os.urandom(1000 + i))
        aws(s3, tmp_path, "s3", "cp", str(src), "s3://%s/d/f%d" % (b, i % 2))
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

