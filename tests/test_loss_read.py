"""The loss read one step late reports exactly what a read right after each
forward reports: train with the default late read and with --sync-loss (the
host reads each step's loss before its backward, the old way) and compare.

Checked per case: the JSON step lines (loss and lr, %.9g: bit for bit) are
identical and are steps 1..N in order, one per step, each before its
epoch's line; the epoch and final lines agree (timings aside); the
checkpoints are byte-identical.  A NaN loss stops both runs with exit 3
naming the same step, and leaves the last good checkpoint as it was.  With
MPIEXEC given, the same on 2 ranks (every rank votes on the late loss).

usage: test_loss_read.py DLTRAIN [MPIEXEC]"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import idx_fixture  # noqa: E402

DLTRAIN = os.path.abspath(sys.argv[1])
MPIEXEC = sys.argv[2] if len(sys.argv) > 2 else None
FAILURES = []
TIMING = ("time_s", "images_per_s", "step_ms")
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")


def run(args, cwd, ranks=1):
    cmd = [DLTRAIN, "train"] + args
    if ranks > 1:
        cmd = [MPIEXEC, "--oversubscribe", "-np", str(ranks)] + cmd
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900, env=ENV)


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail and not ok else ''}")
    if not ok:
        FAILURES.append(name)


def records(path):
    out = []
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            for k in TIMING:
                rec.pop(k, None)
            out.append(rec)
    return out


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def in_order(recs, first_step, steps_per_epoch):
    """Step lines 1..N (from first_step) one per step, each epoch's before its line."""
    want = first_step
    for r in recs:
        if r["type"] == "step":
            if r["step"] != want or r["epoch"] != (want - 1) // steps_per_epoch + 1:
                return f"step line {r['step']} (epoch {r['epoch']}) where step {want} was due"
            want += 1
        elif r["type"] == "epoch" and r["epoch"] * steps_per_epoch != want - 1:
            return f"epoch {r['epoch']} line after step {want - 1}"
    return ""


def pair(tmp, name, args, ranks=1, steps_per_epoch=None, expect_rc=0):
    """Runs args the late way and with --sync-loss; returns both results."""
    out = {}
    for mode in ("late", "sync"):
        d = os.path.join(tmp, name.replace(" ", "_"), mode)
        os.makedirs(d, exist_ok=True)
        extra = ["--sync-loss"] if mode == "sync" else []
        p = run(args + extra + ["--out", d, "--json", os.path.join(d, "m.json")], tmp, ranks)
        if p.returncode != expect_rc:
            check(f"{name} ({mode})", False, f"exit {p.returncode}, expected {expect_rc}: "
                  f"{p.stderr.strip()[-400:]}")
            return None
        out[mode] = (d, p, records(os.path.join(d, "m.json")))
    late, sync = out["late"][2], out["sync"][2]
    steps = sum(1 for r in late if r["type"] == "step")
    diff = next((i for i, (a, b) in enumerate(zip(late, sync)) if a != b), None)
    check(f"{name}: {steps} step lines and the epoch/final lines as with --sync-loss",
          steps > 0 and len(late) == len(sync) and diff is None,
          f"{len(late)} against {len(sync)} lines" if diff is None
          else f"line {diff + 1}: late {late[diff]} sync {sync[diff]}")
    if steps_per_epoch:
        why = in_order(late, 1, steps_per_epoch)
        check(f"{name}: step lines in order, one per step", not why, why)
    return out


def same_checkpoint(name, out):
    a, b = (os.path.join(out[m][0], "checkpoint.bin") for m in ("late", "sync"))
    check(f"{name}: checkpoints byte-identical", sha(a) == sha(b))


def common_args(data, ranks):
    """10 steps per epoch of 320 samples on 1 or 2 ranks."""
    return ["--data", data, "--batch", str(32 // ranks), "--log-every", "1", "--no-progress",
            "--threads", "1", "--eval-batch", "40"]


def main():
    tmp = tempfile.mkdtemp(prefix="dltrain-lossread-")
    try:
        data = idx_fixture.make_dataset(os.path.join(tmp, "data"), n_train=320, n_test=96)
        ranks = 2 if MPIEXEC else 1
        common = common_args(data, ranks)
        # checkpoints mid-epoch flush the late loss before they are written
        name = f"lenet on {ranks} rank(s)"
        out = pair(tmp, name, ["--model", "lenet", "--epochs", "2", "--checkpoint-every", "3"]
                   + common, ranks=ranks, steps_per_epoch=10)
        if out:
            same_checkpoint(name, out)
        if not MPIEXEC:
            # batch norm, augmentation; a stop by --max-steps mid-epoch flushes the last step
            name = "resnet20 max-steps"
            out = pair(tmp, name, ["--model", "resnet20", "--epochs", "2", "--augment",
                                   "--max-steps", "13"] + common, steps_per_epoch=10)
            if out:
                same_checkpoint(name, out)
                last = [r for r in out["late"][2] if r["type"] == "step"][-1]["step"]
                check(f"{name}: the last step (13) is logged", last == 13, str(last))
        nan_case(tmp, common, ranks)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(FAILURES)} failed" if FAILURES else "the late loss reads report what --sync-loss does")
    return 1 if FAILURES else 0


def nan_case(tmp, common, ranks):
    """A loss that turns NaN: both stop with exit 3 naming the same step; the
    checkpoint from before is left as it was."""
    name = f"NaN on {ranks} rank(s)"
    good = os.path.join(tmp, "good")
    p = run(["--model", "lenet", "--epochs", "1", "--out", good] + common, tmp, ranks)
    check(f"{name}: a good run first", p.returncode == 0, p.stderr.strip()[-300:])
    before = sha(os.path.join(good, "checkpoint.bin"))
    said = {}
    for mode in ("late", "sync"):
        d = os.path.join(tmp, "nan", mode)
        os.makedirs(d, exist_ok=True)
        ckpt = os.path.join(d, "checkpoint.bin")
        shutil.copy(os.path.join(good, "checkpoint.bin"), ckpt)
        extra = ["--sync-loss"] if mode == "sync" else []
        p = run(["--model", "lenet", "--epochs", "3", "--lr", "1e6", "--resume", ckpt] + common
                + extra + ["--out", d, "--json", os.path.join(d, "m.json")], tmp, ranks)
        m = re.search(r"loss became (NaN|infinite) at epoch (\d+) step (\d+)", p.stderr)
        check(f"{name} ({mode}): exit 3 naming the step", p.returncode == 3 and m,
              f"exit {p.returncode}: {p.stderr.strip()[-300:]}")
        check(f"{name} ({mode}): the last good checkpoint is unchanged", sha(ckpt) == before)
        said[mode] = (m.group(0) if m else None, records(os.path.join(d, "m.json")))
    check(f"{name}: the same step named and the same lines logged", said["late"] == said["sync"],
          f"late {said['late'][0]} sync {said['sync'][0]}")


if __name__ == "__main__":
    sys.exit(main())
