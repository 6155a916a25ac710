#!/usr/bin/env bash
# Speed of gradient compression on a bandwidth-limited link: `dltrain scale`
# with each --compress on a virtual cluster (scripts/vcluster.sh) of HOSTS
# hosts with one rank each, every link shaped to RATE, so every byte of the
# gradient exchange crosses a RATE link.  Then `dltrain predict` for the same
# rows (the 1-rank compute time measured by scale, --net RATE, --compress-ms
# cpu).  Prints a markdown table; the JSON files stay in OUT_DIR.
#   scripts/compress_speed.sh [OUT_DIR]
# Environment: DLTRAIN (build/launch/dltrain), HOSTS (4), RATE (1gbit),
# MODEL (lenet), BATCH (16 per rank: compute short against the link), STEPS (10), REPEATS (3),
# KINDS (default "none fp16 bf16 int8 onebit powersgd:4").
# Needs root (network namespaces) and Open MPI.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-compress-speed}
bin=$(readlink -f "${DLTRAIN:-build/launch/dltrain}")
hosts=${HOSTS:-4}
rate=${RATE:-1gbit}
model=${MODEL:-lenet}
batch=${BATCH:-16}
steps=${STEPS:-10}
repeats=${REPEATS:-3}
kinds=${KINDS:-none fp16 bf16 int8 onebit powersgd:4}
sizes=1,2
[ "$hosts" -ge 4 ] && sizes=1,2,4
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mkdir -p "$out"
out=$(readlink -f "$out")
for kind in $kinds; do
    tag=${kind//:/-}
    [ -s "$out/$tag.json" ] && continue
    echo "== scale --compress $kind: $hosts hosts x 1 rank, links of $rate" >&2
    scripts/vcluster.sh run --hosts "$hosts" --slots 1 --rate "$rate" -- \
        sh -c "\$VCLUSTER_MPIRUN -np $hosts $bin scale --model $model --batch $batch \
               --threads 1 --steps $steps --repeats $repeats --sizes $sizes \
               --compress $kind --json $out/$tag.json" > "$out/$tag.log" 2>&1
done
python3 - "$out" "$bin" "$rate" "$model" "$batch" "$hosts" $kinds <<'PY'
import json, subprocess, sys
out, dltrain, rate, model, batch, hosts, kinds = sys.argv[1:7] + [sys.argv[7:]]
print(f"| --compress | ranks | images/s | speedup measured | scale's predicted | "
      f"predict --net {rate} | MB on the wire per rank per step |")
print("|---|---|---|---|---|---|---|")
for kind in kinds:
    doc = json.load(open(f"{out}/{kind.replace(':', '-')}.json"))
    points = {p["ranks"]: p for p in doc["points"]}
    one = points[1]
    counts = sorted(r for r in points if r > 1)
    args = [dltrain, "predict", "--model", model, "--batch", batch, "--step-ms",
            f"{one['step_ms']:.6g}", "--nodes", str(max(counts)), "--net", rate,
            "--gpus", ",".join(map(str, counts)), "--json", "-"]
    if kind != "none":
        args += ["--compress", kind, "--compress-ms", "cpu"]
    pred = json.loads(subprocess.run(args, capture_output=True, text=True, check=True).stdout)
    rows = {r["gpus"]: r for r in pred["rows"]}
    params = doc["params"]
    for n in counts:
        p = points[n]
        wire = rows[n]["wire_factor"] * 2 * (n - 1) / n * 4 * params / 1e6
        print(f"| {kind} | {n} | {p['images_per_s']:.1f} | {p['speedup']:.2f}x | "
              f"{p['predicted_speedup']:.2f}x | {rows[n]['speedup']:.2f}x | {wire:.3f} |")
PY
