#!/usr/bin/env python3
"""Merge the per-rank traces of `dltrain train --trace DIR` into one file, so
every rank shows as its own process on one timeline (Perfetto opens one file
at a time).  Ranks on one machine share its monotonic clock, so their events
line up; ranks on different machines do not share a clock.

usage: trace_merge.py DIR [OUT]     (OUT defaults to DIR/trace-all-ranks.json)"""
import glob
import json
import os
import sys


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    folder = sys.argv[1]
    out = sys.argv[2] if len(sys.argv) == 3 else os.path.join(folder, "trace-all-ranks.json")
    paths = sorted(glob.glob(os.path.join(folder, "trace-rank-*.json")))
    if not paths:
        sys.exit(f"trace_merge: no trace-rank-*.json in {folder}")
    events = []
    for path in paths:
        with open(path) as f:
            events += json.load(f)["traceEvents"]
    with open(out, "w") as f:
        json.dump({"displayTimeUnit": "ms", "traceEvents": events}, f)
    print(f"{out}: {len(paths)} ranks, {len(events)} events")


if __name__ == "__main__":
    main()
