"""Training across machines, on a virtual cluster of network namespaces
(scripts/vcluster.sh): 2 hosts x 2 ranks over TCP.

usage: test_vcluster.py MPIEXEC DLTRAIN VCLUSTER CASE
CASE: ranks | equivalence | fashion | faults

The script starts the cluster (vcluster.sh run) and runs itself again inside
host 0 with --inside; the cluster is removed when that returns, also on
failure.  Exits 77 (skipped) where network namespaces cannot be made."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import check, exit_code, final, rank_pids, rel_diff, running, steps  # noqa: E402

SKIP = 77


class Inside:
    """Runs in host 0 of the cluster, with VCLUSTER_* in the environment."""

    def __init__(self, mpiexec, dltrain, tmp):
        self.mpiexec, self.dltrain, self.tmp = mpiexec, dltrain, tmp
        self.hostfile = os.environ["VCLUSTER_HOSTFILE"]
        self.name = os.environ["VCLUSTER_NAME"]

    def cmd(self, n, args, cluster=True, sub="train"):
        where = ["--hostfile", self.hostfile] if cluster else []
        return [self.mpiexec, "-np", str(n)] + where + [self.dltrain, sub] + args

    def run(self, n, args, cluster=True, sub="train", timeout=600):
        return subprocess.run(self.cmd(n, args, cluster, sub), cwd=self.tmp, capture_output=True,
                              text=True, timeout=timeout)


def case_ranks(t):
    """Node, local rank and local size are right on every host; bench allreduce
    is correct flat and hierarchical across the hosts."""
    out = os.path.join(t.tmp, "ranks")
    p = t.run(4, ["--data", "synthetic:1x28x28:10", "--train-samples", "256", "--batch", "8",
                  "--max-steps", "2", "--threads", "1", "--no-progress", "--out", out,
                  "--log-all"])
    if not check("2 hosts x 2 ranks train", p.returncode == 0, p.stderr.strip()[-400:]):
        return
    want = f"2 nodes: {t.name}-h0 ranks 0,1 (local 0,1); {t.name}-h1 ranks 2,3 (local 0,1)"
    for r in range(4):  # every rank prints the layout as its own MPI saw it
        text = p.stdout if r == 0 else open(os.path.join(out, f"rank-{r}.log")).read()
        check(f"rank {r} sees hosts, ranks and local ranks", want in text,
              next((l.strip() for l in text.splitlines() if "nodes:" in l), "no layout line"))
    check("auto chooses hier across hosts", "all-reduce hier (auto" in p.stdout)
    for algo in ("flat", "hier"):
        js = os.path.join(t.tmp, f"ar-{algo}.json")
        b = t.run(4, ["allreduce", "--max-bytes", "4194304", "--factor", "8", "--iters", "3", "--warmup", "1",
                      "--allreduce", algo, "--json", js], sub="bench")
        b_args = b.args
        ok = b.returncode == 0 and os.path.exists(js)
        res = json.load(open(js)) if ok else {}
        check(f"bench allreduce --allreduce {algo} across hosts is correct",
              ok and res.get("allreduce") == algo and res.get("nodes") == 2 and
              all(x["errors"] == 0 for x in res["results"]),
              b.stderr.strip()[-300:] or " ".join(b_args[-6:]))
    for algo in ("flat", "hier"):  # scale's groups take --allreduce too
        js = os.path.join(t.tmp, f"scale-{algo}.json")
        sc = t.run(4, ["--sizes", "1,4", "--steps", "2", "--repeats", "1", "--warmup", "1",
                       "--threads", "1", "--sweep-max-mb", "0", "--allreduce", algo,
                       "--json", js], sub="scale")
        ok = sc.returncode == 0 and os.path.exists(js)
        pts = json.load(open(js))["points"] if ok else []
        check(f"scale --allreduce {algo} across hosts", ok and [p["ranks"] for p in pts] == [1, 4],
              sc.stderr.strip()[-300:])
    one = t.run(2, ["--data", "synthetic:1x28x28:10", "--train-samples", "64", "--batch", "8",
                    "--max-steps", "1", "--threads", "1", "--no-progress", "--out", out + "1"],
                cluster=False)
    check("one host: auto stays flat", one.returncode == 0 and
          "all-reduce flat (auto: 1 node" in one.stdout, one.stdout[-300:] + one.stderr[-300:])


COMMON = ["--model", "lenet", "--train-samples", "4096", "--epochs", "2", "--log-every", "1",
          "--no-progress", "--threads", "1", "--batch", "8"]


def case_equivalence(t):
    """2 hosts x 2 ranks, flat and hierarchical, follow 4 ranks on one host;
    a checkpoint written across hosts resumes exactly."""
    runs = {"4 on one host": (False, ["--allreduce", "flat"]),
            "2x2 flat": (True, ["--allreduce", "flat"]),
            "2x2 hier": (True, ["--allreduce", "hier"]),
            "2x2 hier tiny buckets": (True, ["--allreduce", "hier", "--bucket-mb", "0.01"])}
    losses = {}
    for name, (cluster, extra) in runs.items():
        out = os.path.join(t.tmp, name.replace(" ", "_"))
        p = t.run(4, COMMON + extra + ["--max-steps", "20", "--out", out, "--json", out + ".json"],
                  cluster)
        if not check(f"run {name}", p.returncode == 0, p.stderr.strip()[-400:]):
            return
        losses[name] = steps(out + ".json")
    ref = losses["4 on one host"]
    check("20 steps logged", len(ref) == 20, f"{len(ref)} steps")
    for name in runs:
        if name != "4 on one host":
            d = rel_diff(losses[name], ref)
            check(f"{name} follows 4 ranks on one host", d <= 1e-5,
                  f"worst relative difference {d:.2e}")
    # resume: 10 steps, stop, 10 more from the checkpoint = 20 in one go
    out = os.path.join(t.tmp, "resume")
    a = t.run(4, COMMON + ["--allreduce", "hier", "--max-steps", "10", "--out", out])
    ckpt = os.path.join(out, "checkpoint.bin")
    if not check("first half across hosts", a.returncode == 0 and os.path.exists(ckpt),
                 a.stderr.strip()[-300:]):
        return
    b = t.run(4, COMMON + ["--allreduce", "hier", "--max-steps", "20", "--out", out,
                           "--resume", ckpt, "--json", out + ".json"])
    if check("resume across hosts", b.returncode == 0, b.stderr.strip()[-300:]):
        second = steps(out + ".json")
        whole = {s: l for s, l in losses["2x2 hier"].items() if s in second}
        check("resumed steps equal the uninterrupted run", second and second == whole,
              f"steps {sorted(second)[:3]}.., worst {rel_diff(second, whole):.2e}")


def case_fashion(t):
    """Fashion-MNIST learns across hosts (hierarchical all-reduce)."""
    out = os.path.join(t.tmp, "fmnist")
    p = t.run(4, ["--model", "lenet", "--epochs", "1", "--train-samples", "8192", "--batch", "16",
                  "--threads", "1", "--no-progress", "--out", out, "--json", out + ".json"],
              timeout=1200)
    if check("Fashion-MNIST on 2 hosts x 2 ranks", p.returncode == 0, p.stderr.strip()[-300:]):
        acc = final(out + ".json")["test_acc"]
        check("it learns", acc > 0.7, f"test acc {acc:.4f} (needs 0.7)")


def fault(t, name, inject, timeout_s=10):
    """Starts 2x2 training, injects the fault once a checkpoint exists, and
    checks that every rank is gone within the timeout, naming the lost side."""
    out = os.path.join(t.tmp, name.replace(" ", "_"))
    args = COMMON + ["--max-steps", "100000", "--epochs", "50", "--checkpoint-every", "3",
                     "--timeout", str(timeout_s), "--out", out]
    # output to a file: a daemon left behind a cut link would hold a pipe open
    log = open(out + ".log", "w")
    p = subprocess.Popen(t.cmd(4, args), cwd=t.tmp, stdout=log, stderr=subprocess.STDOUT)
    ckpt = os.path.join(out, "checkpoint.bin")
    deadline = time.time() + 120
    while time.time() < deadline and not os.path.exists(ckpt):
        time.sleep(0.1)
    time.sleep(0.5)
    pids = rank_pids(t.dltrain)
    if sorted(pids) != [0, 1, 2, 3]:
        p.kill()
        check(f"{name}: find the 4 ranks", False, f"found {pids}")
        return
    inject(pids)
    hit = time.time()
    gone_at = {}
    while time.time() - hit < timeout_s + 30 and len(gone_at) < 4:
        for r, q in pids.items():
            if r not in gone_at and not running(q):
                gone_at[r] = time.time() - hit
        time.sleep(0.05)
    left = [r for r in pids if r not in gone_at]
    for r in left:
        os.kill(pids[r], signal.SIGKILL)
    # An Open MPI daemon on host 1 may outlive the ranks (cut off from mpirun),
    # and mpirun wait for it: end what is left there by pid.
    for pid in subprocess.run(["ip", "netns", "pids", f"{t.name}-h1"], capture_output=True,
                              text=True).stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except OSError:
            pass
    try:
        p.wait(timeout=30)
        print(f"  ({name}: mpirun ended {time.time() - hit:.1f} s after the fault)")
    except subprocess.TimeoutExpired:
        print(f"  ({name}: mpirun still waiting 30 s after the ranks: killed)")
        p.kill()
        p.wait()
    log.close()
    text = open(out + ".log").read()
    last = max(gone_at.values(), default=float("inf"))
    check(f"{name}: every rank on every host gone within {timeout_s} s + 10",
          not left and last < timeout_s + 10,
          f"last after {last:.1f} s; ranks left: {left}")
    # dltrain's roll call names the rank and host name; mpirun, when its daemon
    # saw the rank die first, names the rank and the host's hostfile address
    lines = [l for l in text.splitlines() if "did not answer" in l or "noticed that" in l]
    check(f"{name}: the message names rank 2 and its host",
          any(f"2 on {t.name}-h1" in l or ("rank 2 " in l and "198.18.0.2" in l)
              for l in lines), (lines or [text.strip()[-300:]])[0])
    return ckpt


def case_faults(t):
    """kill -9 of a rank on the other host; then the link to it cut."""
    ckpt = fault(t, "killed rank", lambda pids: os.kill(pids[2], signal.SIGKILL))
    h1 = f"{t.name}-h1"
    ckpt2 = fault(t, "cut link", lambda pids: subprocess.run(
        ["ip", "-n", h1, "link", "set", "eth0", "down"], check=True))
    subprocess.run(["ip", "-n", h1, "link", "set", "eth0", "up"], check=True)
    for label, path in (("killed rank", ckpt), ("cut link", ckpt2)):
        if not path or not os.path.exists(path):
            check(f"{label}: checkpoint kept", False)
            continue
        out = os.path.dirname(path)
        r = t.run(4, COMMON + ["--max-steps", "40", "--out", out, "--resume", path])
        check(f"{label}: the checkpoint resumes across hosts", r.returncode == 0 and
              "resuming from" in r.stdout, r.stderr.strip()[-300:])


def inside(mpiexec, dltrain, case):
    tmp = tempfile.mkdtemp(prefix="dltrain-vcluster-")
    try:
        globals()["case_" + case](Inside(mpiexec, dltrain, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return exit_code(case)


def can_make_namespaces():
    if os.geteuid() != 0:
        return "not root: network namespaces need CAP_NET_ADMIN and CAP_SYS_ADMIN"
    probe = f"dlprobe{os.getpid()}"
    p = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if p.returncode != 0:
        return f"cannot create a network namespace: {p.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe])
    return None


def main():
    if sys.argv[1] == "--inside":
        return inside(*sys.argv[2:5])
    mpiexec, dltrain, vcluster, case = sys.argv[1:5]
    why = can_make_namespaces()
    if why:
        print(f"SKIP: {why}")
        return SKIP
    name = f"vc{case[:3]}{os.getpid() % 100000}"  # unique: ctest may run cases side by side
    p = subprocess.run(["bash", vcluster, "run", "--hosts", "2", "--slots", "2", "--name", name,
                        "--", sys.executable, os.path.abspath(__file__), "--inside", mpiexec,
                        os.path.abspath(dltrain), case])
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    if name in left:
        print(f"FAIL namespaces left behind: {left}")
        return 1
    if case == "ranks":  # a failing command: its status comes back, nothing stays
        f = subprocess.run(["bash", vcluster, "run", "--hosts", "3", "--rate", "1gbit", "--name",
                            name, "--", "sh", "-c", "sleep 100 & exit 3"])
        left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        ok = f.returncode == 3 and name not in left
        print(f"{'ok  ' if ok else 'FAIL'} a failing command: exit {f.returncode} (3), "
              f"namespaces left: {name in left}")
        if not ok:
            return 1
    return p.returncode


if __name__ == "__main__":
    sys.exit(main())
