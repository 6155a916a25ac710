"""--trace DIR: Chrome trace-event files that Perfetto and chrome://tracing open.

usage: test_trace.py DLTRAIN single
       test_trace.py DLTRAIN mpi MPIEXEC

single: one rank, lenet on synthetic data: the file is JSON, every begin has
        its end on the same thread in nesting order, timestamps never go back
        on a thread, every layer has a forward and a backward span in every
        traced step, the optimizer, data and evaluation appear, the window
        keeps --trace-steps steps; bench train --trace; bad --trace input.
mpi:    2 ranks with small buckets: a file per rank, every bucket's
        all-reduce in every traced step; with overlap the first bucket starts
        inside backward, with --no-overlap after it."""
import json
import os
import subprocess
import sys
import tempfile

DLTRAIN = os.path.abspath(sys.argv[1])
CASE = sys.argv[2]
FAILURES = []
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1")
# models/lenet.c, in forward order (names are kind + layer index)
LENET = ["conv0", "relu1", "maxpool2", "conv3", "relu4", "maxpool5", "fc6", "relu7", "fc8"]
COMMON = ["--model", "lenet", "--data", "synthetic:1x28x28:10", "--threads", "1",
          "--no-progress", "--epochs", "1"]


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}")
    if not ok:
        FAILURES.append(name)
    return ok


def run(cmd, cwd, timeout=300):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=ENV)


def spans(path):
    """Parses a trace; returns (document, spans by tid, problems).  A span is
    dict(name, cat, args, start, end, depth, parent) built by matching each E
    with the innermost open B of its thread."""
    with open(path) as f:
        doc = json.load(f)
    problems, by_tid, stacks, last_ts = [], {}, {}, {}
    for e in doc["traceEvents"]:
        if e["ph"] == "M":
            continue
        key = (e["pid"], e["tid"])
        if e["ts"] < last_ts.get(key, float("-inf")):
            problems.append(f"time goes back on tid {e['tid']} at {e['ts']}")
        last_ts[key] = e["ts"]
        stack = stacks.setdefault(key, [])
        if e["ph"] == "B":
            span = {"name": e["name"], "cat": e.get("cat"), "args": e.get("args", {}),
                    "start": e["ts"], "depth": len(stack), "parent": stack[-1] if stack else None}
            stack.append(span)
        elif e["ph"] == "E":
            if not stack:
                problems.append(f"end without a begin on tid {e['tid']} at {e['ts']}")
                continue
            span = stack.pop()
            span["end"] = e["ts"]
            by_tid.setdefault(e["tid"], []).append(span)
        else:
            problems.append(f"unexpected phase {e['ph']}")
    for key, stack in stacks.items():
        if stack:
            problems.append(f"{len(stack)} begins without an end on tid {key[1]}")
    for lst in by_tid.values():
        lst.sort(key=lambda s: s["start"])
    return doc, by_tid, problems


def thread_ids(doc):
    return {e["args"]["name"]: e["tid"] for e in doc["traceEvents"]
            if e["ph"] == "M" and e["name"] == "thread_name"}


def children(spans_, parent):
    return [s for s in spans_ if s["parent"] is parent]


def check_layers(compute, steps):
    """Every traced step: forward holds each layer in order, backward in reverse."""
    bad = []
    for step in steps:
        parts = {s["name"]: s for s in children(compute, step)}
        fwd = [s["name"] for s in children(compute, parts.get("forward"))]
        bwd = [s["name"] for s in children(compute, parts.get("backward"))]
        if fwd != LENET or bwd != LENET[::-1]:
            bad.append(f"step {step['args'].get('step')}: forward {fwd}, backward {bwd}")
        kinds = {s["args"].get("kind") for s in children(compute, parts.get("forward"))}
        if kinds != {"conv", "relu", "maxpool", "fc"}:
            bad.append(f"layer kinds {kinds}")
    return bad


def case_single(tmp):
    p = run([DLTRAIN, "train"] + COMMON + ["--train-samples", "256", "--batch", "32",
                                           "--out", "run", "--trace", "traces/one"], tmp)
    if not check("train --trace runs", p.returncode == 0, p.stderr.strip()[-300:]):
        return
    path = os.path.join(tmp, "traces/one/trace-rank-0.json")
    check("trace path printed", "traces/one/trace-rank-0.json" in p.stdout)
    doc, by_tid, problems = spans(path)
    check("valid JSON, begins and ends match and nest, time monotone per thread",
          not problems, "; ".join(problems[:5]))
    meta = [e for e in doc["traceEvents"] if e["ph"] == "M" and e["name"] == "process_name"]
    check("process named rank 0", meta and meta[0]["args"]["name"] == "rank 0")
    tids = thread_ids(doc)
    compute = by_tid.get(tids.get("compute (training thread)"), [])
    steps = [s for s in compute if s["name"] == "step" and s["depth"] == 0]
    # 8 steps in the epoch; the first is left out (warm-up), 20 are allowed
    check("steps 2..8 traced", [s["args"].get("step") for s in steps] == list(range(2, 9)),
          str([s["args"].get("step") for s in steps]))
    bad = check_layers(compute, steps)
    check("every layer forward and backward in every step", not bad, "; ".join(bad[:3]))
    for part in ["data wait", "upload", "forward", "loss", "backward", "vote all-reduce",
                 "optimizer"]:
        n = sum(1 for st in steps if any(c["name"] == part for c in children(compute, st)))
        check(f"'{part}' in every step", n == len(steps), f"{n} of {len(steps)}")
    check("evaluation traced", any(s["name"] == "evaluate" for s in compute))
    loads = by_tid.get(tids.get("data (training loader thread)"), [])
    check("training loader thread traced", len(loads) >= 5, f"{len(loads)} batches")
    evals = by_tid.get(tids.get("data (evaluation loader thread)"), [])
    check("evaluation loader thread traced", len(evals) >= 1, f"{len(evals)} batches")
    check("no all-reduce rows on one rank", not any(n.startswith("all-reduce") for n in tids))

    p = run([DLTRAIN, "train"] + COMMON + ["--train-samples", "256", "--batch", "32",
                                           "--out", "run2", "--trace", "two", "--trace-steps", "3",
                                           "--max-steps", "5"],
            tmp)
    if check("train --trace-steps 3 runs", p.returncode == 0, p.stderr.strip()[-300:]):
        doc, by_tid, problems = spans(os.path.join(tmp, "two/trace-rank-0.json"))
        compute = by_tid.get(thread_ids(doc).get("compute (training thread)"), [])
        steps = [s["args"].get("step") for s in compute if s["name"] == "step"]
        check("window keeps steps 2..4", steps == [2, 3, 4] and not problems, str(steps))

    p = run([DLTRAIN, "bench", "train", "--batch", "16", "--steps", "3", "--repeats", "1",
             "--warmup", "1", "--threads", "1", "--trace", "bench"], tmp)
    if check("bench train --trace runs", p.returncode == 0, p.stderr.strip()[-300:]):
        doc, by_tid, problems = spans(os.path.join(tmp, "bench/trace-rank-0.json"))
        compute = by_tid.get(thread_ids(doc).get("compute (training thread)"), [])
        steps = [s for s in compute if s["name"] == "step"]
        check("bench trace: 3 steps after the first, layers in each",
              len(steps) == 3 and not problems and not check_layers(compute, steps),
              f"{len(steps)} steps; {problems[:2]}")

    open(os.path.join(tmp, "afile"), "w").close()
    p = run([DLTRAIN, "train"] + COMMON + ["--train-samples", "256", "--batch", "32",
                                           "--out", "run3", "--trace", "afile/x"], tmp)
    check("--trace under a file: clear error before training",
          p.returncode == 1 and "afile" in p.stderr and "Traceback" not in p.stderr
          and "epoch" not in p.stdout, f"rc {p.returncode}: {p.stderr.strip()[-200:]}")
    p = run([DLTRAIN, "train", "--trace-steps", "0"], tmp)
    check("--trace-steps 0 is a usage error", p.returncode == 2, p.stderr.strip()[-200:])


def traced_mpi(tmp, mpiexec, name, extra):
    out = os.path.join(tmp, name)
    p = run([mpiexec, "--oversubscribe", "-np", "2", DLTRAIN, "train"] + COMMON +
            ["--train-samples", "512", "--batch", "16", "--bucket-mb", "0.5", "--out", out,
             "--trace", out + "/trace", "--trace-steps", "6"] + extra, tmp)
    if not check(f"{name}: 2 ranks with --trace", p.returncode == 0, p.stderr.strip()[-300:]):
        return None
    files = sorted(os.listdir(out + "/trace"))
    check(f"{name}: one file per rank", files == ["trace-rank-0.json", "trace-rank-1.json"],
          str(files))
    return [os.path.join(out, "trace", f) for f in files]


def bucket_timing(path, rank):
    """Per traced step: (backward start, backward end, first bucket start, buckets seen)."""
    doc, by_tid, problems = spans(path)
    check(f"rank {rank}: JSON, begins and ends match and nest, time monotone",
          not problems, "; ".join(problems[:5]))
    pids = {e["pid"] for e in doc["traceEvents"]}
    check(f"rank {rank}: pid is the rank", pids == {rank}, str(pids))
    tids = thread_ids(doc)
    compute = by_tid.get(tids.get("compute (training thread)"), [])
    buckets = [s for n, tid in tids.items() if n.startswith("all-reduce")
               for s in by_tid.get(tid, [])]
    rows = []
    for step in (s for s in compute if s["name"] == "step"):
        parts = {s["name"]: s for s in children(compute, step)}
        mine = [b for b in buckets if step["start"] <= b["start"] <= step["end"]]
        first = min((b["start"] for b in mine if b["args"].get("bucket") == 0), default=None)
        bwd = parts.get("backward")
        wait = parts.get("all-reduce wait")
        ok = bwd is not None and wait is not None and first is not None
        rows.append((bwd["start"], bwd["end"], first, sorted(b["args"]["bucket"] for b in mine))
                    if ok else None)
    return rows


def check_merge(folder):
    """scripts/trace_merge.py puts both ranks on one timeline."""
    merge = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts",
                         "trace_merge.py")
    p = run([sys.executable, merge, folder], folder)
    if check("trace_merge.py runs", p.returncode == 0, p.stderr.strip()[-300:]):
        doc, _, problems = spans(os.path.join(folder, "trace-all-ranks.json"))
        pids = {e["pid"] for e in doc["traceEvents"]}
        check("merged trace: both ranks, still nested", pids == {0, 1} and not problems,
              f"{pids} {problems[:2]}")


def case_mpi(tmp, mpiexec):
    for name, extra in [("overlap", []), ("no_overlap", ["--no-overlap"])]:
        paths = traced_mpi(tmp, mpiexec, name, extra)
        if not paths:
            continue
        if name == "overlap":
            check_merge(os.path.dirname(paths[0]))
        for rank, path in enumerate(paths):
            rows = bucket_timing(path, rank)
            check(f"{name} rank {rank}: 6 steps, each with backward, the wait and bucket 0",
                  len(rows) == 6 and all(rows), f"{len(rows)} steps")
            rows = [r for r in rows if r]
            counts = {len(r[3]) for r in rows}
            check(f"{name} rank {rank}: several buckets, all of them in every step",
                  len(counts) == 1 and min(counts) >= 3 and
                  all(r[3] == list(range(len(r[3]))) for r in rows), str(counts))
            if name == "overlap":
                inside = [r[0] < r[2] < r[1] for r in rows]
                check(f"overlap rank {rank}: first bucket starts inside backward",
                      rows and all(inside), str(inside))
            else:
                after = [r[2] >= r[1] for r in rows]
                check(f"no-overlap rank {rank}: first bucket starts after backward",
                      rows and all(after), str(after))


def main():
    with tempfile.TemporaryDirectory() as tmp:
        if CASE == "single":
            case_single(tmp)
        elif CASE == "mpi":
            case_mpi(tmp, sys.argv[3])
        else:
            sys.exit(f"unknown case {CASE}")
    if FAILURES:
        print(f"{len(FAILURES)} check(s) failed: {', '.join(FAILURES)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
