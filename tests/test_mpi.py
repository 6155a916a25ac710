"""Data parallelism across MPI ranks (oversubscribed on a small machine).

usage: test_mpi.py MPIEXEC DLTRAIN CASE
CASE: equivalence | ranks | faults | bad_input | fashion | slow_checkpoint"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import idx_fixture  # noqa: E402
from checks import FAILURES, check, exit_code, final, rank_pids, rel_diff, running, steps  # noqa: E402,F401

MPIEXEC = sys.argv[1]
DLTRAIN = os.path.abspath(sys.argv[2])
CASE = sys.argv[3]
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1")


def mpirun(n, args, cwd, timeout=600, extra=None):
    cmd = [MPIEXEC, "--oversubscribe", "-np", str(n)] + (extra or []) + [DLTRAIN, "train"] + args
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=ENV)


def case_equivalence(tmp, data):
    """N=2 ranks with batch b follow N=1 with batch 2b; bucket size does not matter.
    On Fashion-MNIST, not the tiny fixture: there the loss falls to ~0.03 within
    20 steps, and a relative comparison of such small losses measures rounding
    (about 5e-7 absolute) rather than the algorithm."""
    common = ["--model", "lenet", "--train-samples", "4096", "--epochs", "2", "--max-steps", "20",
              "--log-every", "1", "--no-progress", "--threads", "1"]
    runs = {"1x32": (1, ["--batch", "32"]), "2x16": (2, ["--batch", "16"]),
            "2x16 tiny buckets": (2, ["--batch", "16", "--bucket-mb", "0.01"]),
            "2x16 no overlap": (2, ["--batch", "16", "--no-overlap"]),
            "4x8": (4, ["--batch", "8"])}
    losses = {}
    for name, (n, extra) in runs.items():
        out = os.path.join(tmp, name.replace(" ", "_"))
        p = mpirun(n, common + extra + ["--out", out, "--json", out + ".json"], tmp)
        if p.returncode != 0:
            check(f"equivalence run {name}", False, p.stderr.strip()[-400:])
            return
        losses[name] = steps(out + ".json")
    ref = losses["1x32"]
    check("20 steps logged", len(ref) == 20, f"{len(ref)} steps")
    for name in runs:
        if name != "1x32":
            d = rel_diff(losses[name], ref)
            check(f"{name} follows 1x32", d <= 1e-5, f"worst relative difference {d:.2e}")
    d = rel_diff(losses["2x16 tiny buckets"], losses["2x16"])
    check("bucket size does not change the result", d <= 1e-6, f"{d:.2e}")


def case_ranks(tmp, data):
    """-np 2 and -np 4 finish, agree on the replicas and learn the fixture."""
    for n in (2, 4):
        out = os.path.join(tmp, f"np{n}")
        p = mpirun(n, ["--model", "resnet20", "--data", data, "--epochs", "2", "--batch", "8",
                       "--no-progress", "--check-every", "5", "--out", out,
                       "--json", out + ".json", "--log-all"], tmp)
        ok = p.returncode == 0 and final(out + ".json")["test_acc"] > 0.9
        check(f"-np {n} resnet20 trains", ok, p.stderr.strip()[-300:] if p.returncode else
              f"test acc {final(out + '.json')['test_acc']:.3f}")
        if n == 2:  # the checkpoint holds a position in samples: resume on 1 rank, then 4
            r1 = mpirun(1, ["--model", "resnet20", "--data", data, "--epochs", "3", "--batch", "8",
                            "--no-progress", "--out", out, "--resume",
                            os.path.join(out, "checkpoint.bin")], tmp)
            check("resume a 2-rank checkpoint on 1 rank", r1.returncode == 0 and
                  "resuming from" in r1.stdout, r1.stderr.strip()[-300:])
        if n == 4:
            check("--log-all writes rank logs",
                  all(os.path.exists(os.path.join(out, f"rank-{r}.log")) for r in (1, 2, 3)))


def still_running(pids, grace_s):
    """The processes left after mpirun returned.  mpirun can return while the
    kernel is still tearing down a rank it killed (a stopped one in particular),
    so allow a few seconds before calling a process left behind."""
    deadline = time.time() + grace_s
    left = [q for q in pids if running(q)]
    while left and time.time() < deadline:
        time.sleep(0.1)
        left = [q for q in left if running(q)]
    return left


def fault(tmp, data, name, sig, timeout_s):
    out = os.path.join(tmp, name)
    args = ["--model", "resnet20", "--data", data, "--epochs", "40", "--batch", "8",
            "--no-progress", "--out", out, "--checkpoint-every", "5",
            "--timeout", str(timeout_s)]
    p = subprocess.Popen([MPIEXEC, "--oversubscribe", "-np", "2", DLTRAIN, "train"] + args,
                         cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env=ENV)
    ckpt = os.path.join(out, "checkpoint.bin")
    deadline = time.time() + 120
    while time.time() < deadline and not os.path.exists(ckpt):
        time.sleep(0.1)
    time.sleep(0.5)
    pids = rank_pids(DLTRAIN)
    if 1 not in pids:
        p.kill()
        check(f"{name}: find rank 1", False, f"ranks found {pids}")
        return
    os.kill(pids[1], sig)
    hit = time.time()
    try:
        text, _ = p.communicate(timeout=timeout_s + 30)
    except subprocess.TimeoutExpired:
        p.kill()
        text, _ = p.communicate()
        check(f"{name}: job ends", False, "still running after the timeout + 30 s")
    took = time.time() - hit
    alive = still_running(pids.values(), grace_s=5)
    for q in alive:
        os.kill(q, signal.SIGKILL)
    check(f"{name}: every rank gone within {timeout_s} s + margin",
          p.returncode != 0 and not alive and took < timeout_s + 15,
          f"exit {p.returncode} after {took:.1f} s, {len(alive)} left")
    check(f"{name}: the message names rank 1", "rank 1" in text, text.strip()[-300:])
    r = mpirun(2, args + ["--resume", ckpt, "--epochs", "3"], tmp)
    check(f"{name}: resume from the checkpoint finishes", r.returncode == 0,
          r.stderr.strip()[-300:])


def case_faults(tmp, data):
    fault(tmp, data, "killed rank", signal.SIGKILL, 10)
    fault(tmp, data, "suspended rank", signal.SIGSTOP, 10)


def case_slow_checkpoint(tmp, data):
    """Rank 0 alone writes each checkpoint; one that takes 3x --timeout (a
    shim delays its rename) must not time the waiting rank out, while the
    roll call every --timeout still sees every rank answer."""
    shim, delay, timeout_s = os.environ.get("DLTRAIN_TEST_SLOW_RENAME", ""), 9, 3
    if not os.path.exists(shim):
        check("slow checkpoint: the rename shim is built", False, shim or "not set")
        return
    out = os.path.join(tmp, "slow")
    start = time.time()
    p = mpirun(2, ["--model", "lenet", "--data", data, "--epochs", "2", "--batch", "16",
                   "--no-progress", "--out", out, "--timeout", str(timeout_s)], tmp, timeout=300,
               extra=["-x", f"LD_PRELOAD={shim}", "-x", f"DLTRAIN_TEST_RENAME_DELAY={delay}",
                      "-x", "ASAN_OPTIONS=verify_asan_link_order=0"])
    took = time.time() - start
    check("slow checkpoint: the job finishes", p.returncode == 0,
          f"exit {p.returncode}: {(p.stdout + p.stderr).strip()[-400:]}")
    check(f"slow checkpoint: the writes really took > --timeout ({took:.0f} s for 2 of {delay} s)",
          took > 2 * delay)


def expect_fail(name, p, *words):
    text = p.stdout + p.stderr
    ok = p.returncode not in (0, None) and all(w in text for w in words)
    check(name, ok, f"exit {p.returncode}: " + " | ".join(
        l for l in text.splitlines() if l.startswith("dltrain"))[:400])


def case_bad_input(tmp, data):
    base = ["--data", data, "--epochs", "1", "--no-progress", "--timeout", "20"]
    start = time.time()
    mpmd = [MPIEXEC, "--oversubscribe", "-np", "1", DLTRAIN, "train"] + base + ["--lr", "0.05",
            ":", "-np", "1", DLTRAIN, "train"] + base + ["--lr", "0.1"]
    expect_fail("mismatched flags across ranks",
                subprocess.run(mpmd, cwd=tmp, capture_output=True, text=True, timeout=120,
                               env=ENV), "--lr", "rank 0")
    expect_fail("more ranks than samples",
                mpirun(4, base + ["--train-samples", "8", "--batch", "4"], tmp, timeout=120),
                "global batch")
    expect_fail("bucket size 0", mpirun(2, base + ["--bucket-mb", "0"], tmp, timeout=120),
                "--bucket-mb")
    empty = os.path.join(tmp, "elsewhere")
    os.makedirs(empty, exist_ok=True)
    rel = ["--data", "data", "--epochs", "1", "--no-progress", "--timeout", "20"]
    mpmd = [MPIEXEC, "--oversubscribe", "-np", "1", "-wdir", tmp, DLTRAIN, "train"] + rel + \
        [":", "-np", "1", "-wdir", empty, DLTRAIN, "train"] + rel
    expect_fail("data missing on one rank only",
                subprocess.run(mpmd, cwd=tmp, capture_output=True, text=True, timeout=120,
                               env=ENV), "rank 1", "not found")
    bench = subprocess.run([MPIEXEC, "--oversubscribe", "-np", "2", DLTRAIN, "bench", "train",
                            "--steps", "2", "--repeats", "1"], cwd=tmp, capture_output=True,
                           text=True, timeout=120, env=ENV)
    expect_fail("bench train under mpirun refuses (no N unlabeled results)", bench,
                "dltrain scale")
    check("bench train under mpirun prints no result",
          "images/s" not in bench.stdout, bench.stdout.strip()[-200:])
    check("no bad-input case waited for a timeout", time.time() - start < 60,
          f"{time.time() - start:.0f} s")


def case_fashion(tmp, _):
    """Learning on the real data set across ranks."""
    out = os.path.join(tmp, "fmnist")
    p = mpirun(2, ["--model", "lenet", "--epochs", "1", "--train-samples", "20000",
                   "--no-progress", "--out", out, "--json", out + ".json"], tmp, timeout=1200)
    if p.returncode != 0:
        check("Fashion-MNIST on 2 ranks", False, p.stderr.strip()[-300:])
        return
    acc = final(out + ".json")["test_acc"]
    check("Fashion-MNIST on 2 ranks learns", acc > 0.75, f"test acc {acc:.4f} (needs 0.75)")


def main():
    tmp = tempfile.mkdtemp(prefix="dltrain-mpi-")
    try:
        data = idx_fixture.make_dataset(os.path.join(tmp, "data"), n_train=512, n_test=128)
        globals()["case_" + CASE](tmp, data)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return exit_code(CASE)


if __name__ == "__main__":
    sys.exit(main())
