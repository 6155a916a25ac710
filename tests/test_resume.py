"""Resume is exact: a run stopped part-way (by --max-steps or by SIGINT) and
continued with --resume must produce the same per-step losses and the same
final checkpoint, byte for byte, as a run that went straight through.

usage: test_resume.py DLTRAIN"""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import idx_fixture  # noqa: E402

DLTRAIN = os.path.abspath(sys.argv[1])
FAILURES = []


def run(args, cwd, check=True):
    p = subprocess.run([DLTRAIN, "train"] + args, cwd=cwd, capture_output=True, text=True,
                       timeout=600)
    if check and p.returncode != 0:
        raise SystemExit(f"FAIL dltrain {' '.join(args)} exited {p.returncode}: {p.stderr.strip()}")
    return p


def step_losses(path):
    out = {}
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            if rec["type"] == "step":
                out[rec["step"]] = (rec["loss"], rec["lr"])
    return out


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def compare(name, straight_dir, resumed_dir, json_files):
    ref = step_losses(os.path.join(straight_dir, "m.json"))
    got = {}
    for j in json_files:
        got.update(step_losses(j))
    missing = sorted(set(ref) - set(got))
    diff = [s for s in ref if s in got and got[s] != ref[s]]
    same_ckpt = sha(os.path.join(straight_dir, "checkpoint.bin")) == \
        sha(os.path.join(resumed_dir, "checkpoint.bin"))
    if missing or diff or not same_ckpt:
        detail = f"missing steps {missing[:5]}" if missing else ""
        if diff:
            s = diff[0]
            detail += f" step {s}: straight {ref[s]} resumed {got[s]}"
        if not same_ckpt:
            detail += " final checkpoints differ"
        print(f"FAIL {name}: {detail}")
        FAILURES.append(name)
    else:
        print(f"ok   {name}: {len(ref)} step losses and the final checkpoint are identical")


def case_max_steps(tmp, name, args, stop_at):
    straight, resumed = (os.path.join(tmp, name, d) for d in ("straight", "resumed"))
    run(args + ["--out", straight, "--json", os.path.join(straight, "m.json")], tmp)
    first = os.path.join(resumed, "a.json")
    run(args + ["--out", resumed, "--json", first, "--max-steps", str(stop_at)], tmp)
    second = os.path.join(resumed, "m.json")
    run(args + ["--out", resumed, "--json", second, "--resume",
                os.path.join(resumed, "checkpoint.bin")], tmp)
    compare(name, straight, resumed, [first, second])


def case_signal(tmp, args):
    """SIGINT mid-run: the trainer checkpoints and exits 130; resume finishes."""
    name = "sigint"
    straight, resumed = (os.path.join(tmp, name, d) for d in ("straight", "resumed"))
    run(args + ["--out", straight, "--json", os.path.join(straight, "m.json")], tmp)
    os.makedirs(resumed, exist_ok=True)
    first = os.path.join(resumed, "a.json")
    p = subprocess.Popen([DLTRAIN, "train"] + args + ["--out", resumed, "--json", first],
                         cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(step_losses_safe(first)) < 3:
        time.sleep(0.02)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    if p.returncode != 130:
        print(f"FAIL {name}: exit {p.returncode} after SIGINT, expected 130 ({err.strip()})")
        FAILURES.append(name)
        return
    second = os.path.join(resumed, "m.json")
    run(args + ["--out", resumed, "--json", second, "--resume",
                os.path.join(resumed, "checkpoint.bin")], tmp)
    compare(name, straight, resumed, [first, second])


def step_losses_safe(path):
    try:
        return step_losses(path)
    except (OSError, ValueError, KeyError):
        return {}


def main():
    tmp = tempfile.mkdtemp(prefix="dltrain-resume-")
    try:
        data = idx_fixture.make_dataset(os.path.join(tmp, "data"), n_train=512, n_test=128)
        common = ["--data", data, "--epochs", "3", "--batch", "32", "--log-every", "1",
                  "--no-progress", "--threads", "2"]
        # Stop inside an epoch (step 21 of 16-step epochs) and exactly at an epoch end.
        case_max_steps(tmp, "lenet mid-epoch", ["--model", "lenet"] + common, 21)
        case_max_steps(tmp, "lenet epoch boundary", ["--model", "lenet"] + common, 16)
        # Batch norm running statistics, augmentation RNG and Nesterov momentum.
        case_max_steps(tmp, "resnet20 augment nesterov",
                       ["--model", "resnet20", "--augment", "--nesterov", "--warmup", "0.5"]
                       + common, 19)
        case_max_steps(tmp, "step schedule", ["--model", "lenet", "--schedule", "step",
                                              "--lr-steps", "1,2"] + common, 30)
        case_signal(tmp, ["--model", "resnet20", "--batch", "16", "--epochs", "2",
                          "--data", data, "--log-every", "1", "--no-progress",
                          "--checkpoint-every", "1000"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(FAILURES)} failed" if FAILURES else "resume is bit-identical in every case")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
