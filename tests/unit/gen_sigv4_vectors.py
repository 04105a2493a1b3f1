#!/usr/bin/env python3
"""Print the botocore cross-check requests of tests/unit/test_sigv4.c.

Run with a Python that has botocore (e.g. the one awscli uses):
    python3 tests/unit/gen_sigv4_vectors.py
It builds real botocore S3 requests (GetObject and PutObject of a key with
every awkward character, ListObjectsV2 with an awkward prefix, presigned
GET/PUT URLs, a SigV2 presigned URL), signed at 20130524T000000Z with AWS's
example key, captures them before they are sent, and prints them as C string
literals (head, body). The PUTs use botocore's default aws-chunked body with a
trailing checksum (STREAMING-UNSIGNED-PAYLOAD-TRAILER).
"""
import datetime, sys
from unittest import mock
import botocore.session
from botocore.awsrequest import AWSResponse
from botocore.config import Config

fixed = datetime.datetime(2013, 5, 24, 0, 0, 0)
captured = []

class Raw:
    def stream(self, **kw):
        return iter([b""])
    def read(self, *a, **k):
        return b""

def before_send(request, **kwargs):
    body = request.body
    if hasattr(body, "read"):
        body = body.read()
    if isinstance(body, str):
        body = body.encode()
    captured.append((request.method, request.url, dict(request.headers.items()), body or b""))
    return AWSResponse(request.url, 200, {}, Raw())

with mock.patch("botocore.auth.get_current_datetime", return_value=fixed), \
     mock.patch("botocore.auth.datetime") as m:
    m.datetime.utcnow.return_value = fixed
    s = botocore.session.get_session()
    c = s.create_client("s3", region_name="us-east-1", endpoint_url="https://example.com",
                        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
                        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
    c.meta.events.register("before-send", before_send)
    key = "a b/\u00fc+~!$&'()*,;=:@.txt"
    try: c.get_object(Bucket="bucket", Key=key)
    except Exception as e: print("#", e, file=sys.stderr)
    try: c.list_objects_v2(Bucket="bucket", Prefix="a b+c~\u00fc/=&", Delimiter="/", StartAfter="x y")
    except Exception as e: print("#", e, file=sys.stderr)
    try: c.put_object(Bucket="bucket", Key=key, Body=b"hello world", ContentType="text/plain")
    except Exception as e: print("#", e, file=sys.stderr)
    try: c.put_object(Bucket="bucket", Key="k", Body=b"hello world", ChecksumAlgorithm="SHA256")
    except Exception as e: print("#", e, file=sys.stderr)
    url = c.generate_presigned_url("get_object", Params={"Bucket": "bucket", "Key": key,
              "ResponseContentDisposition": "attachment; filename=\"a b.txt\""}, ExpiresIn=3600)
    captured.append(("GET", url, {"Host": "example.com"}, b""))
    c4 = s.create_client("s3", region_name="us-east-1", endpoint_url="https://example.com",
                        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
                        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
    for method in ("get_object", "put_object"):
        url = c4.generate_presigned_url(method, Params={"Bucket": "bucket", "Key": key,
              **({"ResponseContentDisposition": "attachment; filename=\"a b.txt\""} if method == "get_object" else {})}, ExpiresIn=3600)
        captured.append(("GET" if method == "get_object" else "PUT", url, {"Host": "example.com"}, b""))

def cstr(b):
    out = []
    for ch in b:
        if ch == 0x22: out.append('\\"')
        elif ch == 0x5c: out.append('\\\\')
        elif ch == 0x0a: out.append('\\n')
        elif ch == 0x0d: out.append('\\r')
        elif 0x20 <= ch < 0x7f:
            out.append(chr(ch))
        else: out.append('\\%03o' % ch)
    return '"' + "".join(out) + '"'

for method, url, headers, body in captured:
    path = url.split("://", 1)[1]
    path = path[path.index("/"):]
    head = f"{method} {path} HTTP/1.1\r\n"
    if "Host" not in headers and "host" not in headers:
        head += "Host: example.com\r\n"
    for k, v in headers.items():
        if isinstance(v, bytes): v = v.decode()
        head += f"{k}: {v}\r\n"
    lines = head.encode().split(b"\r\n")
    print("\t{" + "\n\t ".join(cstr(l + b"\r\n") for l in lines[:-1]) + ",\n\t " + cstr(body) + "},")
