#!/usr/bin/env bash
# Accuracy of gradient compression: Fashion-MNIST, MODEL (lenet), the same seed and
# settings with each --compress, on NP ranks (default 2), one after another.
# Prints markdown tables of every run in OUT_DIR (not only this call's
# KINDS, so calls with other KINDS or WARMUP add rows to one table): final
# test accuracy against --compress none with the issue's goal, and the test
# accuracy after each epoch.
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
python3 - "$out" "$model" "$np" "$epochs" <<'PY'
import json, os, sys
out, model, np_, epochs = sys.argv[1:5]
order = ["none", "fp16", "bf16", "int8", "onebit", "powersgd-1", "powersgd-2", "powersgd-3",
         "powersgd-4"]
goal = {"fp16": 0.5, "bf16": 0.5, "int8": 0.5, "onebit": 1.0, "powersgd-4": 0.5}

def load(tag):
    run = {"acc": None, "comp": None, "epochs": []}
    for line in open(f"{out}/{tag}.json"):
        r = json.loads(line)
        if r.get("type") == "final":
            run["acc"] = 100.0 * r["test_acc"]
        elif r.get("type") == "compression":
            run["comp"] = r
        elif r.get("type") == "epoch":
            run["epochs"].append(100.0 * r["test_acc"])
    return run

runs = {t: load(t) for t in order if os.path.exists(f"{out}/{t}.json")}
runs = {t: r for t, r in runs.items() if r["acc"] is not None}
if "none" not in runs:
    sys.exit(f"compress_accuracy: no finished --compress none run in {out}")
base = runs["none"]["acc"]
fp32 = next((r["comp"]["fp32_wire_bytes_per_step"] for r in runs.values() if r["comp"]), None)

def label(tag, r):
    name = tag.replace("-", ":")
    steps = r["comp"]["uncompressed_steps"] if r["comp"] else 0
    return f"{name}, first {steps} steps uncompressed" if steps else name

print(f"{model}, {epochs} epochs, {np_} ranks, seed 1\n")
print("| --compress | test accuracy | vs none | goal | MB on the wire per rank per step | "
      "compression ratio |")
print("|---|---|---|---|---|---|")
for tag, r in runs.items():
    gap = r["acc"] - base
    if tag == "none":
        wire = f"{fp32 / 1e6:.3f} (fp32 all-reduce)" if fp32 else "(fp32 all-reduce)"
        print(f"| none | {r['acc']:.2f}% | | | {wire} | 1 |")
        continue
    g = goal.get(tag)
    verdict = f"within {g:g}: {'met' if gap >= -g else 'missed'}" if g else ""
    c = r["comp"]
    print(f"| {label(tag, r)} | {r['acc']:.2f}% | {gap:+.2f} | {verdict} | "
          f"{c['wire_bytes_per_step'] / 1e6:.3f} | {c['compression_ratio']:.2f} |")
print("\n| epoch | " + " | ".join(t.replace("-", ":") for t in runs) + " |")
print("|---|" + "---|" * len(runs))
for e in range(max(len(r["epochs"]) for r in runs.values())):
    cells = [f"{r['epochs'][e]:.2f}" if e < len(r["epochs"]) else "" for r in runs.values()]
    print(f"| {e + 1} | " + " | ".join(cells) + " |")
PY
