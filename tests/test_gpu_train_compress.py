#!/usr/bin/env python3
"""--compress on a CUDA GPU end to end (CTest label gpu; docs/compression.md).

  1. lenet, 8 steps on seeded synthetic data, --compress fp16, int8, onebit
     and powersgd:2 on the GPU (fp32) against the same on the CPU: every
     loss within 1e-2 (relative).  The compressed exchange is exact on both
     (the same codecs, bit for bit), but the gradients differ by the GPU's
     rounding, which a sign or an int8 step can magnify; the limit is an
     estimate, not yet tried on a GPU.
  2. --comm nccl with one rank and --compress int8: the encoded buckets go
     through ncclAllGather and the losses must be bit-identical to the run
     without NCCL (where one rank's all-gather is a copy on the GPU).
  3. Resume: 4 steps, then --resume to step 8, with onebit: the same losses
     and checkpoint as a straight 8-step run (the residuals leave the GPU for
     the checkpoint and come back).  Bit for bit, as on the CPU: the GPU run
     is deterministic with --conv gemm.
  4. `bench allreduce --device cuda --compress int8 / powersgd:2` on the
     local and NCCL backends: every size's compressed average correct.
  5. With mpiexec: two ranks sharing the GPU through --comm mpi (the staged
     backend's all-gather) with int8 and powersgd:2 against two CPU ranks,
     within 1e-2.

Without a usable GPU it prints "SKIPPED: ..." and exits 77;
DLTRAIN_REQUIRE_GPU=1 makes that a failure.

usage: test_gpu_train_compress.py DLTRAIN [MPIEXEC]"""
import hashlib
import math
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import require_gpu, run_for_losses  # noqa: E402

DLTRAIN = sys.argv[1]
MPIEXEC = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else None
MODEL, DATA = "lenet", "synthetic:1x28x28:10"
failures = []
tmp = tempfile.mkdtemp(prefix="dltrain-gpu-compress-")


def train(name, extra, steps=8, launcher=None, resume=None, timeout=600):
    out = os.path.join(tmp, name)
    js = os.path.join(tmp, name + ".jsonl")
    cmd = (launcher or []) + [DLTRAIN, "train", "--model", MODEL, "--data", DATA, "--batch", "16",
                              "--epochs", "1", "--max-steps", str(steps), "--log-every", "1",
                              "--json", js, "--out", out, "--no-progress", "--seed", "7",
                              "--lr", "0.005"] + extra
    if resume:
        cmd += ["--resume", resume]
    return run_for_losses(cmd, js, timeout)


def check(ok, what, detail=""):
    print("ok  " if ok else "FAIL", what)
    if not ok:
        failures.append(f"{what}: {detail}")


def compare(what, got, want, rel):
    if got is None or want is None or len(got) != len(want) or not got:
        failures.append(f"{what}: missing losses ({got!r} vs {want!r})")
        return
    worst = max(abs(g - w) / max(abs(w), 1e-6) for g, w in zip(got, want))
    bad = any(not math.isfinite(g) for g in got) or worst > rel
    check(not bad, f"{what}: worst relative loss difference {worst:.3g} (limit {rel:g})",
          f"{got} vs {want}")


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


require_gpu(DLTRAIN)

GPU = ["--device", "cuda", "--precision", "fp32", "--conv", "gemm"]
runs = {}
for kind in ("fp16", "int8", "onebit", "powersgd:2"):
    tag = kind.replace(":", "-")
    cpu, e1 = train(f"{tag}-cpu", ["--device", "cpu", "--threads", "2", "--compress", kind])
    gpu, e2 = train(f"{tag}-cuda", GPU + ["--compress", kind])
    runs[kind] = gpu
    if cpu is None or gpu is None:
        failures.append(f"{kind}: cpu: {e1 if cpu is None else 'ok'}; "
                        f"cuda: {e2 if gpu is None else 'ok'}")
        continue
    check("gradient compression" in e2, f"{kind}: the summary reports the compression", e2)
    compare(f"--compress {kind}: cuda vs cpu", gpu, cpu, 1e-2)

nccl, e3 = train("int8-nccl", GPU + ["--compress", "int8", "--comm", "nccl"])
if nccl is None or runs.get("int8") is None:
    failures.append(f"int8 --comm nccl: {e3}")
else:
    check(nccl == runs["int8"], "--compress int8 --comm nccl, one rank: losses bit-identical to "
          "the run without NCCL", f"{nccl} vs {runs['int8']}")

part, e4 = train("onebit-part", GPU + ["--compress", "onebit"], steps=4)
rest, e5 = train("onebit-rest", GPU + ["--compress", "onebit"],
                 resume=os.path.join(tmp, "onebit-part", "checkpoint.bin"))
if part is None or rest is None or runs.get("onebit") is None:
    failures.append(f"onebit resume: {e4 if part is None else e5}")
else:
    check(part + rest == runs["onebit"], "--compress onebit: 4 steps + resume to 8 gives the "
          "straight run's losses", f"{part + rest} vs {runs['onebit']}")
    check(sha(os.path.join(tmp, "onebit-rest", "checkpoint.bin")) ==
          sha(os.path.join(tmp, "onebit-cuda", "checkpoint.bin")),
          "--compress onebit: the resumed checkpoint equals the straight run's")

for backend in ("local", "nccl"):
    for kind in ("int8", "powersgd:2"):
        p = subprocess.run([DLTRAIN, "bench", "allreduce", "--device", "cuda", "--backend",
                            backend, "--compress", kind, "--max-bytes", "4194304", "--iters", "3",
                            "--warmup", "1"], capture_output=True, text=True, timeout=300)
        check(p.returncode == 0 and "every size correct" in p.stdout,
              f"bench allreduce --device cuda --backend {backend} --compress {kind}",
              p.stdout[-400:] + p.stderr[-400:])

if MPIEXEC:
    v = subprocess.run([DLTRAIN, "--version"], capture_output=True, text=True).stdout
    if "MPI" in v:
        launch = [MPIEXEC, "--oversubscribe", "-np", "2"]
        os.environ.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        for kind in ("int8", "powersgd:2"):
            tag = kind.replace(":", "-")
            cpu2, e6 = train(f"mpi-{tag}-cpu", ["--device", "cpu", "--threads", "1",
                                                "--compress", kind], launcher=launch)
            gpu2, e7 = train(f"mpi-{tag}-cuda", GPU + ["--comm", "mpi", "--gpus", "0,0",
                                                       "--compress", kind], launcher=launch)
            if cpu2 is None or gpu2 is None:
                failures.append(f"mpi {kind}: cpu {e6 if cpu2 is None else 'ok'}; "
                                f"cuda {e7 if gpu2 is None else 'ok'}")
            else:
                compare(f"2 ranks, one GPU, --comm mpi (staged) --compress {kind} vs 2 CPU ranks",
                        gpu2, cpu2, 1e-2)
    else:
        print("skipped the MPI cases: dltrain is built without MPI")

for f in failures:
    print("FAILED:", f, file=sys.stderr)
sys.exit(1 if failures else 0)
