#!/usr/bin/env python3
"""Training on a CUDA GPU end to end, against the CPU (CTest label gpu).

  1. fp32: lenet and resnet20, 8 steps on the same seeded synthetic data on
     the GPU and on the CPU; every step's loss within 1e-3 (relative).  The
     op tests bound each op; this catches what only a whole run shows (the
     input pipeline's buffer alternation, stream ordering, the optimizer).
  2. --comm nccl with one rank: the gradients go through NCCL (streams,
     events, ncclAvg over one rank, the watchdog) and every loss must be
     bit-identical to the run without it.
  1b. the same with --conv gemm (1. runs --conv auto: cuDNN where built).
  3. --precision auto / tf32 / bf16: losses finite and within 5% (auto, tf32) or 10%
     (bf16) of fp32 at every step.  Small learning rate (0.005): on random
     synthetic data a larger one makes the first steps jump, which magnifies
     rounding differences.  These limits are estimates, not yet tried on a GPU.
  4. `dltrain bench allreduce --device cuda` with NCCL and the local backend
     on one GPU: every element of every size correct.
  5. With mpiexec and an MPI build: two ranks sharing the GPU through
     --comm mpi (staged through pinned memory) match two CPU ranks within
     1e-3; two ranks on one GPU with --comm nccl either work or stop with a
     message, within the timeout, never hang.

Without a usable GPU it prints "SKIPPED: ..." and exits 77 (reported as
skipped); DLTRAIN_REQUIRE_GPU=1 makes that a failure.

usage: test_gpu_train.py DLTRAIN [MPIEXEC]"""
import math
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import require_gpu, run_for_losses  # noqa: E402

DLTRAIN = sys.argv[1]
MPIEXEC = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else None
STEPS = 8
CASES = [("lenet", "synthetic:1x28x28:10"), ("resnet20", "synthetic:3x16x16:10")]
failures = []
tmp = tempfile.mkdtemp(prefix="dltrain-gpu-")


def train(name, model, data, extra, launcher=None, timeout=600):
    out = os.path.join(tmp, name)
    js = os.path.join(tmp, name + ".jsonl")
    cmd = (launcher or []) + [DLTRAIN, "train", "--model", model, "--data", data, "--batch", "16",
                              "--epochs", "1", "--max-steps", str(STEPS), "--log-every", "1",
                              "--json", js, "--out", out, "--no-progress", "--seed", "7", "--lr", "0.005"] + extra
    return run_for_losses(cmd, js, timeout)


def compare(what, got, want, rel):
    if got is None or want is None or len(got) != len(want) or not got:
        failures.append(f"{what}: missing losses ({got!r} vs {want!r})")
        return
    worst = max(abs(g - w) / max(abs(w), 1e-6) for g, w in zip(got, want))
    bad = any(not math.isfinite(g) for g in got) or worst > rel
    print(("FAIL" if bad else "ok  "), f"{what}: worst relative loss difference {worst:.3g} "
          f"(limit {rel:g})")
    if bad:
        failures.append(f"{what}: {got} vs {want}")


require_gpu(DLTRAIN)

for model, data in CASES:
    cpu, e1 = train(f"{model}-cpu", model, data, ["--device", "cpu", "--threads", "2"])
    gpu, e2 = train(f"{model}-cuda", model, data, ["--device", "cuda", "--precision", "fp32"])
    if cpu is None or gpu is None:
        failures.append(f"{model}: cpu: {e1 if cpu is None else 'ok'}; cuda: {e2 if gpu is None else 'ok'}")
        continue
    compare(f"{model} cuda fp32 vs cpu", gpu, cpu, 1e-3)
    # the other convolution path (--conv auto above: cuDNN where the build has it)
    gemm, e2g = train(f"{model}-cuda-gemm", model, data, ["--device", "cuda", "--precision",
                                                          "fp32", "--conv", "gemm"])
    if gemm is None:
        failures.append(f"{model} --conv gemm: {e2g}")
    else:
        compare(f"{model} cuda fp32 --conv gemm vs cpu", gemm, cpu, 1e-3)
    nccl, e3 = train(f"{model}-nccl", model, data, ["--device", "cuda", "--precision", "fp32",
                                                    "--comm", "nccl"])
    if nccl is None:
        failures.append(f"{model} --comm nccl (one rank): {e3}")
    else:
        same = nccl == gpu
        print("ok  " if same else "FAIL", f"{model} --comm nccl one rank: losses "
              f"{'bit-identical to' if same else 'differ from'} the run without NCCL")
        if not same:
            failures.append(f"{model} nccl: {nccl} vs {gpu}")
        if "comm nccl" not in e3:
            failures.append(f"{model} nccl: the summary does not name the nccl backend")
    for prec in ("auto", "tf32", "bf16"):
        low, e4 = train(f"{model}-{prec}", model, data, ["--device", "cuda", "--precision", prec])
        if low is None:
            failures.append(f"{model} {prec}: {e4}")
        else:
            compare(f"{model} cuda {prec} vs fp32", low, gpu, 0.1 if prec == "bf16" else 0.05)

# the NCCL all-reduce itself, on GPU buffers, checked element by element
for backend in ("nccl", "local"):
    p = subprocess.run([DLTRAIN, "bench", "allreduce", "--device", "cuda", "--backend", backend,
                        "--max-bytes", "4194304", "--iters", "3", "--warmup", "1"],
                       capture_output=True, text=True, timeout=300)
    ok = p.returncode == 0 and "every size correct" in p.stdout
    print("ok  " if ok else "FAIL", f"bench allreduce --device cuda --backend {backend}")
    if not ok:
        failures.append(f"bench allreduce {backend}: {p.stdout[-400:]} {p.stderr[-400:]}")

if MPIEXEC:
    v = subprocess.run([DLTRAIN, "--version"], capture_output=True, text=True).stdout
    if "MPI" in v:
        env_launch = [MPIEXEC, "--oversubscribe", "-np", "2"]
        os.environ.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        model, data = CASES[1]
        cpu2, e5 = train("mpi-cpu", model, data, ["--device", "cpu", "--threads", "1"], env_launch)
        gpu2, e6 = train("mpi-cuda", model, data, ["--device", "cuda", "--precision", "fp32",
                                                   "--comm", "mpi", "--gpus", "0,0"], env_launch)
        if cpu2 is None or gpu2 is None:
            failures.append(f"mpi 2 ranks: cpu {e5 if cpu2 is None else 'ok'}; "
                            f"cuda {e6 if gpu2 is None else 'ok'}")
        else:
            compare("2 ranks, one GPU, --comm mpi (staged) vs 2 CPU ranks", gpu2, cpu2, 1e-3)
        n2, e7 = train("mpi-nccl", model, data, ["--device", "cuda", "--comm", "nccl", "--gpus",
                                                 "0,0", "--timeout", "30"], env_launch, timeout=240)
        if n2 is None and "timed out" in e7:
            failures.append("2 ranks on one GPU with --comm nccl hung: " + e7)
        print("ok  " if n2 is not None or "timed out" not in e7 else "FAIL",
              "2 ranks on one GPU with --comm nccl:", "trained" if n2 else e7.splitlines()[-1:])
    else:
        print("skipped the MPI cases: dltrain is built without MPI")

for f in failures:
    print("FAILED:", f, file=sys.stderr)
sys.exit(1 if failures else 0)
