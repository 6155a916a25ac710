"""`dltrain predict` against published measurements: the validation table of
docs/scaling.md, command by command.

usage: test_predict_validation.py DLTRAIN SCALING_MD

For every row of the table it runs the exact `dltrain predict` command shown
(with --json -), and fails when
  - a predicted speedup differs from the one the table prints by > 0.002
    (the model changed: update the table, or find the regression),
  - |predicted - measured| / measured exceeds the row's bound, or
  - the prediction falls more than 5% below the measurement (the model is
    documented as an upper bound).
The measured figures come from the sources the document names."""
import json
import re
import shlex
import subprocess
import sys

DLTRAIN, DOC = sys.argv[1], sys.argv[2]
FAILURES = []
HEADER = "| case | command | measured 2 / 4 / 8 | predicted 2 / 4 / 8 | error 2 / 4 / 8 | bound |"


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + str(detail) if detail else ''}")
    if not ok:
        FAILURES.append(name)
    return ok


def table_rows(text):
    lines = text.splitlines()
    if HEADER not in lines:
        return []
    rows = []
    for line in lines[lines.index(HEADER) + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def triple(cell):
    return [float(v.strip().rstrip("%")) for v in cell.split("/")]


def main():
    rows = table_rows(open(DOC, encoding="utf-8").read())
    check("validation table found with cases", len(rows) >= 4, f"{len(rows)} rows")
    for case, command, measured, predicted, error, bound in rows:
        cmd = shlex.split(command.strip("`"))
        if not check(f"{case}: a dltrain predict command", cmd[:2] == ["dltrain", "predict"], cmd):
            continue
        p = subprocess.run([DLTRAIN] + cmd[1:] + ["--json", "-"], capture_output=True,
                           text=True, timeout=60)
        if not check(f"{case}: exits 0", p.returncode == 0, p.stderr.strip()):
            continue
        got = {r["gpus"]: r["speedup"] for r in json.loads(p.stdout)["rows"]}
        meas, want, err_doc = triple(measured), triple(predicted), triple(error)
        limit = float(bound.rstrip("%"))
        for n, m, w, e in zip((2, 4, 8), meas, want, err_doc):
            s = got.get(n)
            if not check(f"{case} {n} GPUs: predicted", s is not None and abs(s - w) <= 0.002,
                         f"{s} vs documented {w}"):
                continue
            err = 100 * (s - m) / m
            check(f"{case} {n} GPUs: error {err:+.1f}% as documented", abs(err - e) <= 0.1,
                  f"documented {e:+.1f}%")
            check(f"{case} {n} GPUs: |error| <= {limit:g}%", abs(err) <= limit, f"{err:+.1f}%")
            check(f"{case} {n} GPUs: not more than 5% below the measurement", err >= -5,
                  f"{err:+.1f}%")
    if FAILURES:
        print(f"{len(FAILURES)} check(s) failed")
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
