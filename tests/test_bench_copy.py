#!/usr/bin/env python3
"""`dltrain bench copy`: with a GPU, a row per GPU with four positive
bandwidths (and JSON to match); without one (or without CUDA in the build),
one clear line and exit status 1.  Bad options are refused either way."""
import json
import os
import subprocess
import sys
import tempfile

dltrain = sys.argv[1]
work = tempfile.mkdtemp(prefix="dltrain-copy-")
out = os.path.join(work, "copy.json")
p = subprocess.run([dltrain, "bench", "copy", "--bytes", str(16 << 20), "--iters", "5",
                    "--json", out], capture_output=True, text=True, timeout=300)
failures = []
if p.returncode == 0:
    d = json.load(open(out))
    if not d["gpus"]:
        failures.append("exit 0 but no GPU measured")
    for g in d["gpus"]:
        for case in ("h2d_pinned", "d2h_pinned", "h2d_pageable", "d2h_pageable"):
            if not g[f"{case}_gbps"] > 0:
                failures.append(f"GPU {g['gpu']}: {case} is {g[f'{case}_gbps']}")
        if g["link_gbps"] > 0 and g["h2d_pinned_gbps"] > 1.05 * g["link_gbps"]:
            failures.append(f"GPU {g['gpu']}: pinned H2D above the link's rating: {g}")
    print(p.stdout)
else:
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    if p.returncode != 1 or len(lines) != 1 or not (
            "no CUDA GPU" in lines[0] or "built without CUDA" in lines[0]):
        failures.append(f"without a GPU: exit {p.returncode}, stderr {p.stderr!r}")
    else:
        print(f"no GPU here: {lines[0]}")
for args, words in ((["--bytes", "1"], "--bytes"), (["--iters", "0"], "--iters"),
                    (["--nonsense"], "nonsense")):
    q = subprocess.run([dltrain, "bench", "copy"] + args, capture_output=True, text=True,
                       timeout=60)
    if q.returncode != 2 or words not in q.stderr:
        failures.append(f"{args}: exit {q.returncode}, stderr {q.stderr!r}")
for f in failures:
    print("FAIL", f)
sys.exit(1 if failures else 0)
