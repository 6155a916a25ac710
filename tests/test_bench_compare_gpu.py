#!/usr/bin/env python3
"""scripts/bench_compare_gpu.py's verdicts, without a GPU: fake dltrain and
Python programs stand in for the tools.  A bf16 run that fails (a CUDA
error, exit 1) fails the comparison, never replaced by the tf32 figure;
only a refusal (exit 2: a build without bf16) falls back to tf32, marked.

usage: test_bench_compare_gpu.py"""
import os
import stat
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "bench_compare_gpu.py")

# dltrain: bf16 exits with BF16_RC; other precisions report images/s
FAKE_DLTRAIN = """#!/bin/sh
case "$*" in *"--precision bf16"*)
    echo "dltrain bench train: CUDA error at x.cu:1: a fault" >&2; exit $BF16_RC;;
esac
echo "  1000.0 images/s (median of 1; min 1000.0, max 1000.0), 1.00 ms/step, 4.0 GFLOP/s"
"""
# python: the GPU's name, and bench_torch.py's line
FAKE_PYTHON = """#!/bin/sh
case "$*" in *get_device_name*) echo "NVIDIA H200"; exit 0;; esac
echo "  500.0 images/s (median of 1; min 500.0, max 500.0)"
"""


def tool(d, name, text):
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)
    return path


def run(d, bf16_rc):
    env = dict(os.environ, BF16_RC=str(bf16_rc))
    p = subprocess.run([sys.executable, SCRIPT, "--dltrain", tool(d, "dltrain", FAKE_DLTRAIN),
                        "--python", tool(d, "python", FAKE_PYTHON), "--quick",
                        "--cases", "resnet50:128:bf16,lenet:128:fp32"],
                       capture_output=True, text=True, env=env, timeout=120)
    return p.returncode, p.stdout + p.stderr


failures = []
with tempfile.TemporaryDirectory() as d:
    rc, out = run(d, 1)
    ok = rc == 1 and "dltrain failed" in out and "bf16*" not in out
    print("ok  " if ok else "FAIL", f"a failing bf16 run fails the comparison (exit {rc})")
    if not ok:
        failures.append(out)
    rc, out = run(d, 2)
    ok = rc == 0 and "bf16*" in out and "refused bf16" in out
    print("ok  " if ok else "FAIL", f"a refused bf16 shows the tf32 figure, marked (exit {rc})")
    if not ok:
        failures.append(out)
for f in failures:
    print(f, file=sys.stderr)
sys.exit(1 if failures else 0)
