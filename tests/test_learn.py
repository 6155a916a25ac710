"""Training learns: lenet on Fashion-MNIST for one epoch must pass 80% test
accuracy (5 epochs reach about 91%; see docs/engine.md for the full runs).

usage: test_learn.py DLTRAIN [DATA_DIR]"""
import json
import os
import subprocess
import sys
import tempfile

DLTRAIN = os.path.abspath(sys.argv[1])
DATA = sys.argv[2] if len(sys.argv) > 2 else "/usr/share/datasets/fashion-mnist"
THRESHOLD = 0.80


def main():
    if not os.path.isdir(DATA):
        print(f"FAIL Fashion-MNIST not found at {DATA} (install dataset-fashion-mnist)")
        return 1
    with tempfile.TemporaryDirectory(prefix="dltrain-learn-") as tmp:
        metrics = os.path.join(tmp, "m.json")
        p = subprocess.run([DLTRAIN, "train", "--model", "lenet", "--data", DATA,
                            "--epochs", "1", "--no-progress", "--out", tmp, "--json", metrics],
                           capture_output=True, text=True, timeout=1200)
        print(p.stdout.strip())
        if p.returncode != 0:
            print(f"FAIL dltrain exited {p.returncode}: {p.stderr.strip()}")
            return 1
        final = [json.loads(l) for l in open(metrics) if '"final"' in l]
        acc = final[-1]["test_acc"]
        if acc < THRESHOLD:
            print(f"FAIL test accuracy {acc:.4f} after one epoch is below {THRESHOLD}")
            return 1
        print(f"ok   test accuracy {acc:.4f} after one epoch (needs {THRESHOLD})")
        return 0


if __name__ == "__main__":
    sys.exit(main())
