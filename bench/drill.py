#!/usr/bin/python3
"""Run every DR drill scenario (or those named) ROUNDS times at the issue's
rate and print the medians: the figures of docs/BENCHMARKS.md, "DR drill".

    /usr/bin/python3 bench/drill.py [--tandem build/tandem] [--rounds 3]
        [--rate 500] [--duration 30] [--out build/bench/drill.json] [--quick] [SCENARIO...]

--quick is the smoke run of `make bench-smoke` (CI): every scenario once,
9 s at 100 writes/s, without --strict (a run that short may miss a
scenario's target, but the drill must run and pass its checks), results in
build/bench/quick/drill.json, apart from the real figures.

Each run is `tandem drill --scenario S --rate R --duration D --strict --json
--report DIR`; its report.json is kept under build/bench/drill/S-N/. A run
that exits non-zero is shown as such (and the script exits 1 at the end).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

SCENARIOS = ["crash-primary", "crash-secondary", "crash-witness", "partition-primary", "partition-link",
             "switchover", "crash-primary@edge", "partition-primary@edge"]


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, unit=" s"):
    return "-" if v is None else ("%.2f%s" % (v, unit) if isinstance(v, float) else "%s" % v)


def explain_failure(report, r, stderr):
    """A failed run, told on stderr so that a CI log alone explains it (the
    report directory is gone with the CI machine): the failed checks, then
    each component's warnings and errors (not its request lines)."""
    out = sys.stderr
    print("---- why it failed (report in %s)" % report, file=out)
    if stderr.strip():
        print(stderr.strip()[-1500:], file=out)
    for c in r.get("checks", []):
        if c.get("status") != "pass":
            print("  check %s: %s: %s" % (c.get("status"), c.get("name"), c.get("detail")), file=out)
    logs = os.path.join(report, "logs")
    for name in sorted(os.listdir(logs)) if os.path.isdir(logs) else []:
        lines = []
        with open(os.path.join(logs, name), errors="replace") as f:
            for line in f:
                try:
                    e = json.loads(line)
                except ValueError:
                    lines.append(line.rstrip()[:300])
                    continue
                if e.get("level") in ("warn", "error") or e.get("event") in ("election", "role"):
                    lines.append("%s %s %s" % (e.get("time", "")[11:23], e.get("level"), e.get("msg", "")[:240]))
        if lines:
            print("  -- %s (%d lines of note; first 25, last 25)" % (name, len(lines)), file=out)
            shown = lines if len(lines) <= 50 else lines[:25] + ["  ..."] + lines[-25:]
            for line in shown:
                print("  " + line, file=out)
    print("---- end of %s" % report, file=out, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tandem", default="build/tandem")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--rate", type=int)
    ap.add_argument("--duration", type=int)
    ap.add_argument("--out")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 round of 9 s at 100/s, not strict")
    ap.add_argument("scenarios", nargs="*", default=SCENARIOS)
    a = ap.parse_args()
    for name, real, quick in (("rounds", 3, 1), ("rate", 500, 100), ("duration", 30, 9),
                              ("out", "build/bench/drill.json", "build/bench/quick/drill.json")):
        if getattr(a, name) is None:
            setattr(a, name, quick if a.quick else real)
    for s in a.scenarios:
        if s not in SCENARIOS + ["restart-all"] and not (s.endswith("@edge") and s[:-5] in SCENARIOS):
            ap.error("unknown scenario %r" % s)
    base = os.path.join(os.path.dirname(a.out) or ".", "drill")
    results, failed = {}, 0
    for s in a.scenarios:
        runs = []
        for n in range(1, a.rounds + 1):
            report = os.path.join(base, "%s-%d" % (s, n))
            subprocess.run(["rm", "-rf", report], check=True)
            name, _, via = s.partition("@")  # "X@edge": scenario X with --via edge
            p = subprocess.run([a.tandem, "drill", "--scenario", name, *(["--via", via] if via else []),
                                "--rate", str(a.rate), "--duration",
                                str(a.duration), *([] if a.quick else ["--strict"]), "--json",
                                "--report", report, "--quiet"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            try:
                with open(os.path.join(report, "report.json")) as f:
                    r = json.load(f)
            except OSError:
                r = {}
            rpo, rto = r.get("rpo", {}), r.get("rto", {})
            run = {"exit": p.returncode, "acknowledged": rpo.get("acknowledged"),
                   "lost": rpo.get("only_in_quarantine"), "lost_global": rpo.get("lost_global"),
                   "lost_span_s": rpo.get("lost_span_s"), "missing": rpo.get("missing"),
                   "write_rto_s": rto.get("writes_s"), "global_rto_s": rto.get("global_writes_s"),
                   "read_rto_s": rto.get("reads_s"), "method": (r.get("fault") or {}).get("method"),
                   "client_write_rto_s": rto.get("client_writes_s"), "client_read_rto_s": rto.get("client_reads_s"),
                   "client_failed_reads": rto.get("client_failed_reads"),
                   "regions_write_rto_s": rto.get("regions_writes_s")}
            if p.returncode != 0:
                failed += 1
                run["stderr"] = p.stderr[-500:]
                explain_failure(report, r, p.stderr)
            runs.append(run)
            print("%-18s round %d: exit %d, write RTO %s, lost %s (%s)" % (
                s, n, p.returncode, fmt(run["write_rto_s"]), run["lost"], fmt(run["lost_span_s"])),
                file=sys.stderr, flush=True)
        results[s] = runs
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out, "w") as f:
        json.dump({"rate": a.rate, "duration": a.duration, "rounds": a.rounds, "results": results}, f, indent=1)
    print("scenario            runs ok  write RTO  global RTO  read RTO  lost (span)         lost global  missing")
    for s, runs in results.items():
        ok = sum(1 for r in runs if r["exit"] == 0)
        print("%-18s  %d/%d     %-9s  %-10s  %-8s  %-19s %-12s %s" % (
            s, ok, len(runs), fmt(median([r["write_rto_s"] for r in runs])),
            fmt(median([r["global_rto_s"] for r in runs])), fmt(median([r["read_rto_s"] for r in runs])),
            "%s (%s)" % (fmt(median([r["lost"] for r in runs]), ""), fmt(median([r["lost_span_s"] for r in runs]))),
            fmt(max([r["lost_global"] or 0 for r in runs]), ""), fmt(max([r["missing"] or 0 for r in runs]), "")))
    for s, runs in results.items():
        if "@" in s:  # through the edges: what the clients saw, next to the regions' own
            print("%-18s  clients' write RTO %s (regions' %s), reads back after %s, failed reads %s (max)" % (
                s, fmt(median([r["client_write_rto_s"] for r in runs])),
                fmt(median([r["regions_write_rto_s"] for r in runs])),
                fmt(median([r["client_read_rto_s"] for r in runs])),
                fmt(max([r["client_failed_reads"] or 0 for r in runs]), "")))
    print("medians of %d rounds at %d writes/s for %d s each; %s" % (a.rounds, a.rate, a.duration, a.out))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
