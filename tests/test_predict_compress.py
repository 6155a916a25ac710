"""`dltrain predict --compress` (docs/compression.md, "What predict says").

The wire factor is worked out here from the formats' byte counts and the
collectives' ring costs, independently of the C code; the step model must
charge exactly that many bytes, the given compression time, and nothing
else.  PowerSGD with --model goes per layer over lenet's weight matrices
(their layout written out here by hand), and so does onebit (each tensor
its own run of blocks, those under 4096 values exact); with --grad-mb alone
each bucket is folded into one matrix, or one run of onebit's blocks.

usage: test_predict_compress.py DLTRAIN"""
import json
import math
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import check, close, exit_code  # noqa: E402

DLTRAIN = sys.argv[1]
LENET_PARAMS = 857738
BUCKET_MB = 1.0  # 262144 floats: 3 full buckets and one of 71306
BLOCK = 256
# lenet's flat gradients, last layer first, each layer on 64 floats:
# fc2 10 x 256 (+ 10 bias) at 0, fc1 256 x 3136 at 2624, conv2 64 x 800 at
# 805696, conv1 32 x 25 at 856960, 857792 floats with padding.
LENET_MATRICES = [(0, 10, 256), (2624, 256, 3136), (805696, 64, 800), (856960, 32, 25)]
LENET_LAYOUT = 857792


def run(*args):
    return subprocess.run([DLTRAIN, "predict"] + [str(a) for a in args], capture_output=True,
                          text=True, timeout=120)


def round8(b):
    return (b + 7) // 8 * 8


def payload(kind, n, rank=4):
    """Bytes one rank contributes for a bucket of n floats."""
    blocks = (n + BLOCK - 1) // BLOCK
    if kind in ("fp16", "bf16"):
        return round8(2 * n)
    if kind == "int8":
        return round8(4 * blocks + n)
    if kind == "onebit":
        return round8(8 * blocks + (n + 7) // 8)
    if kind == "powersgd":
        m = math.isqrt(n - 1) + 1 if n > 1 else 1  # ceil(sqrt(n))
        k = (n + m - 1) // m
        return 4 * n if (m + k) * rank >= n else 4 * (m + k) * rank
    return 4 * n


def per_layer_floats(lo, n, rank):
    """Floats one rank sends for bucket [lo, lo + n) of lenet with per-layer
    PowerSGD: a matrix with (rows + cols) rank 2 < rows cols goes as its P
    and Q, whole, with the bucket it starts in (its values in later buckets
    are not sent again); everything else as plain floats."""
    sent = n
    for off, rows, cols in LENET_MATRICES:
        inside = min(off + rows * cols, lo + n) - max(off, lo)
        if inside > 0 and (rows + cols) * rank * 2 < rows * cols:
            sent -= inside
            if lo <= off:
                sent += (rows + cols) * rank
    return sent


EXACT_BELOW = 4096


def lenet_tensors():
    """lenet's tensors in offset order: each weight matrix, and the vectors
    (biases and padding) between two matrices or after the last, as one."""
    tensors, vectors_from = [], 0
    for off, rows, cols in LENET_MATRICES:
        if off > vectors_from:
            tensors.append((vectors_from, off))
        tensors.append((off, off + rows * cols))
        vectors_from = off + rows * cols
    if vectors_from < LENET_LAYOUT:
        tensors.append((vectors_from, LENET_LAYOUT))
    return tensors


def onebit_per_layer_bytes(lo, n):
    """Bytes one rank sends for bucket [lo, lo + n) of lenet with per-layer
    onebit: each tensor's part in the bucket is its own run of blocks, or
    exact fp32 when the whole tensor has fewer than EXACT_BELOW values
    (exact runs side by side are one run); each run's bytes rounded to 8."""
    runs = []  # [exact, values]
    for t_lo, t_hi in lenet_tensors():
        inside = min(t_hi, lo + n) - max(t_lo, lo)
        if inside <= 0:
            continue
        exact = t_hi - t_lo < EXACT_BELOW
        if exact and runs and runs[-1][0]:
            runs[-1][1] += inside
        else:
            runs.append([exact, inside])
    return sum(round8(4 * v) if exact else payload("onebit", v) for exact, v in runs)


def wire(kind, world, sizes):
    gathers = kind in ("fp16", "bf16", "int8", "onebit")
    total = sum(payload(kind, n) for n in sizes)
    return (world - 1) * total if gathers else 2 * (world - 1) / world * total


def predict_json(*extra):
    r = run("--model", "lenet", "--batch", 64, "--step-ms", 40, "--link", "eth-10g",
            "--alpha-us", 0, "--bucket-mb", BUCKET_MB, "--gpus", "1,2,4,8", "--json", "-", *extra)
    if r.returncode != 0:
        check(f"predict {' '.join(map(str, extra))} runs", False, r.stderr.strip())
        return None
    return json.loads(r.stdout)


def rows_by_gpus(doc):
    return {row["gpus"]: row for row in doc["rows"]}


def check_wire():
    bucket = int(BUCKET_MB * 1048576 / 4)
    sizes = [bucket] * (LENET_PARAMS // bucket) + [LENET_PARAMS % bucket]
    plain = rows_by_gpus(predict_json())
    bucket_layout = [bucket] * (LENET_LAYOUT // bucket) + [LENET_LAYOUT % bucket]
    lows = [sum(bucket_layout[:i]) for i in range(len(bucket_layout))]
    for kind in ("fp16", "bf16", "int8", "onebit", "powersgd"):
        doc = predict_json("--compress", kind, "--compress-ms", "0")
        if not doc:
            continue
        check(f"{kind}: the JSON names the compressor",
              doc["machine"] is None and doc.get("compress") == ("powersgd:4" if kind ==
                                                                  "powersgd" else kind))
        rows = rows_by_gpus(doc)
        for n in (2, 4, 8):
            want = wire(kind, n, sizes) / wire("none", n, sizes)
            if kind == "powersgd":  # per layer; both all-reduces, so floats over floats
                want = sum(per_layer_floats(lo, b, 4) for lo, b in zip(lows, bucket_layout)) \
                    / LENET_LAYOUT
            if kind == "onebit":  # per layer; all-gather against fp32's all-reduce
                sent = sum(onebit_per_layer_bytes(lo, b) for lo, b in zip(lows, bucket_layout))
                want = (n - 1) * sent / (2 * (n - 1) / n * 4 * LENET_LAYOUT)
            got = rows[n]["wire_factor"]
            check(f"{kind} at {n} GPUs: wire factor {got:.6f} = {want:.6f}", close(got, want))
            # alpha 0: the comm time is the bytes over the link, so it scales exactly
            check(f"{kind} at {n} GPUs: comm {rows[n]['comm_ms']:.4f} ms = factor x fp32's",
                  close(rows[n]["comm_ms"], want * plain[n]["comm_ms"], 1e-5))
            check(f"{kind} at {n} GPUs: as many buckets as fp32",
                  rows[n]["buckets"] == plain[n]["buckets"])
        check(f"{kind}: one GPU sends nothing and pays nothing",
              rows[1]["wire_factor"] == 1 and rows[1]["compress_ms"] == 0 and
              rows[1]["step_ms"] == plain[1]["step_ms"])
    check("powersgd with --model: per layer", doc and doc.get("powersgd") == "per_layer")
    doc = predict_json("--compress", "onebit", "--compress-ms", "0")
    check("onebit with --model: per layer", doc and doc.get("onebit") == "per_layer")
    # --grad-mb alone has no layers: each bucket folded into one matrix, or
    # one run of onebit's blocks
    check_grad_mb("powersgd", "folded", sizes)
    check_grad_mb("onebit", "blocks", sizes)


def check_grad_mb(kind, how, sizes):
    """predict --grad-mb (no layers): the JSON says `how` under the
    compressor's name, and the wire factor is the whole-bucket formula's."""
    grad_mb = repr(LENET_PARAMS * 4 / 1048576)  # exact: a binary fraction
    r = run("--grad-mb", grad_mb, "--batch", 64, "--step-ms", 40, "--link", "eth-10g",
            "--alpha-us", 0, "--bucket-mb", BUCKET_MB, "--gpus", "1,2,4,8", "--json", "-",
            "--compress", kind, "--compress-ms", "0")
    check(f"predict --grad-mb --compress {kind} runs", r.returncode == 0, r.stderr.strip())
    if r.returncode != 0:
        return
    doc = json.loads(r.stdout)
    rows = rows_by_gpus(doc)
    check(f"{kind} with --grad-mb: {how}", doc.get(kind) == how)
    for n in (2, 4, 8):
        want = wire(kind, n, sizes) / wire("none", n, sizes)
        got = rows[n]["wire_factor"]
        check(f"{kind} ({how}) at {n} GPUs: wire factor {got:.6f} = {want:.6f}", close(got, want))


def check_compute():
    doc = predict_json("--compress", "onebit", "--compress-ms", "7.5")
    if not doc:
        return
    rows = rows_by_gpus(doc)
    for n in (2, 4, 8):
        check(f"--compress-ms 7.5 at {n} GPUs: compute 47.5 ms",
              close(rows[n]["compute_ms"], 47.5) and rows[n]["compress_ms"] == 7.5)
        # speedup against the uncompressed one-GPU step
        check(f"speedup at {n} GPUs against 40 ms on one GPU",
              close(rows[n]["speedup"], n * 40.0 / rows[n]["step_ms"], 1e-5))
    timed = {}
    for kind in ("int8", "powersgd:2"):
        doc = predict_json("--compress", kind, "--compress-ms", "cpu")
        timed[kind] = rows_by_gpus(doc) if doc else None
    if timed["int8"]:
        t = [timed["int8"][n]["compress_ms"] for n in (2, 4, 8)]
        check(f"int8 timed: positive and growing with the ranks decoded ({t})",
              t[0] > 0 and t[0] < t[1] < t[2])
    if timed["powersgd:2"]:
        t = [timed["powersgd:2"][n]["compress_ms"] for n in (2, 4, 8)]
        check(f"powersgd:2 timed: positive and the same at every count ({t})",
              t[0] > 0 and t[0] == t[1] == t[2])


def check_machine():
    """On a no-P2P 8-GPU box, onebit with free compute must beat fp32 at 8 GPUs."""
    common = ("--model", "resnet50", "--batch", 64, "--images-per-s", 400, "--machine",
              "dual-socket-8gpu", "--gpus", "8", "--json", "-")
    plain = run(*common)
    onebit = run(*common, "--compress", "onebit", "--compress-ms", "0")
    if plain.returncode or onebit.returncode:
        check("predict --machine --compress runs", False, plain.stderr + onebit.stderr)
        return
    p8 = rows_by_gpus(json.loads(plain.stdout))[8]
    o8 = rows_by_gpus(json.loads(onebit.stdout))[8]
    check(f"dual-socket-8gpu: onebit {o8['speedup']:.2f}x > fp32 {p8['speedup']:.2f}x at 8",
          o8["speedup"] > p8["speedup"] and o8["bottleneck"] == p8["bottleneck"])
    text = run(*common[:-2], "--compress", "onebit")
    check("the table says what compression changes, and that its compute is not charged",
          text.returncode == 0 and "--compress onebit: bytes on the wire" in text.stdout and
          "not charged" in text.stdout and " 0.000 ms compressing" in text.stdout)
    doc = json.loads(run(*common, "--compress", "onebit", "--compress-ms", "cpu").stdout)
    check("--compress-ms cpu: the JSON says where the time comes from",
          "C codecs, timed here" in doc["compress_source"] and
          rows_by_gpus(doc)[8]["compress_ms"] > 0)


def check_errors():
    base = ("--model", "lenet", "--step-ms", 40)
    cases = [
        (("--compress", "int4"), "unknown --compress 'int4'"),
        (("--compress", "powersgd:0"), "rank must be 1 to 4"),
        (("--compress", "int8", "--grad-dtype", "fp16"), "drop --grad-dtype fp16"),
        (("--compress-ms", "3"), "--compress-ms goes with --compress"),
        (("--compress", "int8", "--compress-ms", "-1"), "milliseconds >= 0 or 'cpu'"),
        (("--compress", "int8", "--compress-ms", "gpu"), "milliseconds >= 0 or 'cpu'"),
    ]
    for extra, words in cases:
        r = run(*base, *extra)
        lines = r.stderr.strip().splitlines()
        check(f"{' '.join(extra)}: exit 2, one line naming the problem",
              r.returncode == 2 and len(lines) == 1 and words in r.stderr, r.stderr.strip())
    r = run(*base, "--compress", "int4")
    check("the message lists the valid names", "onebit" in r.stderr and "powersgd" in r.stderr)


check_wire()
check_compute()
check_machine()
check_errors()
sys.exit(exit_code("predict --compress"))
