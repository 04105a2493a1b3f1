"""The whole design from `tandem up` (issue 12 section 3): two edges (an EU
and a US point of presence on 127.0.0.7 and .8) serving app.tandem.test
with certificates of the dev CA, each resolving the regions' latency-routed
name through `tandem dns` with its own address as ECS, so that each prefers
its own region; endpoints.json lists them. The design record's request
flow, with real clients: dig finds the edges, curl --resolve goes through
one with TLS verified, the region answers behind it. A region killed while
a client keeps working through the edge: no failed request.

Fails on the code before: `tandem up` started no edge (endpoints.json had
no "edges"), and the edges had no `resolve =` (both preferred the first
configured origin)."""
import json
import os
import signal
import subprocess
import time

import dns.message
import dns.query

from conftest import UP_PORTS, free_port_base, new_email, start_up


def curl(edge, ca, path, *args):
    """curl through one edge, the app's name pinned to its address (as if
    DNS had answered it): (status, headers dict lowercased, body)."""
    host = edge["url"].split("//")[1]
    name, port = host.rsplit(":", 1)
    out = subprocess.run(["curl", "-sS", "-D", "-", "--cacert", ca, "--resolve",
                          "%s:%s:%s" % (name, port, edge["address"]), *args, edge["url"] + path],
                         capture_output=True, timeout=30)  # bytes: text=True would turn CRLF into LF
    assert out.returncode == 0, out.stderr
    head, _, body = out.stdout.decode().partition("\r\n\r\n")
    while head.startswith("HTTP/1.1 100"):
        head, _, body = body.partition("\r\n\r\n")
    lines = head.split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body


def test_up_runs_two_edges_each_nearer_its_region_and_a_killed_region_costs_no_request(tmp_path):
    base = free_port_base(count=UP_PORTS)
    proc, e = start_up(tmp_path / "up", base)
    try:
        edges = e["edges"]
        assert set(edges) == {"eu-pop", "us-pop"}, edges
        for name, addr, region in (("eu-pop", "127.0.0.7", "eu"), ("us-pop", "127.0.0.8", "us")):
            assert edges[name]["address"] == addr and edges[name]["region"] == region, edges
            assert edges[name]["url"] == "https://app.tandem.test:%d" % (base + 13), edges
            assert edges[name]["port"] == base + 13
        # step 1: the client resolves the app's name: both points of presence
        ns1 = e["dns"]["ns1"]
        r = dns.query.udp(dns.message.make_query("app.tandem.test", "A"), ns1["address"], port=ns1["port"],
                          timeout=3)
        assert sorted(rd.address for rrset in r.answer for rd in rrset) == ["127.0.0.7", "127.0.0.8"], r
        # step 2: TLS to the edge for app.tandem.test (verified against the dev CA); step 3: the
        # edge's own resolution of api.tandem.test puts its region first (both list eu first)
        for name, region in (("eu-pop", "eu"), ("us-pop", "us")):
            deadline = time.time() + 10
            while True:
                status, h, body = curl(edges[name], e["ca"], "/healthz")
                assert status == 200 and h["x-tandem-edge"] == name, (status, h, body)
                if h["x-tandem-region"] == region:
                    break
                assert time.time() < deadline, (name, h)  # the first resolution comes within a second
                time.sleep(0.1)
        # a signup through the US edge: the write reaches the primary (eu) through us
        email = new_email()
        status, h, body = curl(edges["us-pop"], e["ca"], "/v1/auth/signup", "-H", "Content-Type: application/json",
                               "-d", json.dumps({"email": email, "password": "correct horse battery"}))
        assert status == 201 and json.loads(body)["access_token"], body
        assert "no-store" in h.get("cache-control", ""), h  # personal: never cached at the edge
        # the region killed: the US edge's clients keep working (eu answers), not one failure
        os.kill(e["regions"]["us"]["pid"], signal.SIGKILL)
        regions = []
        t_end = time.time() + 4
        while time.time() < t_end:
            status, h, body = curl(edges["us-pop"], e["ca"], "/healthz")
            assert status == 200, (status, h, body)
            regions.append(h["x-tandem-region"])
        assert set(regions) == {"eu"}, regions
        log = proc.log()
        assert "edge us-pop: origin us is unhealthy" in log, log[-3000:]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, proc.log()[-3000:]



def test_objects_through_the_edge_with_a_region_killed(tmp_path, monkeypatch):
    """s3.app.tandem.test through the US edge (its host_origins): boto3
    creates a bucket, writes and reads an object (the client's Host passed
    on, so SigV4 holds), the object replicates to the other region; us is
    killed and the same client keeps writing and reading through the same
    edge (PUT is idempotent: sent to eu inside the request). Before: the
    edge sent every host to the API and replaced Host."""
    import socket as socketmod
    import boto3
    import botocore.config
    base = free_port_base(count=UP_PORTS)
    proc, e = start_up(tmp_path / "up", base)
    try:
        edge = e["edges"]["us-pop"]
        real = socketmod.getaddrinfo

        def resolve(host, *a, **kw):  # the phone's DNS answer for the app's names
            return real(edge["address"] if host == "s3.app.tandem.test" else host, *a, **kw)
        monkeypatch.setattr(socketmod, "getaddrinfo", resolve)
        keys = e["s3_keys"]
        s3 = boto3.client("s3", endpoint_url="https://s3.app.tandem.test:%d" % edge["port"],
                          aws_access_key_id=keys["access_key_id"], aws_secret_access_key=keys["secret_access_key"],
                          region_name="us", verify=e["ca"],
                          config=botocore.config.Config(s3={"addressing_style": "path"},
                                                        retries={"max_attempts": 1}))
        s3.create_bucket(Bucket="photos", CreateBucketConfiguration={"LocationConstraint": "us"})
        put = s3.put_object(Bucket="photos", Key="cat.jpg", Body=b"meow" * 1000)
        got = s3.get_object(Bucket="photos", Key="cat.jpg")
        assert got["Body"].read() == b"meow" * 1000
        assert got["ResponseMetadata"]["HTTPHeaders"]["x-tandem-edge"] == "us-pop"
        assert got["ETag"] == put["ETag"]
        eu = boto3.client("s3", endpoint_url=e["regions"]["eu"]["s3"], aws_access_key_id=keys["access_key_id"],
                          aws_secret_access_key=keys["secret_access_key"], region_name="eu", verify=e["ca"],
                          config=botocore.config.Config(s3={"addressing_style": "path"}))
        deadline = time.time() + 10
        while True:  # replicated to eu
            try:
                assert eu.get_object(Bucket="photos", Key="cat.jpg")["Body"].read() == b"meow" * 1000
                break
            except Exception:
                assert time.time() < deadline
                time.sleep(0.2)
        os.kill(e["regions"]["us"]["pid"], signal.SIGKILL)
        for i in range(5):
            s3.put_object(Bucket="photos", Key="dog-%d.jpg" % i, Body=b"woof")
            assert s3.get_object(Bucket="photos", Key="dog-%d.jpg" % i)["Body"].read() == b"woof"
        assert s3.get_object(Bucket="photos", Key="cat.jpg")["Body"].read() == b"meow" * 1000
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, proc.log()[-3000:]
