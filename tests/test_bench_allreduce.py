"""`dltrain bench allreduce` with N ranks (oversubscribed on a small machine),
or alone with the local backend (MPIEXEC '-').

usage: test_bench_allreduce.py MPIEXEC DLTRAIN NP WORKDIR"""
import json
import os
import subprocess
import sys

MPIEXEC = sys.argv[1]
DLTRAIN = os.path.abspath(sys.argv[2])
NP = int(sys.argv[3])
WORK = sys.argv[4]
FAILURES = []
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1")


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}")
    if not ok:
        FAILURES.append(name)


def bench(args):
    cmd = [DLTRAIN, "bench", "allreduce"] + args
    if MPIEXEC != "-":
        cmd = [MPIEXEC, "--oversubscribe", "-np", str(NP)] + cmd
    return subprocess.run(cmd, capture_output=True, text=True, timeout=500, env=ENV)


os.makedirs(WORK, exist_ok=True)
tag = f"np{NP}" if MPIEXEC != "-" else "local"
path = os.path.join(WORK, f"allreduce_{tag}.json")
# 4 bytes to 4 MiB (and one size that is not a power of two), few iterations:
# the machine running the tests may have 2 cores for 4 ranks.
html = os.path.join(WORK, f"allreduce_{tag}.html")
if os.path.exists(html):
    os.remove(html)
p = bench(["--min-bytes", "4", "--max-bytes", str(4 << 20), "--factor", "4", "--iters", "5",
           "--warmup", "1", "--json", path, "--report", html])
check("bench allreduce exits 0", p.returncode == 0, f"exit {p.returncode}: {p.stderr[-600:]}")
if p.returncode == 0:
    with open(path) as f:
        j = json.load(f)
    backend = "local" if MPIEXEC == "-" else "mpi"
    check(f"backend {backend}, world {NP}", j["backend"] == backend and j["world"] == NP,
          f"{j['backend']} {j['world']}")
    sizes = [r["bytes"] for r in j["results"]]
    check("sizes 4 B .. 4 MiB by 4x", sizes == [4 * 4 ** k for k in range(11)], str(sizes))
    check("no wrong elements", j["errors"] == 0 and all(r["errors"] == 0 for r in j["results"]))
    factor = 2 * (NP - 1) / NP
    check("bus factor 2(n-1)/n", abs(j["bus_factor"] - factor) < 1e-12)
    for r in j["results"]:
        ok = r["time_us"] > 0 and r["count"] * 4 == r["bytes"]
        ok = ok and abs(r["algbw_gbps"] - r["bytes"] / r["time_us"] / 1e3) <= \
            1e-4 * r["algbw_gbps"] + 1e-9
        ok = ok and abs(r["busbw_gbps"] - r["algbw_gbps"] * factor) <= \
            1e-6 * r["algbw_gbps"] + 1e-12
        check(f"{r['bytes']} bytes: algbw = bytes/time, busbw = algbw x {factor:.3g}", ok,
              json.dumps(r))
    check("JSON records the environment and GPU links", isinstance(j.get("env"), dict)
          and isinstance(j.get("gpus"), list))
    page = open(html).read() if os.path.exists(html) else ""
    # the page's layout belongs to report_html.c; here: a whole HTML document
    check("--report wrote an HTML page", "<html" in page.lower()
          and page.rstrip().lower().endswith("</html>"), html)
    check("table printed once", p.stdout.count("bench allreduce:") == 1
          and "0 elements wrong" in p.stdout, p.stdout[-300:])
    if NP >= 2:
        q = subprocess.run([DLTRAIN, "predict", "--grad-mb", "100", "--step-ms", "100",
                            "--gpus", f"1,{NP}", "--allreduce-json", path, "--json", "-"],
                           capture_output=True, text=True, timeout=60)
        ok = q.returncode == 0 and json.loads(q.stdout)["link"]["name"] == "measured"
        check("predict --allreduce-json takes this result", ok, q.stderr)

# a size that is not a power of two, on its own
p = bench(["--min-bytes", "12", "--max-bytes", "12", "--iters", "3", "--warmup", "0",
           "--json", "-"])
if p.returncode == 0:
    j = json.loads(p.stdout.splitlines()[-1])
    check("12 bytes (3 floats) correct", [r["bytes"] for r in j["results"]] == [12]
          and j["errors"] == 0, p.stdout)
else:
    check("12 bytes", False, p.stderr[-400:])
# bad options stop every rank with exit 2
p = bench(["--min-bytes", "6"])
check("--min-bytes 6 (not whole floats) rejected", p.returncode != 0 and "multiples of 4" in p.stderr,
      p.stderr[-300:])
p = bench(["--backend", "nccl"])
check("--backend nccl without --device cuda rejected",
      p.returncode != 0 and "--backend nccl needs --device cuda" in p.stderr, p.stderr[-300:])
p = bench(["--backend", "gloo"])
check("--backend gloo rejected", p.returncode != 0 and "unknown backend" in p.stderr,
      p.stderr[-300:])
p = bench(["--device", "tpu"])
check("--device tpu rejected", p.returncode != 0 and "unknown --device" in p.stderr,
      p.stderr[-300:])
p = subprocess.run([DLTRAIN, "bench", "allreduce", "--help"], capture_output=True, text=True)
check("--help names --device cuda", p.returncode == 0 and "--device" in p.stdout)

print(f"{len(FAILURES)} failed" if FAILURES else "all passed")
sys.exit(1 if FAILURES else 0)
