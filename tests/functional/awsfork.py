"""A fork server for awscli (conftest.aws_cli): imports Debian's awscli
once, then forks a child per command, which runs `aws` exactly as
/usr/bin/aws does (awscli.clidriver.main() with sys.argv), with the
command's environment, its stdout and stderr in the files it is given.
An `aws` process spends about a second of CPU starting (Python, awscli's
imports); a forked child starts with those done. awscli 2 brings its own
botocore, so it cannot run inside the tests' process, where boto3's is
loaded.

Protocol, one JSON object per line: in {"args", "env", "out", "err"};
out {"pid"} when the child starts, then {"pid", "rc"} when it ends.
"""
import json
import os
import sys

_before = dict(os.environ)
import awscli.clidriver  # noqa: E402 (the import the children inherit)

# what importing awscli put in the environment (AWS_DATA_PATH: where its
# models are), kept under each command's own environment
SET_BY_IMPORT = {k: v for k, v in os.environ.items() if _before.get(k) != v}


def warm_up():
    """The modules awscli imports only once a command runs (botocore's
    parsers, s3transfer, its S3 commands...) are imported here too, so that
    the children start with them. Which ones: a throwaway child runs two
    commands (connections refused on 127.0.0.1:1) and names them. Not by
    running them here: a command starts awscrt's native threads, and a
    fork of a process with threads can deadlock in the child."""
    import contextlib
    import importlib
    import io
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        before = set(sys.modules)
        os.environ.update(AWS_ACCESS_KEY_ID="warm", AWS_SECRET_ACCESS_KEY="warm", AWS_DEFAULT_REGION="eu",
                          AWS_MAX_ATTEMPTS="1", AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            for args in (["s3api", "list-buckets"], ["s3", "ls"]):
                try:
                    awscli.clidriver.create_clidriver().main(["--endpoint-url", "http://127.0.0.1:1", *args])
                except BaseException:  # noqa: BLE001 (a warm-up only)
                    pass
        with os.fdopen(w, "w") as f:
            f.write(json.dumps(sorted(set(sys.modules) - before)))
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        text = f.read()
    os.waitpid(pid, 0)
    for name in json.loads(text or "[]"):
        if name.startswith("__"):
            continue
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 (what cannot be imported stays lazy)
            pass


def child(req):
    os.environ.clear()
    os.environ.update(SET_BY_IMPORT)
    os.environ.update(req["env"])
    for fd, path in ((1, req["out"]), (2, req["err"])):
        f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(f, fd)
        os.close(f)
    sys.stdin.close()
    sys.argv = ["aws", *req["args"]]
    try:
        rc = awscli.clidriver.main()
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException as e:  # noqa: BLE001 (a crash is the command's failure)
        sys.stderr.write("awsfork: %r\n" % e)
        rc = 255
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc if isinstance(rc, int) else 1)


def main():
    warm_up()
    out = sys.stdout
    for line in sys.stdin:
        req = json.loads(line)
        out.flush()
        pid = os.fork()
        if pid == 0:
            child(req)
        out.write(json.dumps({"pid": pid}) + "\n")
        out.flush()
        _, status = os.waitpid(pid, 0)
        rc = os.waitstatus_to_exitcode(status)
        out.write(json.dumps({"pid": pid, "rc": rc}) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
