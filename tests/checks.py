"""What the Python test drivers share: one line per check, dltrain's JSON
metrics, and its MPI ranks as /proc sees them.

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from checks import check, ...
"""
import json
import os
import subprocess
import sys

FAILURES = []


def check(name, ok, detail=""):
    """Prints 'ok  NAME' or 'FAIL NAME: detail' and remembers failures."""
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)
    if not ok:
        FAILURES.append(name)
    return ok


def exit_code(label):
    """The summary line; 0 when every check passed, 1 otherwise."""
    print(f"{len(FAILURES)} failed" if FAILURES else f"{label}: all passed")
    return 1 if FAILURES else 0


def close(a, b, rel=1e-6):
    return abs(a - b) <= rel * abs(b) + 1e-9


def steps(path):
    """{step: loss} from a --json metrics file."""
    with open(path) as f:
        return {r["step"]: r["loss"] for r in map(json.loads, f) if r["type"] == "step"}


def final(path):
    """The last "final" record of a --json metrics file."""
    with open(path) as f:
        return [r for r in map(json.loads, f) if r["type"] == "final"][-1]


def run_for_losses(cmd, js, timeout=600):
    """Runs a dltrain command that writes --json js: (the step losses in step
    order, its stdout), or (None, why it failed: exit status and stderr's
    end, or a timeout)."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout} s (hang?)"
    if p.returncode != 0:
        return None, f"exit {p.returncode}: {p.stderr.strip()[-600:]}"
    losses = steps(js)
    return [losses[s] for s in sorted(losses)], p.stdout


def rel_diff(a, b):
    """The largest relative difference of two {step: loss}; inf unless they
    hold the same steps."""
    if set(a) != set(b) or not a:
        return float("inf")
    return max(abs(a[s] - b[s]) / max(abs(b[s]), 1e-12) for s in a)


def rank_pids(dltrain):
    """dltrain processes by world rank, from their environment (namespaced
    hosts share this machine's /proc)."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if dltrain.encode() not in f.read():
                    continue
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
        except OSError:  # gone between the listing and the read
            continue
        if b"OMPI_COMM_WORLD_RANK" in env:
            found[int(env[b"OMPI_COMM_WORLD_RANK"])] = int(pid)
    return found


def running(pid):
    """Alive and not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def require_gpu(dltrain):
    """Exits 77 (CTest's skip) with the reason where there is no CUDA GPU or
    dltrain is built without CUDA, unless DLTRAIN_REQUIRE_GPU is set (then
    1); exits 1 where a GPU is there but unusable (a driver too old)."""
    p = subprocess.run([dltrain, "bench", "train", "--device", "cuda", "--steps", "1",
                        "--warmup", "0", "--repeats", "1", "--batch", "4"],
                       capture_output=True, text=True, timeout=300)
    if p.returncode == 0:
        return
    why = p.stderr.strip() or p.stdout.strip()
    req = os.environ.get("DLTRAIN_REQUIRE_GPU", "")
    if "no CUDA GPU" in why or "built without CUDA" in why:
        if req and req != "0":
            print("FAIL: DLTRAIN_REQUIRE_GPU is set but:", why)
            sys.exit(1)
        print("SKIPPED:", why.splitlines()[-1])
        sys.exit(77)
    print("FAIL: the GPU is there but unusable:", why)
    sys.exit(1)
