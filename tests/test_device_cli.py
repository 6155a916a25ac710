#!/usr/bin/env python3
"""Device, precision and backend choice of `dltrain train` / `dltrain bench train`.

Every refusal must be one line on stderr naming the option, with a non-zero
exit status, and never a crash or a hang.  Runs on any machine: where no GPU
is usable it checks that auto falls back to the CPU and says why, and that
--device cuda refuses; on a GPU machine it checks the GPU-list errors instead.
Under MPI (when mpiexec and an MPI build are present) it checks that a device
failure on every rank ends the whole job."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

DLTRAIN = sys.argv[1]
SYN = ["--data", "synthetic:1x28x28:10", "--epochs", "1", "--max-steps", "1", "--no-progress"]
failures = []


def run(args, timeout=120, env=None):
    p = subprocess.run([DLTRAIN] + args, capture_output=True, text=True, timeout=timeout, env=env)
    return p.returncode, p.stdout, p.stderr


def expect_refusal(args, pattern, rc_expected=None):
    rc, out, err = run(args)
    lines = [l for l in err.splitlines() if l.strip()]
    ok = rc != 0 and (rc_expected is None or rc == rc_expected) and \
        any(re.search(pattern, l) for l in lines) and len(lines) == 1 and \
        "Traceback" not in err and rc < 128
    print(("ok  " if ok else "FAIL"), " ".join(args), "->", rc, lines[:2])
    if not ok:
        failures.append((args, rc, err))


def gpu_usable():
    rc, out, err = run(["bench", "train", "--steps", "1", "--warmup", "0", "--repeats", "1",
                        "--batch", "8"])
    m = re.search(r"^\s*device (.*)$", out, re.M)
    if rc != 0 or not m:
        failures.append((["bench", "train"], rc, out + err))
        return False, ""
    return m.group(1).startswith("cuda"), m.group(1)


with tempfile.TemporaryDirectory() as tmp:
    out_dir = ["--out", os.path.join(tmp, "run")]
    # names: rejected at parse time on every machine, with usage status 2
    expect_refusal(["train", "--device", "gpu"] + SYN + out_dir, r"unknown --device 'gpu'", 2)
    expect_refusal(["train", "--precision", "fp16"] + SYN + out_dir, r"unknown --precision", 2)
    expect_refusal(["train", "--comm", "gloo"] + SYN + out_dir, r"unknown --comm 'gloo'", 2)
    expect_refusal(["train", "--gpus", "0,,1"] + SYN + out_dir, r"--gpus '0,,1' is not a list", 2)
    expect_refusal(["train", "--gpus", "x"] + SYN + out_dir, r"--gpus 'x' is not a list", 2)
    expect_refusal(["bench", "train", "--device", "tpu"], r"unknown --device 'tpu'", 2)
    expect_refusal(["train", "--conv", "winograd"] + SYN + out_dir, r"unknown --conv 'winograd'", 2)
    expect_refusal(["bench", "train", "--conv", "x"], r"unknown --conv 'x'", 2)
    # combinations the CPU cannot serve
    for cmd in (["train"] + SYN + out_dir, ["bench", "train", "--steps", "1"]):
        expect_refusal(cmd + ["--device", "cpu", "--precision", "tf32"],
                       r"--precision tf32 needs --device cuda", 2)
        expect_refusal(cmd + ["--device", "cpu", "--gpus", "0"], r"--gpus '0' given, but the "
                       r"device is the CPU", 2)
        expect_refusal(cmd + ["--device", "cpu", "--conv", "cudnn"],
                       r"--conv cudnn needs --device cuda", 2)
    expect_refusal(["train", "--device", "cpu", "--comm", "nccl"] + SYN + out_dir,
                   r"--comm nccl needs --device cuda", 2)
    expect_refusal(["train", "--device", "cpu", "--precision", "bf16"] + SYN + out_dir,
                   r"--precision bf16 needs --device cuda", 2)

    gpu, note = gpu_usable()
    print("device chosen by auto:", note)
    if not gpu:
        if not re.match(r"cpu \(auto: .+\), precision fp32$", note):
            failures.append((["auto summary"], 0, note))
        # auto falls back to the CPU, which cannot do bf16: refused, never fp32 in disguise
        expect_refusal(["train", "--precision", "bf16"] + SYN + out_dir,
                       r"--precision bf16 needs --device cuda", 2)
        for cmd in (["train"] + SYN + out_dir, ["bench", "train", "--steps", "1"]):
            expect_refusal(cmd + ["--device", "cuda"], r"--device cuda: (no CUDA GPU|this dltrain "
                           r"was built without CUDA)", 1)
        rc, out, err = run(["train", "--device", "auto"] + SYN + out_dir)
        if rc != 0 or not re.search(r"^\s*device cpu \(auto: ", out, re.M):
            failures.append((["train auto"], rc, out + err))
        else:
            print("ok   train --device auto summary:", re.search(r"device cpu.*", out).group(0))
    else:
        expect_refusal(["train", "--device", "cuda", "--gpus", "999"] + SYN + out_dir,
                       r"--gpus lists GPU 999, but this node has \d+ GPU", 2)
        expect_refusal(["bench", "train", "--device", "cuda", "--gpus", "999"],
                       r"--gpus lists GPU 999, but this node has \d+ GPU", 2)
        # --conv: the summary says which convolution path runs, and why when auto chose GEMMs
        for conv, pattern in (("gemm", r", conv gemm$"),
                              ("auto", r", conv (cudnn \d+\.\d+\.\d+|gemm \(auto: .+\))$")):
            rc, out, err = run(["bench", "train", "--device", "cuda", "--conv", conv, "--steps",
                                "1", "--warmup", "0", "--repeats", "1", "--batch", "8"])
            m = re.search(r"^\s*device (.*)$", out, re.M)
            ok = rc == 0 and m and re.search(pattern, m.group(1))
            print("ok  " if ok else "FAIL", f"bench train --conv {conv}:", m.group(1) if m else rc)
            if not ok:
                failures.append((["bench", "train", "--conv", conv], rc, out + err))

    mpiexec = shutil.which("mpiexec")
    rc, version, _ = run(["--version"])
    if mpiexec and "MPI" in version and not gpu:
        env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        p = subprocess.run([mpiexec, "--oversubscribe", "-np", "2", DLTRAIN, "train", "--device",
                            "cuda"] + SYN + out_dir, capture_output=True, text=True, timeout=120,
                           env=env)
        ok = p.returncode != 0 and p.stderr.count("--device cuda: ") == 2
        print("ok  " if ok else "FAIL", "mpiexec -np 2 train --device cuda ->", p.returncode)
        if not ok:
            failures.append((["mpiexec --device cuda"], p.returncode, p.stderr))
        p = subprocess.run([mpiexec, "--oversubscribe", "-np", "2", DLTRAIN, "bench", "allreduce",
                            "--device", "cuda", "--max-bytes", "64"], capture_output=True,
                           text=True, timeout=120, env=env)
        ok = p.returncode != 0 and p.stderr.count("--device cuda: ") == 2
        print("ok  " if ok else "FAIL", "mpiexec -np 2 bench allreduce --device cuda ->",
              p.returncode)
        if not ok:
            failures.append((["mpiexec bench allreduce --device cuda"], p.returncode, p.stderr))

for args, rc, err in failures:
    print("FAILED:", " ".join(args), "rc", rc, "\n", err, file=sys.stderr)
sys.exit(1 if failures else 0)
