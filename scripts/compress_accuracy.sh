#!/usr/bin/env bash
# Accuracy of gradient compression: Fashion-MNIST lenet, the same seed and
# settings with each --compress, on NP ranks (default 2), one after another.
# Prints a markdown table of final test accuracy against --compress none.
#   scripts/compress_accuracy.sh [OUT_DIR]
# Environment: DLTRAIN (binary, default build/launch/dltrain), NP (2),
# EPOCHS (5), MODEL (lenet), THREADS (threads per rank, 1),
# KINDS (default "none fp16 bf16 int8 onebit powersgd:4"),
# WARMUP (--compress-warmup EPOCHS for every KIND but none, default 0).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-compress-accuracy}
bin=${DLTRAIN:-build/launch/dltrain}
np=${NP:-2}
epochs=${EPOCHS:-5}
model=${MODEL:-lenet}
threads=${THREADS:-1}
kinds=${KINDS:-none fp16 bf16 int8 onebit powersgd:4}
warmup=${WARMUP:-0}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mkdir -p "$out"
for kind in $kinds; do
    tag=${kind//:/-}
    extra=()
    [ "$kind" != none ] && [ "$warmup" != 0 ] && extra=(--compress-warmup "$warmup")
    [ -s "$out/$tag.json" ] && grep -q '"type":"final"' "$out/$tag.json" && continue
    echo "== $model, $np ranks, --compress $kind" >&2
    mpirun --oversubscribe -np "$np" "$bin" train --model "$model" --epochs "$epochs" --seed 1 \
        --threads "$threads" --compress "$kind" "${extra[@]}" --no-progress --out "$out/run-$tag" \
        --json "$out/$tag.json" > "$out/$tag.log" 2>&1
done
python3 - "$out" "$model" "$np" "$epochs" "$warmup" $kinds <<'PY'
import json, sys
out, model, np_, epochs, warmup, kinds = sys.argv[1:6] + [sys.argv[6:]]
def final(kind):
    acc, comp = None, None
    for line in open(f"{out}/{kind.replace(':', '-')}.json"):
        r = json.loads(line)
        if r.get("type") == "final":
            acc = 100.0 * r["test_acc"]
        if r.get("type") == "compression":
            comp = r
    return acc, comp
base, _ = final("none")
warm = f", first {warmup} uncompressed" if warmup != "0" else ""
print(f"| --compress | test accuracy ({model}, {epochs} epochs{warm}, {np_} ranks) | vs none | "
      "MB on the wire per rank per step | compression ratio |")
print("|---|---|---|---|---|")
for kind in kinds:
    acc, comp = final(kind)
    wire = f"{comp['wire_bytes_per_step'] / 1e6:.3f}" if comp else "(fp32 all-reduce)"
    ratio = f"{comp['compression_ratio']:.2f}" if comp else "1"
    print(f"| {kind} | {acc:.2f}% | {acc - base:+.2f} | {wire} | {ratio} |")
PY
