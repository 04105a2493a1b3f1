"""The secrets file's [objects] section (issue 10 section 2): the object
store's key-encryption keys. `tandem init` writes one; a file without it
keeps working; a malformed one is refused with FILE:LINE and no key
material. The blob store itself is tested in tests/unit/test_blobstore.c
(it is not wired to a listener yet)."""
import base64
import configparser
import os

from conftest import Region, free_port_base, run, signup


def read_secrets(data_dir):
    parser = configparser.ConfigParser()
    parser.read(os.path.join(str(data_dir), "secrets.ini"))
    return parser


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_init_writes_a_kek_and_the_region_runs_with_it(tmp_path):
    """Pins: before, `tandem init` wrote no KEK (the object store could not
    open), and a secrets file with an [objects] section was refused by the
    region ("unknown key kek_id")."""
    region = Region(tmp_path)
    secrets = read_secrets(tmp_path)
    assert secrets.has_section("objects")
    kek_id = secrets.get("objects", "kek_id")
    assert kek_id == "k1"
    assert len(b64url_decode(secrets.get("objects", "kek." + kek_id))) == 32
    # a second deployment gets a different KEK
    other = tmp_path / "other"
    run("init", "--address", "127.0.0.1", "--data", str(other), "--port-base", str(free_port_base()))
    assert read_secrets(other).get("objects", "kek.k1") != secrets.get("objects", "kek.k1")
    region.start()
    try:
        signup(region)  # tokens still signed with [tokens]
    finally:
        assert region.stop() == 0


def test_secrets_without_objects_still_work(tmp_path):
    """Guards the upgrade path: a secrets file written before this change
    (no [objects]) still starts a region; only the object store needs a
    KEK (it refuses to open without one: test_blobstore.c)."""
    region = Region(tmp_path)
    path = tmp_path / "secrets.ini"
    text = path.read_text()
    cut = text.index("[objects]")
    path.write_text(text[:cut])
    assert "[objects]" not in path.read_text()
    region.start()
    try:
        signup(region)
        assert "not served: the secrets file has no [objects] kek_id" in region.log()
    finally:
        assert region.stop() == 0


def test_malformed_kek_refused_with_file_and_line(tmp_path):
    """Pins: a KEK that is not 32 bytes, or a kek_id naming no kek.ID, is
    refused at start with FILE:LINE, never echoing the key."""
    run("init", "--address", "127.0.0.1", "--data", str(tmp_path), "--port-base", str(free_port_base()))
    path = tmp_path / "secrets.ini"
    good = path.read_text()
    lines = good.splitlines()
    kek_line = next(i for i, line in enumerate(lines) if line.startswith("kek.k1"))
    short = base64.urlsafe_b64encode(b"\x01" * 16).decode().rstrip("=")
    lines[kek_line] = "kek.k1 = " + short
    path.write_text("\n".join(lines) + "\n")
    r = run("region", "--config", str(tmp_path / "tandem.ini"), "--region", "eu", check=False)
    assert r.returncode != 0
    assert "secrets.ini:%d: key must be base64url of 32 bytes: kek.k1" % (kek_line + 1) in r.stderr
    assert short not in r.stderr
    path.write_text(good.replace("kek_id = k1", "kek_id = k7"))
    r = run("region", "--config", str(tmp_path / "tandem.ini"), "--region", "eu", check=False)
    assert r.returncode != 0
    assert "kek_id does not name a kek.ID in [objects]" in r.stderr
