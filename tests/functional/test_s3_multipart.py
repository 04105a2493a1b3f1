"""S3 multipart uploads (issue 10 section 1, "Multipart"): awscli's own
multipart transfers (20 MiB up, down and copied: UploadPart and
UploadPartCopy with ranges), boto3's multipart calls one by one, every
multipart error code, reads across part boundaries, the blobs freed by
overwrite / delete / abort / expiry, kill -9 in the middle of an upload,
and the max_uploads bound.

Before this change the S3 server answered 501 NotImplemented to
`?uploads`, `?uploadId` and `?partNumber`: every test here fails on the old
code (awscli's `s3 cp` of a file above its 8 MiB threshold failed with
NotImplemented, boto3's create_multipart_upload raised it)."""
import hashlib
import json
import os
import socket
import ssl
import subprocess
import threading
import time

import boto3  # noqa: F401  (the clients below are boto3's)
import botocore.exceptions
import pytest
import requests

from conftest import Region, aws_cli, free_port_base, read_response, run
from test_s3 import REGION, S3, blob_files, bucket_name, dev_key, s3_error, s3_port

MIB = 1024 * 1024


def md5_of_md5s(parts):
    """S3's ETag of a multipart object, computed here independently."""
    return "%s-%d" % (hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest(), len(parts))


def code_of(exc):
    return exc.value.response["Error"]["Code"]


def status_of(exc):
    return exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


def wait_for(pred, timeout=10.0, what="condition"):
    """Blob deletion after a commit runs in the pool: poll for it briefly."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A region with the default part bound (16 MiB: awscli's 8 MiB parts
    fit)."""
    region = Region(tmp_path_factory.mktemp("s3mp"))
    region.start()
    akid, secret = dev_key(region.data)
    yield S3(region, akid, secret)
    code = region.stop()
    assert code == 0, "region did not stop cleanly (%s): %s" % (code, region.log()[-2000:])


def aws_env(s3, tmp_path):
    """awscli with its default transfer settings: multipart above 8 MiB,
    8 MiB parts."""
    conf = tmp_path / "aws-config"
    conf.write_text("[default]\nregion = eu\n")
    env = dict(os.environ)
    env.update(AWS_ACCESS_KEY_ID=s3.akid, AWS_SECRET_ACCESS_KEY=s3.secret, AWS_DEFAULT_REGION=REGION,
               AWS_CA_BUNDLE=s3.ca, AWS_CONFIG_FILE=str(conf),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_PAGER="")
    return env


def aws(s3, tmp_path, *args):
    """awscli in this process (conftest.aws_cli)."""
    p = aws_cli(["--endpoint-url", s3.url, *args], aws_env(s3, tmp_path), timeout=180)
    assert p.returncode == 0, p.stderr + p.stdout
    return p


def test_awscli_cp_20mib_multipart_up_down_and_copy(s3, tmp_path):
    """`aws s3 cp` of 20 MiB (above the 8 MiB threshold: Create, 3
    UploadParts, Complete) up, back down (ranged GETs) byte for byte, with
    the md5-of-md5s "-3" ETag; then an S3-to-S3 `cp`, which awscli does with
    UploadPartCopy and x-amz-copy-source-range over the multipart source
    (copying 8 MiB ranges of it, across its part boundaries is not needed
    there: the test of boto3's upload_part_copy does that)."""
    b = bucket_name()
    data = os.urandom(20 * MIB)
    src = tmp_path / "video.bin"
    src.write_bytes(data)
    aws(s3, tmp_path, "s3", "mb", "s3://" + b)
    aws(s3, tmp_path, "s3", "cp", str(src), "s3://%s/v/video.bin" % b)
    head = json.loads(aws(s3, tmp_path, "s3api", "head-object", "--bucket", b, "--key", "v/video.bin").stdout)
    parts = [data[i:i + 8 * MIB] for i in range(0, len(data), 8 * MIB)]
    assert head["ContentLength"] == len(data)
    assert head["ETag"].strip('"') == md5_of_md5s(parts)
    back = tmp_path / "back.bin"
    aws(s3, tmp_path, "s3", "cp", "s3://%s/v/video.bin" % b, str(back))
    assert back.read_bytes() == data
    # awscli's default S3-to-S3 cp also reads the tags (GetObjectTagging: the
    # empty set here) to copy them along; it failed while that was 501
    aws(s3, tmp_path, "s3", "cp", "s3://%s/v/video.bin" % b, "s3://%s/v/copy.bin" % b)
    back2 = tmp_path / "back2.bin"
    aws(s3, tmp_path, "s3", "cp", "s3://%s/v/copy.bin" % b, str(back2))
    assert back2.read_bytes() == data
    out = aws(s3, tmp_path, "s3api", "list-multipart-uploads", "--bucket", b).stdout.strip()
    assert not (json.loads(out) if out else {}).get("Uploads")  # completed uploads are gone
    aws(s3, tmp_path, "s3", "rm", "--recursive", "s3://%s/" % b)
    aws(s3, tmp_path, "s3", "rb", "s3://" + b)


def test_boto3_multipart_calls_ranges_and_part_overwrite(s3):
    """boto3 one call at a time: create (metadata and content type kept for
    the object), upload_part with part 2 uploaded twice (the first blob is
    deleted), list_parts paged, list_multipart_uploads with prefix /
    delimiter / markers, complete, then GET of the whole object, Ranges
    across each part boundary and inside the last part, HEAD; abort of a
    second upload frees its blobs."""
    c = s3.boto()
    b = bucket_name()
    c.create_bucket(Bucket=b)
    up = c.create_multipart_upload(Bucket=b, Key="docs/report.pdf", ContentType="application/pdf",
                                   Metadata={"owner": "alice"})
    uid = up["UploadId"]
    assert up["Key"] == "docs/report.pdf" and up["Bucket"] == b
    p1, p2_old, p2, p3 = os.urandom(5 * MIB), os.urandom(5 * MIB + 7), os.urandom(5 * MIB + 3), os.urandom(1000)
    e1 = c.upload_part(Bucket=b, Key="docs/report.pdf", UploadId=uid, PartNumber=1, Body=p1)["ETag"]
    assert e1.strip('"') == hashlib.md5(p1).hexdigest()
    c.upload_part(Bucket=b, Key="docs/report.pdf", UploadId=uid, PartNumber=2, Body=p2_old)
    assert len(blob_files(s3.region)) >= 2
    before = set(blob_files(s3.region))
    e2 = c.upload_part(Bucket=b, Key="docs/report.pdf", UploadId=uid, PartNumber=2, Body=p2)["ETag"]
    # the replaced part's blob goes once the new row is committed
    wait_for(lambda: len(set(blob_files(s3.region)) - before) == 1 and len(before - set(blob_files(s3.region))) == 1,
             what="the replaced part's blob to be deleted")
    e3 = c.upload_part(Bucket=b, Key="docs/report.pdf", UploadId=uid, PartNumber=3, Body=p3)["ETag"]
    page = c.list_parts(Bucket=b, Key="docs/report.pdf", UploadId=uid, MaxParts=2)
    assert [p["PartNumber"] for p in page["Parts"]] == [1, 2] and page["IsTruncated"]
    assert page["Parts"][1]["Size"] == len(p2) and page["Parts"][1]["ETag"] == e2
    page = c.list_parts(Bucket=b, Key="docs/report.pdf", UploadId=uid,
                        PartNumberMarker=page["NextPartNumberMarker"])
    assert [p["PartNumber"] for p in page["Parts"]] == [3] and not page["IsTruncated"]

    other = c.create_multipart_upload(Bucket=b, Key="docs/other")["UploadId"]
    third = c.create_multipart_upload(Bucket=b, Key="top")["UploadId"]
    ups = c.list_multipart_uploads(Bucket=b)
    assert [(u["Key"], u["UploadId"]) for u in ups["Uploads"]] == [
        ("docs/other", other), ("docs/report.pdf", uid), ("top", third)]
    ups = c.list_multipart_uploads(Bucket=b, Delimiter="/")
    assert [p["Prefix"] for p in ups["CommonPrefixes"]] == ["docs/"]
    assert [u["Key"] for u in ups["Uploads"]] == ["top"]
    ups = c.list_multipart_uploads(Bucket=b, Prefix="docs/", MaxUploads=1)
    assert ups["IsTruncated"] and [u["UploadId"] for u in ups["Uploads"]] == [other]
    ups = c.list_multipart_uploads(Bucket=b, Prefix="docs/", KeyMarker=ups["NextKeyMarker"],
                                   UploadIdMarker=ups["NextUploadIdMarker"])
    assert [u["UploadId"] for u in ups["Uploads"]] == [uid] and not ups["IsTruncated"]

    done = c.complete_multipart_upload(
        Bucket=b, Key="docs/report.pdf", UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2},
                                   {"PartNumber": 3, "ETag": e3}]})
    assert done["ETag"].strip('"') == md5_of_md5s([p1, p2, p3])
    data = p1 + p2 + p3
    got = c.get_object(Bucket=b, Key="docs/report.pdf")
    assert got["Body"].read() == data
    assert got["ContentType"] == "application/pdf" and got["Metadata"] == {"owner": "alice"}
    assert got["ETag"] == done["ETag"]
    for start, end in [(5 * MIB - 10, 5 * MIB + 9), (10 * MIB, 10 * MIB + 5), (0, len(data) - 1),
                       (len(p1) + len(p2) - 1, len(data) - 1), (len(data) - 100, len(data) - 1)]:
        r = c.get_object(Bucket=b, Key="docs/report.pdf", Range="bytes=%d-%d" % (start, end))
        assert r["ContentRange"] == "bytes %d-%d/%d" % (start, end, len(data))
        assert r["Body"].read() == data[start:end + 1], (start, end)
    r = c.get_object(Bucket=b, Key="docs/report.pdf", Range="bytes=-1500")
    assert r["Body"].read() == data[-1500:]
    assert c.head_object(Bucket=b, Key="docs/report.pdf")["ContentLength"] == len(data)
    listed = c.list_objects_v2(Bucket=b)["Contents"]
    assert [(o["Key"], o["Size"], o["ETag"]) for o in listed] == [("docs/report.pdf", len(data), done["ETag"])]

    # abort: the upload and the blobs of its parts go
    before = len(blob_files(s3.region))
    c.upload_part(Bucket=b, Key="docs/other", UploadId=other, PartNumber=1, Body=b"x" * 1000)
    c.upload_part(Bucket=b, Key="docs/other", UploadId=other, PartNumber=2, Body=b"y" * 1000)
    assert len(blob_files(s3.region)) == before + 2
    c.abort_multipart_upload(Bucket=b, Key="docs/other", UploadId=other)
    wait_for(lambda: len(blob_files(s3.region)) == before, what="the aborted upload's blobs to go")
    c.abort_multipart_upload(Bucket=b, Key="top", UploadId=third)
    assert not c.list_multipart_uploads(Bucket=b).get("Uploads")


def test_upload_part_copy_ranges_and_copy_object_of_multipart(s3):
    """UploadPartCopy from a single-PUT object and from a multipart one
    (ranges crossing its part boundary), with CopyPartResult ETags; then
    CopyObject of the multipart object: the same bytes under a single
    blob."""
    c = s3.boto()
    b = bucket_name()
    c.create_bucket(Bucket=b)
    single = os.urandom(6 * MIB)
    c.put_object(Bucket=b, Key="single", Body=single)
    a, z = os.urandom(5 * MIB), os.urandom(2 * MIB)
    uid = c.create_multipart_upload(Bucket=b, Key="mp")["UploadId"]
    ea = c.upload_part(Bucket=b, Key="mp", UploadId=uid, PartNumber=1, Body=a)["ETag"]
    ez = c.upload_part(Bucket=b, Key="mp", UploadId=uid, PartNumber=2, Body=z)["ETag"]
    c.complete_multipart_upload(Bucket=b, Key="mp", UploadId=uid, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": ea}, {"PartNumber": 2, "ETag": ez}]})
    mp = a + z

    uid = c.create_multipart_upload(Bucket=b, Key="assembled")["UploadId"]
    r1 = c.upload_part_copy(Bucket=b, Key="assembled", UploadId=uid, PartNumber=1,
                            CopySource={"Bucket": b, "Key": "single"})["CopyPartResult"]
    assert r1["ETag"].strip('"') == hashlib.md5(single).hexdigest()
    lo, hi = 1 * MIB, 6 * MIB + 99  # 5 MiB + 100 bytes across mp's part boundary at 5 MiB
    r2 = c.upload_part_copy(Bucket=b, Key="assembled", UploadId=uid, PartNumber=2,
                            CopySource={"Bucket": b, "Key": "mp"},
                            CopySourceRange="bytes=%d-%d" % (lo, hi))["CopyPartResult"]
    r3 = c.upload_part_copy(Bucket=b, Key="assembled", UploadId=uid, PartNumber=3,
                            CopySource={"Bucket": b, "Key": "single"}, CopySourceRange="bytes=10-19")["CopyPartResult"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.upload_part_copy(Bucket=b, Key="assembled", UploadId=uid, PartNumber=4,
                           CopySource={"Bucket": b, "Key": "single"}, CopySourceRange="bytes=0-%d" % len(single))
    assert code_of(e) == "InvalidArgument" and status_of(e) == 400
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.upload_part_copy(Bucket=b, Key="assembled", UploadId=uid, PartNumber=4,
                           CopySource={"Bucket": b, "Key": "missing"})
    assert code_of(e) == "NoSuchKey"
    done = c.complete_multipart_upload(Bucket=b, Key="assembled", UploadId=uid, MultipartUpload={"Parts": [
        {"PartNumber": 1, "ETag": r1["ETag"]}, {"PartNumber": 2, "ETag": r2["ETag"]},
        {"PartNumber": 3, "ETag": r3["ETag"]}]})
    want = single + mp[lo:hi + 1] + single[10:20]
    assert done["ETag"].strip('"') == md5_of_md5s([single, mp[lo:hi + 1], single[10:20]])
    assert c.get_object(Bucket=b, Key="assembled")["Body"].read() == want

    c.copy_object(Bucket=b, Key="mp-copy", CopySource={"Bucket": b, "Key": "mp"})
    got = c.get_object(Bucket=b, Key="mp-copy")
    assert got["Body"].read() == mp and got["ETag"].strip('"') == hashlib.md5(mp).hexdigest()


def test_multipart_error_codes(s3):
    """Each error as AWS documents it: NoSuchUpload (unknown id, another
    key's id, Complete or Abort of an upload already completed or aborted),
    InvalidPart (unknown part, ETag mismatch), InvalidPartOrder,
    EntityTooSmall, EntityTooLarge (a part over max_put_bytes, told from
    the request head), InvalidArgument (partNumber outside 1..10000),
    MalformedXML; a bucket with an upload in progress is not empty."""
    c = s3.boto()
    b = bucket_name()
    c.create_bucket(Bucket=b)
    uid = c.create_multipart_upload(Bucket=b, Key="k")["UploadId"]
    small1, small2 = b"a" * 1000, b"b" * 1000
    e1 = c.upload_part(Bucket=b, Key="k", UploadId=uid, PartNumber=1, Body=small1)["ETag"]
    e2 = c.upload_part(Bucket=b, Key="k", UploadId=uid, PartNumber=2, Body=small2)["ETag"]

    def complete(parts, key="k", upload=uid):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c.complete_multipart_upload(Bucket=b, Key=key, UploadId=upload,
                                        MultipartUpload={"Parts": parts})
        return e

    bogus = "0" * 32
    for call in (lambda: c.upload_part(Bucket=b, Key="k", UploadId=bogus, PartNumber=1, Body=b"x"),
                 lambda: c.list_parts(Bucket=b, Key="k", UploadId=bogus),
                 lambda: c.abort_multipart_upload(Bucket=b, Key="k", UploadId="not-an-id"),
                 lambda: c.list_parts(Bucket=b, Key="other-key", UploadId=uid)):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            call()
        assert code_of(e) == "NoSuchUpload" and status_of(e) == 404
    e = complete([{"PartNumber": 1, "ETag": e1}, {"PartNumber": 3, "ETag": e2}])
    assert code_of(e) == "InvalidPart" and status_of(e) == 400
    e = complete([{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": '"%s"' % ("f" * 32)}])
    assert code_of(e) == "InvalidPart"
    e = complete([{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}])
    assert code_of(e) == "InvalidPartOrder" and status_of(e) == 400
    e = complete([{"PartNumber": 1, "ETag": e1}, {"PartNumber": 1, "ETag": e1}])
    assert code_of(e) == "InvalidPartOrder"
    e = complete([{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}])
    assert code_of(e) == "EntityTooSmall" and status_of(e) == 400
    for n in (0, 10001):
        r = s3.raw("PUT", "/%s/k" % b, "partNumber=%d&uploadId=%s" % (n, uid), body=b"x")
        assert r.status_code == 400 and s3_error(r) == "InvalidArgument", r.text
    # a part over max_put_bytes: refused from the request head, before the body
    query = "partNumber=1&uploadId=%s" % uid
    h = s3.sign("PUT", "/%s/k" % b, query, headers={"Content-Length": str(16 * MIB + 1)},
                payload_hash="UNSIGNED-PAYLOAD")
    for k in ("_seed", "_date", "_scope"):
        h.pop(k)
    sock = ssl.create_default_context(cafile=s3.ca).wrap_socket(
        socket.create_connection(("127.0.0.1", s3_port(s3.region)), timeout=10), server_hostname="127.0.0.1")
    sock.sendall(("PUT /%s/k?%s HTTP/1.1\r\n" % (b, query) + "".join("%s: %s\r\n" % kv for kv in h.items())
                  + "\r\n").encode())
    status, _, body, _ = read_response(sock)
    sock.close()
    assert status == 400 and b"<Code>EntityTooLarge</Code>" in body, body
    for body in (b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>",
                 b"<CompleteMultipartUpload></CompleteMultipartUpload>", b"not xml",
                 b"<CompleteMultipartUpload><Part><PartNumber>0</PartNumber><ETag>x</ETag></Part>"
                 b"</CompleteMultipartUpload>"):
        r = s3.raw("POST", "/%s/k" % b, "uploadId=" + uid, body=body)
        assert r.status_code == 400 and s3_error(r) == "MalformedXML", (body, r.text)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.delete_bucket(Bucket=b)
    assert code_of(e) == "BucketNotEmpty"
    # a single small part is the last one: fine
    done = c.complete_multipart_upload(Bucket=b, Key="k", UploadId=uid,
                                       MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}]})
    assert done["ETag"].strip('"') == md5_of_md5s([small1])
    assert c.get_object(Bucket=b, Key="k")["Body"].read() == small1
    e = complete([{"PartNumber": 1, "ETag": e1}])
    assert code_of(e) == "NoSuchUpload" and status_of(e) == 404
    uid2 = c.create_multipart_upload(Bucket=b, Key="k2")["UploadId"]
    c.abort_multipart_upload(Bucket=b, Key="k2", UploadId=uid2)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.abort_multipart_upload(Bucket=b, Key="k2", UploadId=uid2)
    assert code_of(e) == "NoSuchUpload"
    e = complete([{"PartNumber": 1, "ETag": e1}], key="k2", upload=uid2)
    assert code_of(e) == "NoSuchUpload"
    r = s3.raw("GET", "/%s/k" % b, "partNumber=1")
    assert r.status_code == 501 and s3_error(r) == "NotImplemented"
    # multipart parameters on a bucket (other than ListMultipartUploads) name no operation
    for method, query in (("PUT", "uploadId=" + uid), ("POST", "uploads"), ("DELETE", "uploadId=" + uid)):
        r = s3.raw(method, "/" + b, query)
        assert r.status_code == 405 and s3_error(r) == "MethodNotAllowed", (method, query, r.text)
    assert c.head_bucket(Bucket=b)


def test_overwrite_and_delete_of_multipart_object_free_its_part_blobs(s3):
    """A multipart object's part blobs are deleted after the row change that
    drops it: overwritten by a single PUT, overwritten by another Complete,
    deleted by DeleteObject and by DeleteObjects."""
    c = s3.boto()
    b = bucket_name()
    c.create_bucket(Bucket=b)
    base = len(blob_files(s3.region))

    def multipart(key, n):
        uid = c.create_multipart_upload(Bucket=b, Key=key)["UploadId"]
        parts = []
        for i in range(1, n + 1):
            body = os.urandom(5 * MIB if i < n else 100)
            parts.append({"PartNumber": i, "ETag": c.upload_part(Bucket=b, Key=key, UploadId=uid, PartNumber=i,
                                                                 Body=body)["ETag"]})
        c.complete_multipart_upload(Bucket=b, Key=key, UploadId=uid, MultipartUpload={"Parts": parts})

    def count():
        return len(blob_files(s3.region)) - base

    multipart("a", 3)
    assert count() == 3
    c.put_object(Bucket=b, Key="a", Body=b"small now")
    wait_for(lambda: count() == 1, what="the overwritten parts to go")
    multipart("a", 2)
    wait_for(lambda: count() == 2, what="the single blob replaced by a Complete to go")
    multipart("a", 2)
    wait_for(lambda: count() == 2, what="the first manifest's parts to go")
    c.delete_object(Bucket=b, Key="a")
    wait_for(lambda: count() == 0, what="the deleted object's parts to go")
    multipart("x", 2)
    multipart("y", 2)
    assert count() == 4
    c.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "x"}, {"Key": "y"}]})
    wait_for(lambda: count() == 0, what="DeleteObjects to free the parts")
    c.delete_bucket(Bucket=b)


def test_kill9_during_multipart_upload_then_restart(tmp_path):
    """kill -9 while parts are being uploaded, then restart: the upload is
    still listed with the parts that were acknowledged, no blob is left
    that no row names (a part whose row never committed is swept at start,
    the parts of the upload are not), and the upload can be completed (its
    bytes intact) or aborted (its blobs freed)."""
    region = Region(tmp_path)
    region.start()
    s3 = S3(region, *dev_key(region.data))
    c = s3.boto(retries={"max_attempts": 1})
    b = bucket_name()
    c.create_bucket(Bucket=b)
    uid = c.create_multipart_upload(Bucket=b, Key="big")["UploadId"]
    spare = c.create_multipart_upload(Bucket=b, Key="spare")["UploadId"]
    c.upload_part(Bucket=b, Key="spare", UploadId=spare, PartNumber=1, Body=b"s" * 100)
    acked = {}
    stop = threading.Event()

    def uploader():
        n = 1
        while not stop.is_set() and n <= 50:
            body = os.urandom(5 * MIB)
            try:
                etag = c.upload_part(Bucket=b, Key="big", UploadId=uid, PartNumber=n, Body=body)["ETag"]
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
                return
            acked[n] = (body, etag)
            n += 1
    t = threading.Thread(target=uploader)
    t.start()
    wait_for(lambda: len(acked) >= 2, timeout=60, what="two parts acknowledged")
    region.kill9()
    stop.set()
    t.join()
    region.start()
    try:
        c = s3.boto()
        ups = {u["UploadId"] for u in c.list_multipart_uploads(Bucket=b)["Uploads"]}
        assert ups == {uid, spare}
        listed = c.list_parts(Bucket=b, Key="big", UploadId=uid)["Parts"]
        numbers = [p["PartNumber"] for p in listed]
        # every acknowledged part survived; at most the one in flight may
        # also have committed its row just before the kill
        assert set(acked) <= set(numbers) and len(numbers) <= len(acked) + 1
        assert len(blob_files(region)) == len(numbers) + 1  # + spare's part: no orphan
        keep = sorted(acked)
        done = c.complete_multipart_upload(Bucket=b, Key="big", UploadId=uid, MultipartUpload={
            "Parts": [{"PartNumber": n, "ETag": acked[n][1]} for n in keep]})
        data = b"".join(acked[n][0] for n in keep)
        assert done["ETag"].strip('"') == md5_of_md5s([acked[n][0] for n in keep])
        assert c.get_object(Bucket=b, Key="big")["Body"].read() == data
        c.abort_multipart_upload(Bucket=b, Key="spare", UploadId=spare)
        wait_for(lambda: len(blob_files(region)) == len(keep), what="unlisted and aborted parts to go")
    finally:
        assert region.stop() == 0


def test_max_uploads_bound_and_expiry_sweep(tmp_path):
    """[objects] max_uploads bounds the uploads in progress (503 SlowDown
    past it, no row written), multipart_expiry_s aborts an upload left
    unfinished (its blobs freed, a log line), after which new uploads are
    accepted again; max_object_bytes bounds a completed object
    (EntityTooLarge at Complete, the upload kept)."""
    def limits(text):
        return (text.replace("max_uploads = 10000", "max_uploads = 2")
                .replace("multipart_expiry_s = 604800", "multipart_expiry_s = 3")
                .replace("max_object_bytes = 5368709120", "max_object_bytes = 6291456"))
    region = Region(tmp_path, edit_config=limits)
    region.start()
    try:
        s3 = S3(region, *dev_key(region.data))
        c = s3.boto(retries={"max_attempts": 1})
        b = bucket_name()
        c.create_bucket(Bucket=b)
        u1 = c.create_multipart_upload(Bucket=b, Key="one")["UploadId"]
        t0 = time.time()
        e1 = c.upload_part(Bucket=b, Key="one", UploadId=u1, PartNumber=1, Body=os.urandom(5 * MIB))["ETag"]
        e2 = c.upload_part(Bucket=b, Key="one", UploadId=u1, PartNumber=2, Body=os.urandom(2 * MIB))["ETag"]
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c.complete_multipart_upload(Bucket=b, Key="one", UploadId=u1, MultipartUpload={
                "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
        assert code_of(e) == "EntityTooLarge" and status_of(e) == 400
        c.create_multipart_upload(Bucket=b, Key="two")
        r = s3.raw("POST", "/%s/three" % b, "uploads")
        assert r.status_code == 503 and s3_error(r) == "SlowDown", r.text
        assert len(c.list_multipart_uploads(Bucket=b)["Uploads"]) == 2
        assert len(blob_files(region)) == 2
        assert time.time() - t0 < 3, "the machine is too slow for this expiry; rerun"
        wait_for(lambda: not c.list_multipart_uploads(Bucket=b).get("Uploads"), timeout=15,
                 what="the expiry sweep")
        wait_for(lambda: len(blob_files(region)) == 0, what="the expired parts' blobs to go")
        assert "multipart upload(s) older than 3 s" in region.log()
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c.list_parts(Bucket=b, Key="one", UploadId=u1)
        assert code_of(e) == "NoSuchUpload"
        assert c.create_multipart_upload(Bucket=b, Key="four")["UploadId"]
    finally:
        assert region.stop() == 0


def test_presigned_upload_part_with_curl(s3, tmp_path):
    """A browser or a phone uploads parts with presigned URLs (UploadPart
    signed by the server side, sent by curl with UNSIGNED-PAYLOAD)."""
    c = s3.boto()
    b = bucket_name()
    c.create_bucket(Bucket=b)
    uid = c.create_multipart_upload(Bucket=b, Key="phone.mov")["UploadId"]
    body = tmp_path / "part"
    data = os.urandom(300000)
    body.write_bytes(data)
    url = c.generate_presigned_url("upload_part", Params={"Bucket": b, "Key": "phone.mov", "UploadId": uid,
                                                          "PartNumber": 1}, ExpiresIn=300)
    p = subprocess.run(["curl", "-sS", "--cacert", s3.ca, "-X", "PUT", "--data-binary", "@" + str(body),
                        "-D", "-", "-o", "/dev/null", url], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and " 200" in p.stdout.splitlines()[0], p.stdout + p.stderr
    etag = [l.split(":", 1)[1].strip() for l in p.stdout.splitlines() if l.lower().startswith("etag:")][0]
    c.complete_multipart_upload(Bucket=b, Key="phone.mov", UploadId=uid,
                                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert requests.get(c.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "phone.mov"}),
                        verify=s3.ca, timeout=30).content == data


def test_config_multipart_keys_checked(tmp_path):
    """The generated config has the multipart keys with their defaults, and
    each is validated with FILE:LINE like the other [objects] keys (before
    this change they were unknown keys)."""
    run("init", "--address", "127.0.0.1", "--data", str(tmp_path), "--port-base", str(free_port_base()))
    path = tmp_path / "tandem.ini"
    text = path.read_text()
    for line in ("max_object_bytes = 5368709120", "max_uploads = 10000", "multipart_expiry_s = 604800"):
        assert "\n" + line + "\n" in text
    assert run("config", "check", str(path)).returncode == 0
    bad = (text.replace("max_object_bytes = 5368709120", "max_object_bytes = 10")
           .replace("max_uploads = 10000", "max_uploads = 0")
           .replace("multipart_expiry_s = 604800", "multipart_expiry_s = 7d"))
    path.write_text(bad)
    p = run("config", "check", str(path), check=False)
    assert p.returncode == 1
    lines = bad.split("\n")
    for key in ("max_object_bytes", "max_uploads", "multipart_expiry_s"):
        n = next(i + 1 for i, l in enumerate(lines) if l.startswith(key + " = "))
        assert "%s:%d:" % (path, n) in p.stderr and key in p.stderr, p.stderr
