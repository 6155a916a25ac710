#!/usr/bin/env python3
"""scripts/ab_compare.py: the same `dltrain scale` run under two environments.

On CPU ranks the NCCL variable changes nothing measurable, so this checks the
mechanics a user relies on with GPUs: both runs happen, run B (and only B)
records the variable, the comparison is computed from the two runs' own
figures, and misuse is refused with a message."""
import json
import os
import subprocess
import sys
import tempfile

script, dltrain, mpiexec = sys.argv[1], sys.argv[2], sys.argv[3]
env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
env.pop("NCCL_P2P_DISABLE", None)
work = tempfile.mkdtemp(prefix="dltrain-ab-")
out = os.path.join(work, "ab.json")
cmd = [sys.executable, script, "--set", "NCCL_P2P_DISABLE=1", "--json", out, "--",
       mpiexec, "--oversubscribe", "-np", "2", dltrain, "scale", "--batch", "8", "--steps", "3",
       "--repeats", "2", "--warmup", "1", "--sweep-max-mb", "0"]
proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
assert proc.returncode == 0, proc.stdout + proc.stderr
d = json.load(open(out))
assert d["b_env"] == {"NCCL_P2P_DISABLE": "1"}, d["b_env"]
assert d["a"]["env"].get("NCCL_P2P_DISABLE") is None, d["a"]["env"]
assert d["b"]["env"].get("NCCL_P2P_DISABLE") == "1", d["b"]["env"]
rows = d["comparison"]
assert [r["key"] for r in rows] == [1, 2], rows
for r, pa, pb in zip(rows, d["a"]["points"], d["b"]["points"]):
    assert r["a"] == pa["images_per_s"] and r["b"] == pb["images_per_s"], r
    assert abs(r["change_percent"] - (pb["images_per_s"] / pa["images_per_s"] - 1) * 100) < 1e-9
assert "NCCL_P2P_DISABLE=1" in proc.stdout and "B vs A" in proc.stdout, proc.stdout

for bad, why in ((["--", dltrain, "scale"], "at least one --set"),
                 (["--set", "NOEQUALS", "--", dltrain, "scale"], "NAME=VALUE"),
                 (["--set", "A=1", "--", dltrain, "scale", "--json", "x"], "leave --json out"),
                 (["--set", "A=1"], "give the command")):
    p = subprocess.run([sys.executable, script] + bad, env=env, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode != 0 and why in p.stderr, (bad, p.returncode, p.stderr)
print("ab_compare: both runs recorded, comparison consistent, misuse refused")
