"""The command line (issue 2, section 3): version, help, config check,
certs, init, up (endpoints.json, side-by-side deployments, clean stop),
region; every user error is a non-zero exit with a one-line reason."""
import json
import os
import signal
import stat
import subprocess
import time

import pytest
import requests

from conftest import TANDEM, UP_PORTS, free_port_base, run, signup, start_up


def test_version_and_help():
    r = run("version")
    assert r.stdout.startswith("tandem ") and r.returncode == 0
    r = run("help")
    for cmd in ["up", "init", "region", "certs", "config check", "version"]:
        assert cmd in r.stdout
    for cmd in [["up"], ["init"], ["region"], ["certs"], ["config"]]:
        r = run(*cmd, "--help")
        assert r.returncode == 0 and r.stdout.startswith("usage: tandem " + cmd[0]), cmd
    r = run("help", "region")
    assert r.stdout.startswith("usage: tandem region")


def test_unknown_command_and_options_fail_with_one_line():
    for args in [["frobnicate"], ["up", "--bogus", "1"], ["region"], ["certs"],
                 ["config", "check"], ["up", "--port-base", "99"]]:
        r = run(*args, check=False)
        assert r.returncode != 0, args
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("tandem: "), (args, r.stderr)


def test_config_check_reports_file_and_line(tmp_path):
    run("init", "--address", "127.0.0.1", "--data", str(tmp_path), "--port-base", str(free_port_base()))
    cfg = tmp_path / "tandem.ini"
    r = run("config", "check", str(cfg))
    assert r.returncode == 0 and "ok" in r.stdout
    lines = cfg.read_text().splitlines()
    # break three things: an unknown key, a bad integer, a bad role
    lines.insert(lines.index("[limits]") + 1, "max_header_bytez = 5")
    i = [n for n, line in enumerate(lines) if line.startswith("max_connections")][0]
    lines[i] = "max_connections = lots"
    j = lines.index("role = primary")
    lines[j] = "role = leader"
    cfg.write_text("\n".join(lines) + "\n")
    r = run("config", "check", str(cfg), check=False)
    assert r.returncode == 1
    out = r.stderr.strip().splitlines()
    text = cfg.read_text().splitlines()
    expected = {
        text.index("max_header_bytez = 5") + 1: "unknown key 'max_header_bytez'",
        text.index("max_connections = lots") + 1: "max_connections must be an integer",
        text.index("role = leader") + 1: "role must be primary or secondary",
    }
    for line_no, fragment in expected.items():
        prefix = "%s:%d: " % (cfg, line_no)
        assert any(o.startswith(prefix) and fragment in o for o in out), (prefix, fragment, out)


def test_config_check_syntax_error_and_missing_file(tmp_path):
    cfg = tmp_path / "bad.ini"
    cfg.write_text("[deployment]\nname = x\nthis line has no equals sign\n")
    r = run("config", "check", str(cfg), check=False)
    assert r.returncode == 1
    assert "%s:3: syntax error" % cfg in r.stderr
    r = run("config", "check", str(tmp_path / "nope.ini"), check=False)
    assert r.returncode == 1 and "cannot open" in r.stderr
    cfg.write_text("[deployment]\nsecrets_file = s\nca_file = c\n")
    r = run("config", "check", str(cfg), check=False)
    assert r.returncode == 1 and "at least one region" in r.stderr


def test_certs_are_created_idempotently_with_private_keys(tmp_path):
    run("init", "--address", "127.0.0.1", "--data", str(tmp_path), "--port-base", str(free_port_base()))
    certs = tmp_path / "certs"
    for key in ["ca.key", "eu.key"]:
        assert stat.S_IMODE(os.stat(certs / key).st_mode) == 0o600
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in certs.iterdir()}
    r = run("certs", "--config", str(tmp_path / "tandem.ini"))
    assert r.returncode == 0
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in certs.iterdir()}
    assert before == after
    (certs / "eu.pem").unlink()
    run("certs", "--config", str(tmp_path / "tandem.ini"))
    assert (certs / "eu.pem").exists()
    assert (certs / "ca.pem").read_bytes() == before["ca.pem"][0]
    # the new certificate verifies against the same CA (curl does the check)
    assert stat.S_IMODE(os.stat(tmp_path / "secrets.ini").st_mode) == 0o600


def test_region_refuses_readable_secrets(tmp_path):
    run("init", "--address", "127.0.0.1", "--data", str(tmp_path), "--port-base", str(free_port_base()))
    os.chmod(tmp_path / "secrets.ini", 0o644)
    r = run("region", "--config", str(tmp_path / "tandem.ini"), "--region", "eu", check=False)
    assert r.returncode != 0
    assert "secrets.ini:1: secrets file may be read by others" in r.stderr
    r = run("region", "--config", str(tmp_path / "tandem.ini"), "--region", "mars", check=False)
    assert r.returncode != 0 and "no [region mars]" in r.stderr


def test_up_print_config_uses_port_base(tmp_path):
    r = run("up", "--data", str(tmp_path / "d"), "--port-base", "12345", "--print-config")
    assert "api_listen = 127.0.0.2:12345" in r.stdout  # eu on its own loopback address
    assert "api_listen = 127.0.0.3:12346" in r.stdout
    r = run("up", "--data", str(tmp_path / "d"), "--port-base", "12345", "--address", "127.0.0.1", "--print-config")
    assert "api_listen = 127.0.0.1:12345" in r.stdout and "127.0.0.2:" not in r.stdout.split("[zone")[0]
    assert not (tmp_path / "d").exists(), "--print-config must not create anything"


def test_up_runs_two_deployments_side_by_side_and_stops_cleanly(tmp_path):
    base1, base2 = free_port_base(count=UP_PORTS), free_port_base(count=UP_PORTS)
    p1, e1 = start_up(tmp_path / "one", base1)
    p2, e2 = start_up(tmp_path / "two", base2)
    try:
        for e, base, d in [(e1, base1, "one"), (e2, base2, "two")]:
            assert set(e) == {"ca", "config", "regions", "witness", "s3_keys", "dns", "zone", "edges"}
            assert e["witness"]["addr"] == "127.0.0.4:%d" % (base + 4)
            os.kill(e["witness"]["pid"], 0)  # the witness runs too
            assert e["ca"] == str(tmp_path / d / "certs" / "ca.pem")
            assert e["config"] == str(tmp_path / d / "tandem.ini")
            eu = e["regions"]["eu"]
            assert eu["api"] == "https://127.0.0.2:%d" % base
            os.kill(eu["pid"], 0)  # the pid is a live process
            r = requests.get(eu["api"] + "/readyz", verify=e["ca"])
            assert r.json()["region"] == "eu" and r.json()["role"] == "primary"
            # where Prometheus scrapes each region: plain HTTP on loopback
            for name, addr, port in (("eu", "127.0.0.2", base + 5), ("us", "127.0.0.3", base + 6)):
                m = e["regions"][name]["metrics"]
                assert m == "http://%s:%d" % (addr, port), e["regions"][name]
                r = requests.get(m + "/metrics", timeout=5)
                assert r.status_code == 200 and 'region="%s"' % name in r.text
        # the same client works against the first deployment's API (curl)
        out = subprocess.run(["curl", "-sS", "--cacert", e1["ca"], e1["regions"]["eu"]["api"] + "/healthz"],
                             capture_output=True, text=True, check=True).stdout
        assert json.loads(out) == {"status": "ok"}
    finally:
        pids = [e1["regions"]["eu"]["pid"], e2["regions"]["eu"]["pid"]]
        p1.send_signal(signal.SIGINT)
        p2.send_signal(signal.SIGTERM)
        assert p1.wait(timeout=30) == 0
        assert p2.wait(timeout=30) == 0
    for pid in pids:
        try:
            os.kill(pid, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        assert not alive, "region %d survived `tandem up` stopping" % pid
    assert not (tmp_path / "one" / "endpoints.json").exists()


def test_up_reports_a_dead_region_and_keeps_running(tmp_path):
    proc, e = start_up(tmp_path, free_port_base(count=UP_PORTS))
    try:
        os.kill(e["regions"]["eu"]["pid"], signal.SIGKILL)
        time.sleep(0.5)
        assert proc.poll() is None, "tandem up exited when a region died"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    err = proc.log()
    assert "region eu (pid %d) was killed by signal 9; not restarting it" % e["regions"]["eu"]["pid"] in err


def test_up_data_survives_restart(tmp_path):
    base = free_port_base(count=UP_PORTS)
    proc, e = start_up(tmp_path, base)
    try:
        class R:
            url = e["regions"]["eu"]["api"]
            ca = e["ca"]

            def post(self, path, token=None, **kw):
                return requests.post(self.url + path, verify=self.ca, **kw)
        u = signup(R())
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    proc, e = start_up(tmp_path, base)
    try:
        r = requests.post(e["regions"]["eu"]["api"] + "/v1/auth/login", verify=e["ca"],
                          json={"email": u["email"], "password": u["password"]})
        assert r.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_binary_is_built_hardened():
    """Pins the build hardening (issue 8, section 5): the binary is a PIE,
    with full RELRO (a GNU_RELRO segment and BIND_NOW) and stack canaries
    (__stack_chk_fail imported), and fortified libc calls (*_chk). The old
    Makefile passed none of these flags: FLAGS_1 had no NOW and nothing
    imported __stack_chk_fail."""
    dynamic = subprocess.run(["readelf", "-d", "-W", TANDEM], capture_output=True, text=True,
                             check=True).stdout
    assert "BIND_NOW" in dynamic or ("FLAGS_1" in dynamic and " NOW" in dynamic), dynamic
    flags_1 = [line for line in dynamic.splitlines() if "FLAGS_1" in line]
    assert flags_1 and "NOW" in flags_1[0] and "PIE" in flags_1[0], flags_1
    header = subprocess.run(["readelf", "-h", "-W", TANDEM], capture_output=True, text=True,
                            check=True).stdout
    assert "DYN (Position-Independent Executable" in header, header
    segments = subprocess.run(["readelf", "-l", "-W", TANDEM], capture_output=True, text=True,
                              check=True).stdout
    assert "GNU_RELRO" in segments
    symbols = subprocess.run(["readelf", "--dyn-syms", "-W", TANDEM], capture_output=True,
                             text=True, check=True).stdout
    assert "__stack_chk_fail" in symbols
    if "build-san" not in TANDEM:  # ASan replaces the fortified calls with its own checks
        assert "_chk@" in symbols.replace("__stack_chk_fail@", "")


def test_status_and_verify_say_a_stopped_region_is_not_running(tmp_path):
    """Pins issue 8 (section 4): a region that refuses connections was shown
    as "unreachable (TLS or crypto error)"; it is "not running (connection
    refused)" now, in status (exit 0) and verify (exit 2, one line)."""
    run("init", "--address", "127.0.0.1", "--data", str(tmp_path), "--port-base", str(free_port_base()))
    config = str(tmp_path / "tandem.ini")
    r = run("status", "--config", config, check=False)
    assert r.returncode == 0, r.stderr
    # the region table, then one line per DNS instance (their /health)
    rows = [row for row in r.stdout.splitlines() if not row.startswith("dns ")]
    assert rows[0].split()[0] == "region" and len(rows) == 3, r.stdout
    assert rows[1].split(None, 1) == ["eu", "not running (connection refused)"], rows
    assert rows[2].split(None, 1) == ["us", "not running (connection refused)"], rows
    dns_rows = [row.split(None, 2) for row in r.stdout.splitlines() if row.startswith("dns ")]
    assert dns_rows == [["dns", "ns1", "not running (connection refused)"],
                        ["dns", "ns2", "not running (connection refused)"]], r.stdout
    assert "TLS" not in r.stdout
    r = run("verify", "--config", config, check=False)
    assert r.returncode == 2
    assert r.stderr == "tandem: region eu: not running (connection refused)\n", r.stderr


def test_status_and_verify_config_errors_are_prefixed_lines(tmp_path):
    """Pins issue 8 (section 4): status and verify printed the config's
    error without "tandem: " and without a final newline (the shell prompt
    ended up on the same line)."""
    missing = str(tmp_path / "nope.ini")
    for cmd in ("status", "verify", "switchover"):
        args = [cmd, "--config", missing] + (["--to", "eu"] if cmd == "switchover" else [])
        r = run(*args, check=False)
        assert r.returncode == 1, (cmd, r.stderr)
        assert r.stderr == "tandem: %s: cannot open: No such file or directory\n" % missing, (cmd, r.stderr)
    bad = tmp_path / "bad.ini"
    bad.write_text("[deployment]\nsecrets_file = s\nca_file = c\nbogus = 1\n")
    r = run("status", "--config", str(bad), check=False)
    assert r.returncode == 1 and r.stderr.endswith("\n")
    lines = r.stderr.splitlines()
    assert "tandem: %s:4: unknown key 'bogus' in [deployment]" % bad in lines, lines
    assert all(line.startswith("tandem: %s:" % bad) for line in lines), lines


def test_status_table_one_line_per_region_no_lag_for_the_primary(tmp_path):
    """Pins issue 8 (section 4): the status table showed a lag for the
    primary (it is the reference: it has none) and broke the row of a
    degraded region in two ("yes (since" and the time on the next line)."""
    from regions import TwoRegions
    pair = TwoRegions(tmp_path / "pair").start()
    try:
        r = run("status", "--config", pair.config)
        rows = [row.split() for row in r.stdout.splitlines() if not row.startswith("dns ")]
        assert len(rows) == 3, r.stdout
        header, eu, us = rows
        assert header == ["region", "role", "epoch", "last", "applied", "lag(pos)", "lag(s)", "link",
                          "objects(pend/lag)", "degraded"], header
        # object replication is two-way: both rows say what waits (nothing)
        assert eu[8] == us[8] == "0/0.0s", rows
        assert eu[:2] == ["eu", "primary"] and eu[5:7] == ["-", "-"], eu
        assert us[:2] == ["us", "secondary"] and us[5] == "0" and float(us[6]) >= 0, us
        assert len(eu) == len(us) == len(header), rows
        # us goes away: eu is degraded since a time, said on its own row
        pair.us.kill9()
        deadline = time.time() + 10
        while True:
            r = run("status", "--config", pair.config)
            if "yes (since" in r.stdout or time.time() > deadline:
                break
            time.sleep(0.2)
        rows = [row for row in r.stdout.splitlines() if not row.startswith("dns ")]
        assert len(rows) == 3, r.stdout
        assert rows[1].startswith("eu ") and "yes (since " in rows[1] and rows[1].endswith(")"), rows
        assert rows[2].split(None, 1) == ["us", "not running (connection refused)"], rows
    finally:
        pair.stop_all()


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_make_run_passes_port_base(tmp_path):
    """Pins issue 8 (section 4): `make run PORT_BASE=N` started the
    deployment on the default ports (8443...) whatever N was."""
    build = os.path.basename(os.path.dirname(TANDEM))
    if os.path.dirname(os.path.dirname(TANDEM)) != ROOT or build not in ("build", "build-san"):
        pytest.skip("TANDEM_BIN is not this repository's build")
    base = free_port_base(count=UP_PORTS)
    data = tmp_path / "data"
    san = ["SAN=1"] if build == "build-san" else []
    # -o: use the binary as it is (never rebuild it from here)
    proc, e = start_up(data, base, argv=["make", "-s", "-C", ROOT, "-o", "%s/tandem" % build, *san, "run",
                                         "DATA=%s" % data, "PORT_BASE=%d" % base])
    try:
        assert e["regions"]["eu"]["api"] == "https://127.0.0.2:%d" % base, e
        assert e["regions"]["us"]["api"] == "https://127.0.0.3:%d" % (base + 1), e
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.mark.drill_matrix  # a whole drill (8 s): `make test-drill`, not `make test`
def test_drill_default_report_is_private_and_outside_the_current_directory(tmp_path):
    """Pins issue 8 (section 4): without --report the drill wrote its report
    (with the fresh deployment's keys and secrets) to ./drill-report, mode
    0755, inside whatever directory it ran from (often the source tree).
    Now it is a new directory under $TMPDIR, mode 0700."""
    cwd, tmp = tmp_path / "tree", tmp_path / "tmp"
    cwd.mkdir()
    tmp.mkdir()
    env = dict(os.environ, TMPDIR=str(tmp))
    p = subprocess.run([TANDEM, "drill", "--scenario", "crash-secondary", "--rate", "20", "--duration", "6",
                        "--quiet", "--port-base", str(free_port_base(count=10))],
                       cwd=str(cwd), env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, (p.stdout[-3000:], p.stderr[-2000:])
    assert list(cwd.iterdir()) == [], "the drill wrote into the current directory"
    reports = list(tmp.iterdir())
    assert len(reports) == 1 and reports[0].name.startswith("tandem-drill-"), reports
    report = reports[0]
    assert stat.S_IMODE(os.stat(report).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(report / "logs").st_mode) == 0o700
    assert (report / "report.json").exists() and (report / "deployment" / "secrets.ini").exists()
    assert str(report / "report.json") in p.stdout


def status_ids(pid):
    """{"Uid": [...], "Gid": [...], "Groups": [...]} of /proc/PID/status."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid", "Groups"):
                out[key] = [int(v) for v in value.split()]
    return out


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_region_started_as_root_drops_to_the_tandem_user(tmp_path):
    """Pins issue 8 (section 5): a region started as root stayed root. Now
    `tandem init` (as root) creates the system user tandem and says in the
    config `user = tandem` when the deployment's directory is reachable by
    it; the region binds its ports, reads its keys and opens its database
    as root, hands its data directory to tandem and drops for good: every
    uid and gid is tandem's, its files are 0600 and tandem's, and the API
    still writes (WAL and all)."""
    import pwd
    import shutil
    import tempfile
    from conftest import Region
    # pytest's directories are 0700 root: the user could not pass; the
    # generated config says so (user = (empty)) and the region stays root
    run("init", "--address", "127.0.0.1", "--data", str(tmp_path / "private"), "--port-base", str(free_port_base()))
    text = (tmp_path / "private" / "tandem.ini").read_text()
    assert "\nuser =\n" in text, text
    top = tempfile.mkdtemp(prefix="tandem-drop-", dir="/tmp")
    try:
        os.chmod(top, 0o711)  # reachable by the user
        region = Region(os.path.join(top, "dep"))
        text = open(region.config).read()
        assert "\nuser = tandem\n" in text, text
        tandem = pwd.getpwnam("tandem")
        assert tandem.pw_uid != 0 and tandem.pw_shell == "/usr/sbin/nologin"
        region.start()
        try:
            ids = status_ids(region.proc.pid)
            assert ids["Uid"] == [tandem.pw_uid] * 4, ids
            assert ids["Gid"] == [tandem.pw_gid] * 4, ids
            assert ids["Groups"] == [tandem.pw_gid], ids
            # the API still writes after the drop: a signup and a record
            u = signup(region)
            r = region.post("/v1/collections/todos/records", u["access_token"], json={"title": "x"})
            assert r.status_code == 201, r.text
            data = os.path.join(region.data, "data", "eu")
            files = sorted(os.listdir(data))
            assert {"tandem.db", "tandem.db-wal", "tandem.db-shm"} <= set(files), files
            for name in files:
                st = os.stat(os.path.join(data, name))
                assert (st.st_uid, st.st_gid) == (tandem.pw_uid, tandem.pw_gid), (name, st)
                if name.startswith("tandem.db"):
                    assert stat.S_IMODE(st.st_mode) == 0o600, (name, oct(st.st_mode))
            st = os.stat(data)
            assert st.st_uid == tandem.pw_uid and stat.S_IMODE(st.st_mode) == 0o700
            # keys and secrets stay root's, unreadable by the user
            for name in ("secrets.ini", "certs/eu.key"):
                st = os.stat(os.path.join(region.data, name))
                assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o600, name
            assert "running as user tandem" in region.log()
        finally:
            assert region.stop() == 0, region.log()[-2000:]
    finally:
        shutil.rmtree(top)


def test_database_files_are_private(fresh_region):
    """Pins issue 8 (section 5): the database and its WAL and -shm files were
    created with the umask's mode (0644: readable by every local user)."""
    u = signup(fresh_region)
    assert u["access_token"]
    data = os.path.join(fresh_region.data, "data", "eu")
    for name in ("tandem.db", "tandem.db-wal", "tandem.db-shm"):
        mode = stat.S_IMODE(os.stat(os.path.join(data, name)).st_mode)
        assert mode == 0o600, (name, oct(mode))
