#!/usr/bin/env bash
# gpu_check.sh: everything that needs a GPU, in one run of at most ~10
# minutes on a fresh one-GPU machine (H200: CUDA 13 toolkit; cuDNN and NCCL
# may come from the Python packages nvidia-*; PyTorch; no MPI, no network).
#
#   scripts/gpu_check.sh                 # everything, results in ./gpu-check-out
#   OUT=/tmp/x BUDGET=300 scripts/gpu_check.sh
#   DRY_RUN=1 BUILD=build scripts/gpu_check.sh   # the script's own flow, no GPU needed
#
# Writes ONE summary file, $OUT/summary.txt, appended after every step with
# what the step measured or why it failed, so a run cut short (the machine
# taken back) loses nothing already done.  Each step's full output, and
# every JSON result, is in $OUT/logs.tar.gz beside it, packed again after
# every step; nothing else goes to $OUT (two files: a machine that returns
# only a few files from OUT returns both).  The steps work in WORK.  Steps run in order of value, each under its own
# time limit, and are skipped (and said so) once the budget is spent.
# Exit status: 0 when every step that ran passed and at least one GPU test
# ran; 1 otherwise (a GPU present but no GPU test run is a failure, never a
# pass: a driver too old, or a configure that did not find CUDA).
#
# DRY_RUN=1 checks the script itself where there is no GPU: it takes the
# CUDA build already in $BUILD (no configure, no build), runs every step to
# the end although each fails for want of a GPU, and fails only where a
# step's command line is wrong (exit status 2, or a usage message in its
# log: a bad option of dltrain, test_cuda_ops or the comparison scripts),
# where `ctest -L gpu` would select no test, or where a step is missing from
# the summary (ctest -R gpu_check_dry_run, tests/cuda.cmake).
#
# Environment: OUT (./gpu-check-out), WORK (a new directory under /tmp),
# BUDGET (540 s for all steps), BUILD
# ($ROOT/build-gpu), ARCHS (90), DATA (Fashion-MNIST IDX files:
# $ROOT/.devdata/fashion-mnist, else /usr/share/datasets/fashion-mnist;
# fill .devdata with `mkdir -p .devdata && cp -r /usr/share/datasets/fashion-mnist
# .devdata/`, then carry .devdata to the GPU machine), PYTHON (python3),
# JOBS (all cores).  See docs/gpu.md, "Running the GPU checks".
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$PWD/gpu-check-out}
BUDGET=${BUDGET:-540}
ACC_GAP=${ACC_GAP:-2}
DRY_RUN=${DRY_RUN:-0}
BUILD=${BUILD:-$ROOT/build-gpu}
ARCHS=${ARCHS:-90}
PYTHON=${PYTHON:-$(command -v python3 || echo python3)}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 4)}
if [ -z "${DATA:-}" ]; then
    DATA=$ROOT/.devdata/fashion-mnist
    [ -d "$DATA" ] || DATA=/usr/share/datasets/fashion-mnist
fi
START=$(date +%s)
mkdir -p "$OUT"
OWN_WORK=0
[ -z "${WORK:-}" ] && OWN_WORK=1
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")}
mkdir -p "$WORK"
SUMMARY=$OUT/summary.txt
: >"$SUMMARY"
failed=0
gpu_tests_ran=0

note() { echo "$*" | tee -a "$SUMMARY"; }
indent() { sed 's/^/    /' | tee -a "$SUMMARY"; }
elapsed() { echo $(( $(date +%s) - START )); }
# $WORK's logs and results (not the checkpoints) into $OUT/logs.tar.gz, replaced whole
pack() {
    tar -czf "$OUT/logs.tar.gz.part" -C "$WORK" --exclude='*.bin' . 2>/dev/null &&
        mv -f "$OUT/logs.tar.gz.part" "$OUT/logs.tar.gz"
}
left() { echo $(( BUDGET - $(elapsed) )); }

# What a command line that is wrong leaves in a log (dltrain's option parser,
# test_cuda_ops, argparse, ctest), as opposed to a step failing for want of
# a GPU: DRY_RUN fails a step on these.
USAGE_ERRORS="unknown option|^usage:|unrecognized arguments|invalid choice|: error: |Unknown argument|No tests were found"

# step NAME LIMIT_S LOG CMD...: runs CMD under min(LIMIT, time left) with its
# output in $WORK/LOG; appends PASS/FAIL/TIMEOUT/SKIP to the summary.  With
# OPTIONAL=1 in front (OPTIONAL=1 step ...), a step cut short because the
# budget ran out is reported as CUT and fails nothing (the best-effort last
# step); a step that hits its own limit is a failure whatever.
step() {
    local name=$1 limit=$2 log=$WORK/$3 t0 rc budget trimmed=0
    shift 3
    budget=$(left)
    if [ "$budget" -lt 20 ]; then
        note "SKIP $name: out of time (${budget} s of ${BUDGET} s left)"
        echo "skipped: out of time" >"$log"
        return 2
    fi
    [ "$limit" -gt $((budget - 5)) ] && limit=$((budget - 5)) && trimmed=1
    t0=$(date +%s)
    timeout --kill-after=5 "$limit" "$@" >"$log" 2>&1
    rc=$?
    local took=$(( $(date +%s) - t0 ))
    pack
    if [ "$DRY_RUN" = 1 ]; then
        dry_verdict "$name" "$log" $rc "$took"
        return $rc
    fi
    if [ $rc -eq 0 ]; then
        note "PASS $name (${took} s)"
    elif { [ $rc -eq 124 ] || [ $rc -eq 137 ]; } && [ $trimmed = 1 ] && [ "${OPTIONAL:-0}" = 1 ]; then
        note "CUT $name: the budget ran out after ${took} s (see $(basename "$log"); not counted as a failure)"
    elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        note "FAIL $name: TIMEOUT after ${limit} s (see $(basename "$log"))"
        failed=1
    else
        note "FAIL $name: exit $rc after ${took} s (see $(basename "$log"))"
        tail -n 5 "$log" | indent >/dev/null
        failed=1
    fi
    return $rc
}

# DRY_RUN: a step is expected to fail without a GPU; only a wrong command
# line (exit 2 or a usage message) counts.
dry_verdict() {
    local name=$1 log=$2 rc=$3 took=$4
    dry_steps=$((dry_steps + 1))
    if [ "$rc" -eq 2 ] || grep -qE "$USAGE_ERRORS" "$log"; then
        note "FAIL $name: bad command line (exit $rc; see $(basename "$log")):"
        grep -m2 -E "$USAGE_ERRORS" "$log" | indent >/dev/null
        failed=1
    else
        note "RAN $name: exit $rc after ${took} s (dry run: no GPU expected)"
    fi
}
dry_steps=0

# shellcheck disable=SC2317  # called by the trap
finish() {
    pack
    [ "$OWN_WORK" = 1 ] && rm -rf "$WORK" # all of it is in logs.tar.gz but the checkpoints
    note "---- done in $(elapsed) s of ${BUDGET} s; GPU tests run: $gpu_tests_ran; " \
         "$( [ "$failed" = 0 ] && echo 'no step failed' || echo 'SOME STEPS FAILED')"
}
trap finish EXIT

# ---- where CUDA, NCCL and cuDNN are ------------------------------------------
# The toolkit: /usr/local/cuda unless nvcc is on PATH.  NCCL and cuDNN: beside
# the toolkit, else in the Python packages (site-packages/nvidia/nccl, .../cudnn).
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
    export PATH=/usr/local/cuda/bin:$PATH
fi
pip_nvidia() { # the directory of Python package nvidia.$1, or nothing
    "$PYTHON" -c "import importlib.util as u, sys
s = u.find_spec('nvidia.$1')
sys.stdout.write(list(s.submodule_search_locations)[0] if s and s.submodule_search_locations else '')" \
        2>/dev/null
}
CUDA_HOME=${CUDA_HOME:-$(dirname "$(dirname "$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)")")}
CMAKE_EXTRA=()
NCCL_DIR=""
CUDNN_DIR=""
if [ ! -f "$CUDA_HOME/include/nccl.h" ]; then NCCL_DIR=$(pip_nvidia nccl); fi
if [ ! -f "$CUDA_HOME/include/cudnn.h" ]; then CUDNN_DIR=$(pip_nvidia cudnn); fi
for d in "$NCCL_DIR" "$CUDNN_DIR"; do
    [ -n "$d" ] && [ -d "$d/lib" ] && export LD_LIBRARY_PATH=$d/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
done
[ -n "$NCCL_DIR" ] && CMAKE_EXTRA+=("-DNCCL_ROOT=$NCCL_DIR")
[ -n "$CUDNN_DIR" ] && CMAKE_EXTRA+=("-DCUDNN_ROOT=$CUDNN_DIR")

# cmake: on PATH, else the pip package's (a PyTorch machine often has it).
if ! command -v cmake >/dev/null; then
    PIP_CMAKE=$("$PYTHON" -c 'import cmake, sys; sys.stdout.write(cmake.CMAKE_BIN_DIR)' 2>/dev/null)
    [ -n "$PIP_CMAKE" ] && export PATH=$PIP_CMAKE:$PATH
fi
MISSING=""
for tool in cmake cc nvcc timeout; do
    command -v "$tool" >/dev/null || MISSING="$MISSING $tool"
done

GPU_NAME=$(nvidia-smi --query-gpu=name,driver_version,pci.bus_id --format=csv,noheader 2>/dev/null | head -1)
HAVE_GPU=0
[ -n "$GPU_NAME" ] && HAVE_GPU=1
SANITIZER=$(command -v compute-sanitizer || ls "$CUDA_HOME"/bin/compute-sanitizer 2>/dev/null || true)

note "dltrain GPU check of $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')" \
     "on $(hostname), $(date -u '+%Y-%m-%d %H:%M UTC'), budget ${BUDGET} s"
note "GPU: ${GPU_NAME:-none found by nvidia-smi}"
note "toolkit: $CUDA_HOME ($(nvcc --version 2>/dev/null | grep -o 'release [0-9.]*' || echo 'no nvcc'));" \
     "NCCL: ${NCCL_DIR:-beside the toolkit}; cuDNN: ${CUDNN_DIR:-beside the toolkit};" \
     "compute-sanitizer: ${SANITIZER:-not found}; data: $DATA"
{
    uname -a; nvidia-smi; nvcc --version; cmake --version | head -1
    "$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())'
    command -v mpiexec || echo "no mpiexec (fine: these checks need no MPI)"
    env | grep -E '^(CUDA|NCCL|LD_LIBRARY_PATH)' | sort
} >"$WORK/env.log" 2>&1
note "PyTorch: $(grep -m1 '^torch' "$WORK/env.log" || echo 'not importable (the comparison rows will say so)')"

# ---- build ---------------------------------------------------------------------
if [ -n "$MISSING" ]; then
    note "FAIL missing on this machine:$MISSING (the build needs them): stopping"
    failed=1
    exit 1
fi
DLTRAIN=$BUILD/launch/dltrain
OPS=$BUILD/tests/test_cuda_ops
if [ "$DRY_RUN" = 1 ]; then # the build already there: configuring it would change its cache
    if [ ! -x "$DLTRAIN" ] || [ ! -x "$OPS" ]; then
        note "FAIL dry run: no CUDA build in $BUILD (dltrain and tests/test_cuda_ops): stopping"
        failed=1
        exit 1
    fi
    note "DRY RUN on the build in $BUILD: every step runs and fails for want of a GPU;" \
         "only wrong command lines count"
else
    step configure 90 configure.log cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
        -DDLTRAIN_CUDA_ARCHS="$ARCHS" -DDLTRAIN_WERROR=ON ${CMAKE_EXTRA[@]+"${CMAKE_EXTRA[@]}"} ||
        { note "cannot configure: stopping"; exit 1; }
    grep -E "^-- +(CUDA|NCCL|cuDNN|MPI) " "$WORK/configure.log" | sed 's/^-- *//' | indent >/dev/null
    if ! grep -qE "^-- +CUDA +: ON" "$WORK/configure.log"; then
        note "FAIL configure did not find CUDA: no GPU test can run (see configure.log): stopping"
        failed=1
        exit 1
    fi
    # A newer host compiler than CI's may warn where gcc 12 does not: with
    # -Werror that would end the one GPU run before any GPU test.  The
    # failure stands (the warnings are in build.log), and the build goes on
    # without -Werror so the GPU is still checked.
    if ! step "build (sm_$ARCHS, $JOBS jobs)" 300 build.log cmake --build "$BUILD" -j"$JOBS"; then
        grep -m3 -E "warning|error" "$WORK/build.log" | indent >/dev/null
        note "retrying without -Werror (the failure above stands)"
        if ! step "configure without -Werror" 60 configure-nowerror.log cmake "$BUILD" \
                -DDLTRAIN_WERROR=OFF ||
            ! step "build without -Werror" 240 build-nowerror.log cmake --build "$BUILD" -j"$JOBS"; then
            note "build failed: stopping"
            exit 1
        fi
    fi
fi

# ---- correctness: every CUDA op and a whole step against the CPU reference ---
# DLTRAIN_REQUIRE_GPU=1 turns "no GPU" into a failure; the count below turns
# "no GPU test found" (a configure without CUDA) into one as well.
# Without a GPU the tests run anyway (they say why they skip), then the check stops.
CTEST_GPU=(ctest --test-dir "$BUILD" -L gpu -E gpu_train)
if [ "$DRY_RUN" = 1 ]; then # list only: every test's own command line is CI's (each would exit 2)
    step "ctest -L gpu (the selection, listed)" 30 ctest-gpu.log "${CTEST_GPU[@]}" -N
    listed=$(grep -cE "Test +#[0-9]+: gpu_" "$WORK/ctest-gpu.log")
    note "    ctest -L gpu -E gpu_train selects $listed test(s)"
    [ "$listed" -gt 0 ] || { note "FAIL dry run: ctest -L gpu selects no test"; failed=1; }
else
    step "ctest -L gpu (ops, chunked convolution, whole-network steps vs CPU)" 180 ctest-gpu.log \
        env DLTRAIN_REQUIRE_GPU=$HAVE_GPU "${CTEST_GPU[@]}" -j 4 --output-on-failure --timeout 170
fi
grep -E "tests passed|Skipped|Failed|\*\*\*" "$WORK/ctest-gpu.log" | indent >/dev/null
# tests that did not skip (a failure counts: it ran, and fails the check anyway)
[ "$DRY_RUN" = 1 ] ||
    gpu_tests_ran=$(grep -E "Test +#[0-9]+: gpu_" "$WORK/ctest-gpu.log" | grep -cv "Skipped")
grep -hE "^device under test|checks, [0-9]+ failed; worst" "$WORK/ctest-gpu.log" 2>/dev/null |
    sort -u | head -4 | indent >/dev/null
if [ "$gpu_tests_ran" -eq 0 ] && [ "$DRY_RUN" != 1 ]; then
    note "FAIL no GPU test ran (every one skipped, or none found); the op test says:" \
         "$(timeout 30 "$OPS" sgd 2>&1 | head -1)"
    failed=1
fi
if [ "$HAVE_GPU" = 0 ] && [ "$DRY_RUN" != 1 ]; then
    note "FAIL no GPU on this machine (nvidia-smi lists none): the other steps need one; stopping"
    failed=1
    exit 1
fi

# ---- lenet on Fashion-MNIST, one epoch, GPU then CPU (same seed) ------------
# A dry run trains the CPU reference for a few steps only: the command line is what it checks.
LENET_DRY=()
[ "$DRY_RUN" = 1 ] && LENET_DRY=(--max-steps 3)
DRY_STEPS_EXPECTED=10
if [ -f "$DATA/train-images-idx3-ubyte.gz" ] || [ -f "$DATA/train-images-idx3-ubyte" ]; then
    DRY_STEPS_EXPECTED=12
    # The GPU run takes the defaults a user gets (--precision auto: TF32
    # convolutions, by cuDNN where it loads); the log's device and conv lines say which.
    step "lenet Fashion-MNIST 1 epoch on cuda (default precision and convolutions)" 120 \
        lenet-cuda.log "$DLTRAIN" train --device cuda --model lenet --data "$DATA" --epochs 1 \
        --out "$WORK/lenet-cuda" --no-progress --json "$WORK/lenet-cuda.jsonl" ${LENET_DRY[@]+"${LENET_DRY[@]}"}
    grep -E "^  (device|conv)|per step|final test accuracy" "$WORK/lenet-cuda.log" | indent >/dev/null
    step "lenet Fashion-MNIST 1 epoch on cpu (the reference)" 120 lenet-cpu.log \
        "$DLTRAIN" train --device cpu --model lenet --data "$DATA" --epochs 1 \
        --out "$WORK/lenet-cpu" --no-progress --json "$WORK/lenet-cpu.jsonl" ${LENET_DRY[@]+"${LENET_DRY[@]}"}
    grep -E "final test accuracy" "$WORK/lenet-cpu.log" | indent >/dev/null
    acc() { grep -oE "final test accuracy [0-9.]+" "$WORK/$1" | grep -oE "[0-9.]+$"; }
    acc_cuda=$(acc lenet-cuda.log) acc_cpu=$(acc lenet-cpu.log)
    note "lenet 1 epoch, same seed: cuda ${acc_cuda:-?}% (precision auto), cpu ${acc_cpu:-?}%" \
         "(fp32); rounding differs, so close, not equal: more than $ACC_GAP points apart fails"
    if [ -n "$acc_cuda" ] && [ -n "$acc_cpu" ] &&
        ! awk -v a="$acc_cuda" -v b="$acc_cpu" -v g="$ACC_GAP" 'BEGIN { d = a - b; exit !(d <= g && -d <= g) }'; then
        note "FAIL lenet: the GPU's accuracy is more than $ACC_GAP points from the CPU's"
        failed=1
    fi
else
    note "FAIL lenet Fashion-MNIST: no data in $DATA (fill .devdata as the header says)"
    failed=1
fi

# ---- dltrain beside PyTorch on this GPU -------------------------------------
BENCH_CASES=resnet50:128:bf16,resnet50:128:tf32,resnet20:128:fp32,lenet:128:fp32
# the dry run checks the command lines with one case: each case starts
# PyTorch (seconds to import on a loaded 2-core CI machine) only to fail
[ "$DRY_RUN" = 1 ] && BENCH_CASES=lenet:128:fp32
step "bench train beside PyTorch (resnet50 224 b128 bf16 + tf32, resnet20 + lenet 28x28)" 240 \
    bench.log "$PYTHON" "$ROOT/scripts/bench_compare_gpu.py" --dltrain "$DLTRAIN" \
    --python "$PYTHON" --json "$WORK/bench.json" --steps 10 --warmup 3 --repeats 1 --timeout 100 \
    --cases "$BENCH_CASES"
indent <"$WORK/bench.log" >/dev/null

# ---- NCCL with one rank: communicator, streams, events, watchdog, log ------
step "train --comm nccl, one rank (resnet20, 30 steps)" 60 nccl-one-rank.log \
    "$DLTRAIN" train --device cuda --comm nccl --model resnet20 --data synthetic:3x32x32:10 \
    --epochs 1 --max-steps 30 --out "$WORK/nccl-run" --no-progress
grep -E "comm|NCCL|final" "$WORK/nccl-one-rank.log" | head -6 | indent >/dev/null
step "bench allreduce --backend nccl, one rank" 45 allreduce-nccl.log \
    "$DLTRAIN" bench allreduce --device cuda --backend nccl --max-bytes 67108864 \
    --json "$WORK/allreduce-nccl.json"
grep -iE "nccl|transport|^ +[0-9]+ " "$WORK/allreduce-nccl.log" | tail -4 | indent >/dev/null

# ---- compute-sanitizer memcheck on the op tests (family by family) -----------
# (a loop in its own shell: `timeout` runs programs, not functions)
# shellcheck disable=SC2016  # expanded by the inner shell
# Usage: bash -c "$MEMCHECK_LOOP" memcheck OPS RUNNER...: each family run as
# RUNNER... OPS -k 65536 FAMILY (several convolution chunks, as full-size models).
MEMCHECK_LOOP='rc=0
ops=$1
shift
for fam in elementwise bias gemm conv maxpool avgpool bn xent sgd; do
    echo "== $fam"
    "$@" "$ops" -k 65536 "$fam" || rc=1
done
exit $rc'
MEMCHECK=("$SANITIZER" --tool memcheck --error-exitcode 3 --leak-check full)
[ -z "$SANITIZER" ] && [ "$DRY_RUN" = 1 ] && MEMCHECK=(env) # the op test's command lines alone
if [ -n "$SANITIZER" ] || [ "$DRY_RUN" = 1 ]; then
    step "compute-sanitizer memcheck, op tests" 150 memcheck.log \
        bash -c "$MEMCHECK_LOOP" memcheck "$OPS" "${MEMCHECK[@]}"
    grep -E "ERROR SUMMARY|^== " "$WORK/memcheck.log" | paste -sd ' ' | indent >/dev/null
else
    note "SKIP compute-sanitizer memcheck: compute-sanitizer not found"
fi

# ---- copies, topology, scale --------------------------------------------------
step "bench copy" 40 copy.log "$DLTRAIN" bench copy --json "$WORK/copy.json"
indent <"$WORK/copy.log" >/dev/null
step "topo" 30 topo.log "$DLTRAIN" topo
indent <"$WORK/topo.log" >/dev/null
{
    echo "== nvidia-smi topo -m"; nvidia-smi topo -m
    echo "== lspci -vv link lines of NVIDIA devices"
    lspci -vv -d 10de: 2>&1 | grep -E "^[0-9a-f]|LnkCap:|LnkSta:"
} >"$WORK/topo-peers.log" 2>&1
note "beside it (topo-peers.log):"
indent <"$WORK/topo-peers.log" >/dev/null
step "scale --device cuda, one rank (GPU phase times from events)" 60 scale.log \
    "$DLTRAIN" scale --device cuda --model resnet20 --data synthetic:3x32x32:10 --batch 128 \
    --steps 10 --repeats 2 --json "$WORK/scale.json"
grep -E "images/s|ms" "$WORK/scale.log" | head -6 | indent >/dev/null

# ---- the codecs' time per step on the GPU (bench train --compress), ResNet-50's
# layers: onebit per layer launches its kernels run by run, which only a GPU can price
# shellcheck disable=SC2016  # expanded by the inner shell
CODEC_LOOP='rc=0
work=$1
shift
for kind in onebit int8 powersgd:4; do
    "$@" --compress "$kind" --json "$work/codec-${kind/:/-}.json" || rc=1
done
exit $rc'
step "bench train --device cuda --compress onebit, int8, powersgd:4 (resnet50 b64: codec ms per step)" \
    90 codec.log bash -c "$CODEC_LOOP" codec "$WORK" "$DLTRAIN" bench train --device cuda \
    --model resnet50 --data synthetic:3x224x224:1000 --batch 64 --steps 5 --repeats 3 --warmup 2
grep -E "images/s|--compress" "$WORK/codec.log" | indent >/dev/null

# ---- whatever time is left: whole training runs vs the CPU (tests/test_gpu_train.py)
if [ "$DRY_RUN" = 1 ]; then
    step "ctest gpu_train, gpu_train_compress (the selection, listed)" 30 ctest-gpu-train.log \
        ctest --test-dir "$BUILD" -R '^gpu_train(_compress)?$' -N
    [ "$(grep -cE 'Test +#[0-9]+: gpu_train' "$WORK/ctest-gpu-train.log")" = 2 ] ||
        { note "FAIL dry run: -R '^gpu_train(_compress)?$' does not select the 2 tests"; failed=1; }
    # every step above must have left its line (a step lost to a flow bug is not checked)
    [ "$dry_steps" -ge "$DRY_STEPS_EXPECTED" ] ||
        { note "FAIL dry run: $dry_steps steps ran, $DRY_STEPS_EXPECTED expected"; failed=1; }
    exit $failed
fi
OPTIONAL=1 step \
    "ctest gpu_train, gpu_train_compress (training runs vs CPU, nccl, tf32, bf16, --compress)" \
    400 ctest-gpu-train.log env DLTRAIN_REQUIRE_GPU=1 ctest --test-dir "$BUILD" \
    -R '^gpu_train(_compress)?$' --output-on-failure
grep -E "^(ok|FAIL)|tests passed" "$WORK/ctest-gpu-train.log" | indent >/dev/null
[ "$gpu_tests_ran" -gt 0 ] || failed=1
exit $failed
