#!/usr/bin/env python3
"""Training throughput of dltrain against PyTorch on the CPU, same model,
batch, input shape and thread count.

Each case runs `dltrain bench train` and scripts/bench_torch.py back to back,
and the whole list is repeated --rounds times, interleaved, so that both see
the same machine load; the summary is the median over rounds of each figure
and of the per-round ratio (the ratio is the number to trust on a shared or
noisy machine).  A ratio >= 1 means dltrain is at least as fast.

    scripts/bench_compare.py                       # lenet, resnet20 on 1x28x28
    scripts/bench_compare.py --cases resnet20@3x32x32 --rounds 5
    scripts/bench_compare.py --dltrain build/launch/dltrain --threads 4

Cases are MODEL[@CxHxW]; the shape defaults to --shape.  PyTorch comes from
--python (default /usr/bin/python3, Debian's python3-torch).  Exit status:
0 when every case ran, 1 when one failed (its output is shown), 2 on usage
errors.  --json FILE writes every measurement for later comparison."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="See the top of this file for details.")
    p.add_argument("--cases", nargs="+", default=["lenet", "resnet20"],
                   help="MODEL[@CxHxW] ... (default: lenet resnet20)")
    p.add_argument("--shape", default="1x28x28", help="default input shape CxHxW (1x28x28)")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=20, help="timed steps per repeat (20)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3,
                   help="timed repeats inside one run; each tool reports their median (3)")
    p.add_argument("--rounds", type=int, default=3,
                   help="interleaved dltrain/torch rounds over all cases (3)")
    p.add_argument("--dltrain", default=os.environ.get("DLTRAIN", ""),
                   help="dltrain executable (default: $DLTRAIN, build/ or build-perf/launch/dltrain)")
    p.add_argument("--python", default="/usr/bin/python3", help="interpreter with torch")
    p.add_argument("--json", default="", help="write all measurements to this file")
    a = p.parse_args()
    if not a.dltrain:
        for d in ("build", "build-perf"):
            cand = os.path.join(ROOT, d, "launch", "dltrain")
            if os.access(cand, os.X_OK):
                a.dltrain = cand
                break
    if not a.dltrain or not os.access(a.dltrain, os.X_OK):
        p.error("no dltrain executable found: build it (cmake -S . -B build-perf "
                "-DCMAKE_BUILD_TYPE=Release && cmake --build build-perf -j2) or pass --dltrain")
    if min(a.batch, a.threads, a.steps, a.repeats, a.rounds) < 1:
        p.error("--batch, --threads, --steps, --repeats and --rounds must be at least 1")
    return a


def parse_case(text, default_shape):
    model, _, shape = text.partition("@")
    shape = shape or default_shape
    dims = shape.split("x")
    if not model or len(dims) != 3 or not all(d.isdigit() and int(d) > 0 for d in dims):
        sys.exit(f"bench_compare: bad case '{text}' (want MODEL or MODEL@CxHxW)")
    return model, shape


def run_json(cmd):
    """Run one benchmark that writes {"images_per_s": ...} to --json; None on failure."""
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        r = subprocess.run(cmd + ["--json", f.name], capture_output=True, text=True)
        if r.returncode != 0:
            sys.stderr.write(f"bench_compare: failed ({r.returncode}): {' '.join(cmd)}\n"
                             f"{r.stdout}{r.stderr}\n")
            return None
        with open(f.name) as jf:
            return float(json.load(jf)["images_per_s"])


def common_args(a):
    return ["--batch", str(a.batch), "--threads", str(a.threads), "--steps", str(a.steps),
            "--warmup", str(a.warmup), "--repeats", str(a.repeats)]


def measure(a, model, shape):
    dl = run_json([a.dltrain, "bench", "train", "--model", model,
                   "--data", f"synthetic:{shape}:{a.classes}"] + common_args(a))
    th = run_json([a.python, os.path.join(ROOT, "scripts", "bench_torch.py"), "--model", model,
                   "--shape", shape, "--classes", str(a.classes)] + common_args(a))
    return dl, th


def fmt(v, spec=".1f"):
    return "failed" if v is None else format(v, spec)


def main():
    a = parse_args()
    cases = [parse_case(c, a.shape) for c in a.cases]
    results = {c: [] for c in cases}
    print(f"dltrain: {a.dltrain}\ntorch:   {a.python} scripts/bench_torch.py\n"
          f"batch {a.batch}, threads {a.threads}, {a.steps} steps x {a.repeats} repeats "
          f"per run, {a.rounds} interleaved rounds (images/s; ratio = dltrain / torch)")
    failed = False
    for rnd in range(1, a.rounds + 1):
        for model, shape in cases:
            dl, th = measure(a, model, shape)
            failed |= dl is None or th is None
            ratio = dl / th if dl and th else None
            results[(model, shape)].append({"dltrain": dl, "torch": th, "ratio": ratio})
            print(f"  round {rnd}: {model:9s} {shape:9s} dltrain {fmt(dl):>8s}  "
                  f"torch {fmt(th):>8s}  ratio {fmt(ratio, '.2f')}", flush=True)
    print(f"\nsummary (median of {a.rounds} rounds):")
    print(f"  {'model':9s} {'input':9s} {'dltrain':>9s} {'torch':>9s} {'ratio':>6s}  "
          f"ratio range")
    summary = []
    for (model, shape), rows in results.items():
        med = {}
        for key in ("dltrain", "torch", "ratio"):
            vals = [r[key] for r in rows if r[key] is not None]
            med[key] = statistics.median(vals) if vals else None
        ratios = [r["ratio"] for r in rows if r["ratio"] is not None]
        rng = f"{min(ratios):.2f}-{max(ratios):.2f}" if ratios else "-"
        print(f"  {model:9s} {shape:9s} {fmt(med['dltrain']):>9s} {fmt(med['torch']):>9s} "
              f"{fmt(med['ratio'], '.2f'):>6s}  {rng}")
        summary.append({"model": model, "shape": shape, "rounds": rows, "median": med})
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"batch": a.batch, "threads": a.threads, "steps": a.steps,
                       "repeats": a.repeats, "cases": summary}, f, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
