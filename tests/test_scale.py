"""`dltrain scale` under mpiexec (oversubscribed on a small machine).

usage: test_scale.py MPIEXEC DLTRAIN CASE WORKDIR
CASE: np1 | np2 | np4 (a consistent report) | bad_input (clear errors, no hang)"""
import json
import os
import subprocess
import sys

MPIEXEC = sys.argv[1]
DLTRAIN = os.path.abspath(sys.argv[2])
CASE = sys.argv[3]
WORK = sys.argv[4]
FAILURES = []
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1", NCCL_DEBUG="INFO")
# tiny steps: the machine running the tests may have 2 cores for 4 ranks
TINY = ["--model", "lenet", "--batch", "8", "--warmup", "1", "--steps", "2", "--repeats", "3",
        "--threads", "1", "--sweep-max-mb", "0.25"]


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}")
    if not ok:
        FAILURES.append(name)


def scale(n, args, timeout=120):
    cmd = [MPIEXEC, "--oversubscribe", "-np", str(n), DLTRAIN, "scale"] + args
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=ENV)


def close(a, b, rel=2e-3):
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-12)


def check_report(n, j, p):
    want = [1] if n == 1 else [1, 2] if n == 2 else [1, 2, 4]
    check(f"sizes {want}", j["sizes"] == want and [q["ranks"] for q in j["points"]] == want,
          str(j["sizes"]))
    check("backend, world, device, threads recorded", j["backend"] == "mpi" and j["world"] == n
          and j["device"].startswith("cpu") and j["threads"] == 1, str(j)[:300])
    check("NCCL_* variables recorded", j["env"].get("NCCL_DEBUG") == "INFO", str(j["env"]))
    check("GPU links recorded (a list, empty without GPUs)", isinstance(j["gpus"], list))
    base = j["points"][0]["images_per_s"]
    for q in j["points"]:
        r = q["ranks"]
        check(f"{r}: images/s positive, median within min..max", 0 < q["images_per_s_min"]
              <= q["images_per_s"] <= q["images_per_s_max"], json.dumps(q))
        check(f"{r}: speedup = images/s / images/s(1)", close(q["speedup"], q["images_per_s"] / base),
              f"{q['speedup']} vs {q['images_per_s'] / base}")
        check(f"{r}: efficiency = speedup / ranks", close(q["efficiency"], q["speedup"] / r),
              f"{q['efficiency']} vs {q['speedup'] / r}")
        parts = ["step_ms", "compute_ms", "comm_ms", "exposed_comm_ms", "optimizer_ms", "data_ms"]
        check(f"{r}: breakdown non-negative", all(q[k] >= 0 for k in parts), json.dumps(q))
        check(f"{r}: compute <= step", q["compute_ms"] <= q["step_ms"] * (1 + 1e-6),
              f"{q['compute_ms']} > {q['step_ms']}")
        check(f"{r}: compute = forward + backward",
              close(q["compute_ms"], q["forward_ms"] + q["backward_ms"], 1e-4))
        check(f"{r}: exposed comm <= comm + slack", q["exposed_comm_ms"] <= q["comm_ms"] + 1.0)
        check(f"{r}: no all-reduce on one rank", r > 1 or q["comm_ms"] == 0)
        check(f"{r}: labelled", f"{r} CPU process" in q["label"] and "node" in q["label"],
              q["label"])
        check(f"{r}: {len(q['repeats_images_per_s'])} repeats",
              len(q["repeats_images_per_s"]) == 3)
    check("prediction 1.0 at 1 rank", j["points"][0]["predicted_speedup"] == 1.0)
    ar = j["allreduce"]
    if n > 1:
        check("world all-reduce sweep correct, busbw = algbw x 2(n-1)/n",
              ar["ranks"] == n and ar["points"] and all(
                  x["errors"] == 0 and close(x["busbw_gbps"], x["algbw_gbps"] * 2 * (n - 1) / n, 1e-4)
                  for x in ar["points"]), json.dumps(ar)[:300])
        check("predicted speedups for every size", all(q["predicted_speedup"] > 0
                                                       for q in j["points"]))
        # CPU ranks whose threads outnumber the cores: compute per rank grows,
        # so the prediction stays at or below cores / threads (scale_model.c)
        cores, threads = j["cores_online"], j["threads"]
        for q in j["points"]:
            if j["cpu_processes"] and q["ranks"] * threads > cores:
                check(f"{q['ranks']} ranks on {cores} cores: predicted <= {cores / threads:g}",
                      q["predicted_speedup"] <= cores / threads + 1e-9, str(q["predicted_speedup"]))
    verdicts = {c["claim"]: c["verdict"] for c in j["claims"]}
    for c in j["claims"]:
        m = max([q["speedup"] for q in j["points"] if q["ranks"] == c["gpus"]], default=None)
        want_v = "not measured" if m is None else ("below" if m < c["lo"] else
                                                   "above" if m > c["hi"] else "supports")
        check(f"claim '{c['claim']}': {want_v}", c["verdict"] == want_v, str(verdicts))
    check("claims say the ranks are CPU processes", j["cpu_processes"] and
          "not GPUs" in j["claims_note"] and "not GPUs" in p.stdout)
    check("table printed once", p.stdout.count("circulating claims") == 1, p.stdout[-400:])


def case_ranks(n):
    path = os.path.join(WORK, f"scale_np{n}.json")
    html = os.path.join(WORK, f"scale_np{n}.html")
    for f in (path, html):
        if os.path.exists(f):
            os.remove(f)
    p = scale(n, TINY + ["--json", path, "--report", html])
    check(f"scale -np {n} exits 0", p.returncode == 0, f"exit {p.returncode}: {p.stderr[-800:]}")
    if p.returncode != 0:
        return
    with open(path) as f:
        j = json.load(f)
    check_report(n, j, p)
    page = open(html).read() if os.path.exists(html) else ""
    check("report written (a whole HTML page)", "<html" in page.lower()
          and page.rstrip().lower().endswith("</html>"), html)


def case_bad_input():
    cases = [(2, ["--sizes", "3"], "--sizes: 3"), (2, ["--sizes", "0"], "--sizes: 0"),
             (2, ["--sizes", "1,x"], "--sizes '1,x'"), (2, ["--model", "nosuch"], "unknown model"),
             (2, ["--batch", "0"], "--batch"), (2, ["--bogus"], "bogus"),
             (2, ["--data", "/nonexistent/dir"], "nonexistent"),
             (2, ["--device", "tpu"], "unknown --device 'tpu'"),
             (2, ["--device", "cpu", "--precision", "bf16"], "bf16"),
             (2, ["--comm", "carrier-pigeon"], "carrier-pigeon")]
    for n, args, words in cases:
        try:
            p = scale(n, TINY + args, timeout=60)
        except subprocess.TimeoutExpired:
            check(f"{' '.join(args)}: no hang", False, "timed out after 60 s")
            continue
        lines = [ln for ln in p.stderr.splitlines() if ln.startswith("dltrain")]
        check(f"{' '.join(args)}: exit non-zero, one clear line",
              p.returncode != 0 and len(lines) == 1 and words in lines[0],
              f"exit {p.returncode}, stderr: {p.stderr[-500:]}")
        check(f"{' '.join(args)}: no table", "circulating claims" not in p.stdout)


os.makedirs(WORK, exist_ok=True)
if CASE == "bad_input":
    case_bad_input()
else:
    case_ranks(int(CASE[2:]))
print(f"{len(FAILURES)} failed" if FAILURES else "all passed")
sys.exit(1 if FAILURES else 0)
