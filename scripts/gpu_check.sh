#!/usr/bin/env bash
# gpu_check.sh: everything that needs a GPU, in one go, on a machine with an
# NVIDIA GPU, the CUDA toolkit (nvcc, cuBLAS; NCCL optional) and PyTorch.
# Needs no MPI and no network.  Results go to $OUT (default ./gpu-check-out):
#   summary.txt   one line per step: PASS/FAIL/SKIP and what it measured
#   *.log         each step's full output; bench.json the benchmark figures
#
#   scripts/gpu_check.sh                    # everything
#   QUICK=1 scripts/gpu_check.sh            # short training and benchmarks
#   DATA=/path/to/fashion-mnist EPOCHS=5 ARCHS=90 scripts/gpu_check.sh
# Every step runs even when an earlier one failed (except after a failed
# build); the exit status is 1 if any step failed.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$PWD/gpu-check-out}
BUILD=${BUILD:-$ROOT/build-gpu}
ARCHS=${ARCHS:-90}
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
EPOCHS=${EPOCHS:-5}
PYTHON=${PYTHON:-$(command -v python3)}
QUICK=${QUICK:-0}
JOBS=$(nproc 2>/dev/null || echo 4)
mkdir -p "$OUT"
SUMMARY=$OUT/summary.txt
: >"$SUMMARY"
failed=0

note() { echo "$*" | tee -a "$SUMMARY"; }
# step NAME LOG CMD...: runs CMD with output in $OUT/LOG, records PASS/FAIL
step() {
    local name=$1 log=$OUT/$2 t0 rc
    shift 2
    t0=$(date +%s)
    "$@" >"$log" 2>&1
    rc=$?
    if [ $rc -eq 0 ]; then note "PASS $name ($(( $(date +%s) - t0 )) s)"
    else note "FAIL $name (exit $rc; see $(basename "$log"))"; failed=1; fi
    return $rc
}

{
    date -u; uname -a
    nvidia-smi || echo "nvidia-smi failed"
    nvcc --version || echo "no nvcc"
    cmake --version | head -1
    "$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name())' || echo "no torch"
    command -v mpiexec || echo "no mpiexec (fine: single-GPU checks need no MPI)"
} >"$OUT/env.log" 2>&1
note "GPU check of $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') on $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"

step configure configure.log cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
    -DDLTRAIN_CUDA_ARCHS="$ARCHS" -DDLTRAIN_WERROR=ON || { note "cannot configure: stopping"; exit 1; }
grep -E "CUDA|NCCL|MPI " "$OUT/configure.log" | sed 's/^-- */  /' | tee -a "$SUMMARY"
step build build.log cmake --build "$BUILD" -j"$JOBS" || { note "build failed: stopping"; exit 1; }
DLTRAIN=$BUILD/launch/dltrain

# CUDA ops against the CPU reference; a missing GPU is a failure here.
step "ctest -L gpu (CUDA ops vs CPU reference)" ctest-gpu.log \
    env DLTRAIN_REQUIRE_GPU=1 ctest --test-dir "$BUILD" -L gpu --output-on-failure
step "device choice CLI test" ctest-device.log \
    ctest --test-dir "$BUILD" -R device_choice --output-on-failure

# A whole training run on the GPU, to compare with the CPU accuracy (docs/engine.md).
if [ "$QUICK" = 1 ]; then EPOCHS=1; fi
if [ -f "$DATA/train-images-idx3-ubyte.gz" ] || [ -f "$DATA/train-images-idx3-ubyte" ]; then
    step "lenet Fashion-MNIST on cuda, $EPOCHS epoch(s)" lenet-cuda.log \
        "$DLTRAIN" train --device cuda --model lenet --data "$DATA" --epochs "$EPOCHS" \
        --out "$OUT/lenet-run" --no-progress --json "$OUT/lenet-cuda.jsonl"
    grep -E "device|final test accuracy" "$OUT/lenet-cuda.log" | sed 's/^/  /' | tee -a "$SUMMARY"
else
    note "SKIP lenet Fashion-MNIST: no data in $DATA (set DATA=)"
fi

# The NCCL backend with one rank (the all-reduce is the identity, but the
# communicator, streams, events and watchdog all run), and tf32.
step "train --comm nccl, one rank" nccl-one-rank.log \
    "$DLTRAIN" train --device cuda --comm nccl --model resnet20 --data synthetic:3x32x32:10 \
    --epochs 1 --max-steps 30 --out "$OUT/nccl-run" --no-progress
grep -E "comm|final" "$OUT/nccl-one-rank.log" | sed 's/^/  /' | tee -a "$SUMMARY"
step "train --precision tf32" tf32.log \
    "$DLTRAIN" train --device cuda --precision tf32 --model resnet20 \
    --data synthetic:3x32x32:10 --epochs 1 --max-steps 30 --out "$OUT/tf32-run" --no-progress

# NCCL all-reduce on GPU buffers, one rank (nccl-tests style table).
step "bench allreduce --device cuda --backend nccl" allreduce-nccl.log \
    "$DLTRAIN" bench allreduce --device cuda --backend nccl --max-bytes 268435456 \
    --json "$OUT/allreduce-nccl.json"
tail -3 "$OUT/allreduce-nccl.log" | sed 's/^/  /' | tee -a "$SUMMARY"

# Host<->GPU copies (the figure the lanes set directly), then `scale` on one
# GPU with its report (more GPUs need mpirun: see docs/lanes.md).
step "bench copy (pinned and pageable)" copy.log \
    "$DLTRAIN" bench copy --json "$OUT/copy.json"
sed 's/^/  /' "$OUT/copy.log" | tee -a "$SUMMARY" >/dev/null
step "scale --device cuda, one rank, resnet50 batch 64" scale.log \
    "$DLTRAIN" scale --device cuda --model resnet50 --data synthetic:3x224x224:1000 --batch 64 \
    --steps 10 --repeats 3 --json "$OUT/scale.json" --report "$OUT/scale.html"
grep -E "images/s|rank" "$OUT/scale.log" | head -5 | sed 's/^/  /' | tee -a "$SUMMARY"

# Benchmarks against PyTorch on the same GPU.
QFLAG=""
if [ "$QUICK" = 1 ]; then QFLAG=--quick; fi
step "bench_compare_gpu.py" bench.log "$PYTHON" "$ROOT/scripts/bench_compare_gpu.py" \
    --dltrain "$DLTRAIN" --python "$PYTHON" --json "$OUT/bench.json" $QFLAG
sed 's/^/  /' "$OUT/bench.log" | tee -a "$SUMMARY" >/dev/null
exit $failed
