#!/usr/bin/env python3
"""A/B of one measurement under two environments: the lane and transport test.

NCCL reads NCCL_P2P_DISABLE, NCCL_P2P_LEVEL and friends once, when the first
communicator is created, so a single launch cannot measure both settings: this
script launches the same `dltrain scale` or `dltrain bench allreduce` command
twice, the second time with the variables given by --set, and prints both and
the difference.  Each run's JSON records the variables it saw, so the report
says which setting produced which figure.

  scripts/ab_compare.py --set NCCL_P2P_DISABLE=1 -- \\
      mpirun -np 4 build/launch/dltrain scale --model resnet50 --batch 64
  scripts/ab_compare.py --set NCCL_P2P_LEVEL=PIX --json ab.json -- \\
      mpirun -np 2 build/launch/dltrain bench allreduce

Under mpirun, variables set here reach the ranks on this node; for several
nodes also pass them with mpirun's -x NAME.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile


def parse_sets(items):
    env = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not eq or not name:
            sys.exit(f"ab_compare: --set wants NAME=VALUE, not '{item}'")
        env[name] = value
    return env


def run_once(command, extra_env, label):
    fd, path = tempfile.mkstemp(prefix=f"dltrain-ab-{label}-", suffix=".json")
    os.close(fd)
    env = dict(os.environ)
    env.update(extra_env)
    shown = " ".join(f"{k}={v}" for k, v in extra_env.items()) or "(environment as is)"
    print(f"== {label}: {shown}", flush=True)
    proc = subprocess.run(command + ["--json", path], env=env)
    if proc.returncode != 0:
        sys.exit(f"ab_compare: run {label} exited with status {proc.returncode}")
    with open(path) as f:
        result = json.load(f)
    os.unlink(path)
    return result


def figures(result):
    """(key, label, value, unit) rows that both kinds of run can be compared on."""
    if result.get("command") == "scale":
        return [(p["ranks"], f"{p['ranks']} rank(s) {p['label']}", p["images_per_s"], "images/s")
                for p in result["points"]]
    if result.get("bench") == "allreduce":
        return [(r["bytes"], f"{r['bytes']} B", r["busbw_gbps"], "GB/s bus")
                for r in result["results"]]
    sys.exit("ab_compare: the command wrote JSON that is neither `scale` nor `bench allreduce`")


def compare(a, b):
    rows = []
    fb = {key: value for key, _, value, _ in figures(b)}
    for key, label, va, unit in figures(a):
        vb = fb.get(key)
        change = (vb / va - 1.0) * 100.0 if vb is not None and va > 0 else None
        rows.append({"key": key, "label": label, "unit": unit, "a": va, "b": vb,
                     "change_percent": change})
    return rows


def print_table(rows, extra_env):
    setting = " ".join(f"{k}={v}" for k, v in extra_env.items())
    print(f"\n  {'measurement':<50} {'A (as is)':>12} {'B':>12} {'B vs A':>8}   B: {setting}")
    for r in rows:
        b = f"{r['b']:12.4g}" if r["b"] is not None else f"{'-':>12}"
        c = f"{r['change_percent']:+7.1f}%" if r["change_percent"] is not None else f"{'-':>8}"
        print(f"  {r['label'][:50]:<50} {r['a']:12.4g} {b} {c}   {r['unit']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="variable for run B (repeatable), e.g. NCCL_P2P_DISABLE=1")
    ap.add_argument("--json", help="write both runs and the comparison here")
    ap.add_argument("command", nargs=argparse.REMAINDER,
                    help="-- then the dltrain scale or bench allreduce command line")
    args = ap.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        sys.exit("ab_compare: give the command to run after --")
    if "--json" in command:
        sys.exit("ab_compare: leave --json out of the command; this script sets it for each run")
    extra = parse_sets(args.set)
    if not extra:
        sys.exit("ab_compare: give at least one --set NAME=VALUE for run B")
    a = run_once(command, {}, "A")
    b = run_once(command, extra, "B")
    rows = compare(a, b)
    print_table(rows, extra)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"command": command, "b_env": extra, "a_env_had": {
                k: a.get("env", {}).get(k) for k in extra},
                "a": a, "b": b, "comparison": rows}, f, indent=1)


if __name__ == "__main__":
    main()
