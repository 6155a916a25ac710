"""--compress from the command line (docs/compression.md).

  test_compress_cli.py MPIEXEC DLTRAIN CASE
    bad_input  unknown names list the valid ones; bad PowerSGD ranks; the
               same for scale and bench allreduce; exit status 2, no hang
    resume     on 1 and 2 ranks, a run stopped part-way and resumed with
               --resume gives the same losses and a byte-identical
               checkpoint (residuals included) as one that went straight
               through; --resume with another --compress is refused, an
               uncompressed checkpoint may start compression
    mismatch   one rank started with another --compress: the settings
               check names it and every rank stops
    report     the start-up line and the JSON record give bytes on the wire
               and the compression ratio
    powersgd   per-layer PowerSGD on 2 ranks: the loss goes down, the start-up
               line and JSON record report the per-layer wire bytes; resumed
               with other buckets it goes on (its Qs do not depend on them);
               a checkpoint whose PowerSGD state has another size (as the
               folded PowerSGD of earlier versions saved) is refused with a
               message and left as it was
    warmup     --compress-warmup: the uncompressed steps give the losses of a
               run without --compress, bit for bit, and compression starts
               at the step it says; resume across the switch is exact
    bench      bench train --compress times the codecs per step (the line,
               the JSON's codec_ms within its min and max), says how the
               time grows with ranks for each kind, and adds nothing
               without --compress (MPIEXEC unused)
"""
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib

MPIEXEC, DLTRAIN, CASE = sys.argv[1], os.path.abspath(sys.argv[2]), sys.argv[3]
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1")
FAILURES = []
SMALL = ["--data", "synthetic:1x28x28:10", "--train-samples", "512", "--batch", "16",
         "--threads", "1", "--no-progress", "--bucket-mb", "0.25", "--timeout", "600"]
# (--timeout: evaluating the 10000 synthetic test samples on one thread per rank takes
# long enough on a loaded machine that a rank may wait for the other past the default 60 s)


def run(cmd, np=1, timeout=300):
    full = [MPIEXEC, "--oversubscribe", "-np", str(np)] + cmd if np > 1 else cmd
    return subprocess.run(full, capture_output=True, text=True, timeout=timeout, env=ENV)


def expect(cond, what):
    if not cond:
        FAILURES.append(what)
        print("FAIL", what)


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def losses(path):
    out = {}
    for line in open(path):
        r = json.loads(line)
        if r["type"] == "step":
            out[r["step"]] = r["loss"]
    return out


def bad_input(tmp):
    names = "none, fp16, bf16, int8, onebit, powersgd"
    cases = [
        (["train", "--compress", "int4"], "unknown --compress 'int4'", names),
        (["train", "--compress", "powersgd:0"], "rank must be 1 to 4", None),
        (["train", "--compress", "powersgd:5"], "rank must be 1 to 4", None),
        (["train", "--compress", "int8:2"], "takes no ':RANK'", None),
        (["scale", "--compress", "1bit"], "unknown --compress '1bit'", names),
        (["bench", "allreduce", "--compress", "topk"], "unknown --compress 'topk'", names),
        (["bench", "train", "--compress", "2bit"], "unknown --compress '2bit'", names),
    ]
    for args, message, listed in cases:
        p = run([DLTRAIN] + args + (["--out", tmp] if args[0] == "train" else []), timeout=60)
        expect(p.returncode == 2, f"{' '.join(args)}: exit {p.returncode}, want 2")
        expect(message in p.stderr, f"{' '.join(args)}: no '{message}' in: {p.stderr.strip()}")
        if listed:
            expect(listed in p.stderr, f"{' '.join(args)}: the valid names are not listed")


def train(out, compress, max_steps, np=1, resume=None, extra=()):
    cmd = [DLTRAIN, "train", "--compress", compress, "--epochs", "2", "--max-steps",
           str(max_steps), "--out", out, "--json", out + ".json", "--log-every", "1"] + SMALL
    if resume:
        cmd += ["--resume", resume]
    return run(cmd + list(extra), np=np)


def resume_case(tmp, compress, np, extra=()):
    tag = f"{compress.replace(':', '-')}-np{np}"
    straight, part = os.path.join(tmp, "s-" + tag), os.path.join(tmp, "p-" + tag)
    a = train(straight, compress, 24, np, extra=extra)
    b = train(part, compress, 11, np, extra=extra)
    c = train(part + "r", compress, 24, np, resume=os.path.join(part, "checkpoint.bin"),
              extra=extra)
    for p, what in ((a, "straight"), (b, "first part"), (c, "resumed")):
        expect(p.returncode == 0, f"{tag} {what}: exit {p.returncode}: " +
               " | ".join(l for l in p.stderr.splitlines() if l.startswith("dltrain"))[-600:])
    if FAILURES:
        return
    ref, got = losses(straight + ".json"), losses(part + ".json")
    got.update(losses(part + "r.json"))
    diff = [s for s in ref if got.get(s) != ref[s]]
    expect(not diff, f"{tag}: losses differ from step {diff[:1]}")
    expect(sha(os.path.join(straight, "checkpoint.bin")) ==
           sha(os.path.join(part + "r", "checkpoint.bin")),
           f"{tag}: resumed checkpoint differs from the straight run's")


def resume(tmp):
    for compress in ("int8", "powersgd:2"):
        resume_case(tmp, compress, 1)
    resume_case(tmp, "onebit", 2)
    ckpt = os.path.join(tmp, "s-int8-np1", "checkpoint.bin")
    p = train(os.path.join(tmp, "other"), "fp16", 30, resume=ckpt)
    expect(p.returncode == 2 and "saved with --compress int8" in p.stderr,
           f"resume int8 with fp16: exit {p.returncode}: {p.stderr.strip()}")
    p = train(os.path.join(tmp, "other"), "none", 30, resume=ckpt)
    expect(p.returncode == 2 and "resume with --compress int8" in p.stderr,
           f"resume int8 with none: exit {p.returncode}: {p.stderr.strip()}")
    p = train(os.path.join(tmp, "other"), "int8", 30, np=2, resume=ckpt)
    expect(p.returncode in (1, 2) and "residuals of 1 rank(s)" in p.stderr,
           f"resume 1-rank int8 on 2 ranks: exit {p.returncode}: {p.stderr.strip()}")
    plain = os.path.join(tmp, "plain")
    p = train(plain, "none", 5)
    expect(p.returncode == 0, f"uncompressed run: {p.stderr.strip()}")
    p = train(os.path.join(tmp, "later"), "int8", 8,
              resume=os.path.join(plain, "checkpoint.bin"))
    expect(p.returncode == 0 and "error feedback starts from zero" in p.stdout,
           f"resume uncompressed with int8: exit {p.returncode}: {p.stderr.strip()}")


def mismatch(tmp):
    common = ["train", "--max-steps", "3", "--out", os.path.join(tmp, "mm")] + SMALL
    cmd = [MPIEXEC, "--oversubscribe", "-np", "1", DLTRAIN] + common + ["--compress", "int8",
           ":", "-np", "1", DLTRAIN] + common + ["--compress", "onebit"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=ENV)
    # mpirun returns the first rank to exit: rank 0 (1, "every rank stops"), or rank 1 (2)
    expect(p.returncode in (1, 2), f"mismatched --compress: exit {p.returncode}, want 1 or 2")
    expect("--compress is 'onebit' here but 'int8' on rank 0" in p.stderr,
           f"mismatched --compress not named: {p.stderr.strip()[-400:]}")


def report(tmp):
    out = os.path.join(tmp, "rep")
    p = train(out, "onebit", 4, np=2)
    expect(p.returncode == 0, f"onebit run: {p.stderr.strip()[-300:]}")
    # lenet's tensors under 4096 values go exact: fc2's 10 x 256 weights
    # (2560), conv1's 32 x 25 (800), and the vectors between and after the
    # matrices with their padding: 64 + 256 + 64 + 32
    expect("gradient compression onebit per layer (3776 of 857792 values exact: the tensors "
           "under 4096) with error feedback" in p.stdout and "compression ratio" in p.stdout,
           f"no per-layer onebit compression line in: {p.stdout}")
    expect("note: onebit from the first step" in p.stdout and "--compress-warmup 1" in p.stdout,
           f"no warm-up advice for onebit without one in: {p.stdout}")
    recs = [json.loads(line) for line in open(out + ".json")]
    comp = [r for r in recs if r["type"] == "compression"]
    expect(len(comp) == 1, "no compression JSON record")
    if comp:
        r = comp[0]
        # onebit on 2 ranks: an all-gather of 1.25 bits per value vs a ring all-reduce of 32
        expect(r["ranks"] == 2 and 0 < r["wire_bytes_per_step"] < r["fp32_wire_bytes_per_step"] / 20,
               f"wire bytes {r}")
        expect(20 < r["compression_ratio"] < 26, f"onebit ratio {r['compression_ratio']}")
        expect(r.get("exact_values") == 3776, f"exact values {r.get('exact_values')}")


def powersgd(tmp):
    out = os.path.join(tmp, "psgd")
    p = train(out, "powersgd:2", 32, np=2)
    expect(p.returncode == 0, f"powersgd run: {p.stderr.strip()[-300:]}")
    if FAILURES:
        return
    expect("gradient compression powersgd:2 per layer (" in p.stdout,
           f"no per-layer compression line in: {p.stdout}")
    comp = [json.loads(line) for line in open(out + ".json")]
    comp = [r for r in comp if r["type"] == "compression"]
    expect(comp and 0 < comp[0]["wire_bytes_per_step"] < comp[0]["fp32_wire_bytes_per_step"] / 4
           and comp[0]["compression_ratio"] > 4, f"powersgd:2 wire bytes: {comp}")
    got = losses(out + ".json")
    steps = sorted(got)
    first = sum(got[s] for s in steps[:4]) / 4
    last = sum(got[s] for s in steps[-4:]) / 4
    expect(len(steps) == 32 and last < 0.8 * first,
           f"powersgd:2 loss did not go down: {first:.4f} over steps 1-4, {last:.4f} at the end")
    # resumed with buckets of another size: each matrix is whole in one
    # bucket, so the Qs are the same list whatever the buckets
    ckpt = os.path.join(out, "checkpoint.bin")
    other = [a if a != "0.25" else "0.5" for a in SMALL]
    cmd = [DLTRAIN, "train", "--compress", "powersgd:2", "--epochs", "2", "--max-steps", "34"] + \
        other
    p = run(cmd + ["--out", out + "-b", "--resume", ckpt], np=2)
    expect(p.returncode == 0, f"resume with other buckets: {p.stderr.strip()[-400:]}")
    # a state of another size, as folded PowerSGD saved it: the section's Q
    # part one float short (count and CRC-32 rewritten)
    old = os.path.join(tmp, "folded.bin")
    data = open(ckpt, "rb").read()
    at = data.rfind(b"compress powersgd:2\0")
    head = 32 + 4 + 4 + 8  # name, world, crc, count
    world, _, count = struct.unpack_from("<iIQ", data, at + 32)
    floats = data[at + head:at + head + 4 * (count - 1)]
    expect(at > 0 and world == 2 and len(data) == at + head + 4 * count,
           f"no powersgd section where expected in {ckpt}")
    with open(old, "wb") as f:
        f.write(data[:at + 32] + struct.pack("<iIQ", world, zlib.crc32(floats), count - 1) +
                floats)
    before = sha(old)
    p = run(cmd + ["--out", out + "-c", "--resume", old], np=2)
    # mpirun returns the first rank to exit: rank 0 (2), or rank 1 (1, "every rank stops")
    expect(p.returncode in (1, 2) and "compression state has" in p.stderr and
           "folded each bucket" in p.stderr,
           f"resume a state of another size: exit {p.returncode}: {p.stderr.strip()[-400:]}")
    expect(sha(old) == before, "the refused resume changed the checkpoint")


def warmup(tmp):
    # 512 samples in batches of 16: 32 steps an epoch, so 0.25 epochs = 8 steps
    plain, warm = os.path.join(tmp, "plain"), os.path.join(tmp, "warm")
    a = train(plain, "none", 16)
    b = train(warm, "onebit", 16, extra=("--compress-warmup", "0.25"))
    expect(a.returncode == 0 and b.returncode == 0, f"warm-up runs: {a.stderr} {b.stderr}")
    if FAILURES:
        return
    expect("the first 8 steps uncompressed (--compress-warmup)" in b.stdout and
           "note: onebit from the first step" not in b.stdout,
           f"no warm-up line (or the advice for runs without one) in: {b.stdout}")
    ref, got = losses(plain + ".json"), losses(warm + ".json")
    # step s's loss comes before its update: the first compressed update is
    # step 9's, so step 10 is the first loss it can change
    same = [s for s in range(1, 10) if got.get(s) == ref.get(s)]
    expect(same == list(range(1, 10)), f"warm-up steps 1-9 differ from plain: {same}")
    expect(got[10] != ref[10] and got[16] != ref[16], "compression never started")
    comp = [json.loads(line) for line in open(warm + ".json")]
    comp = [r for r in comp if r["type"] == "compression"]
    expect(comp and comp[0]["uncompressed_steps"] == 8, f"JSON record: {comp}")
    # stopped at 11, inside compression; and at 11 with the switch at 12
    resume_case(tmp, "int8", 1, extra=("--compress-warmup", "0.25"))
    resume_case(os.path.join(tmp, "late"), "int8", 1, extra=("--compress-warmup", "0.375"))
    for extra, words in ((["--compress", "none", "--compress-warmup", "1"], "goes with --compress"),
                         (["--compress", "int8", "--compress-warmup", "3"], "longer than --epochs")):
        p = run([DLTRAIN, "train", "--epochs", "2", "--out", tmp] + extra, timeout=60)
        expect(p.returncode == 2 and words in p.stderr, f"{extra}: {p.returncode} {p.stderr}")


def bench(tmp):
    runs = (("int8", "one shard decoded; each further rank adds a decode"),
            ("powersgd:2", "the products and Gram-Schmidt, the same at any rank count"),
            ("none", None))
    for kind, words in runs:
        out = os.path.join(tmp, f"bench-{kind}.json")
        p = run([DLTRAIN, "bench", "train", "--model", "lenet", "--compress", kind, "--steps", "2",
                 "--repeats", "3", "--warmup", "1", "--threads", "1", "--json", out], timeout=300)
        expect(p.returncode == 0, f"bench train --compress {kind}: {p.stderr.strip()[-300:]}")
        if p.returncode:
            continue
        doc = json.load(open(out))
        if words is None:
            expect("codec_ms" not in doc and "--compress" not in p.stdout,
                   f"--compress none still times codecs: {doc}")
            continue
        expect(f"--compress {kind}: " in p.stdout and words in p.stdout,
               f"no codec line ({words}) in: {p.stdout}")
        expect(doc.get("compress") == kind and
               0 < doc["codec_min_ms"] <= doc["codec_ms"] <= doc["codec_max_ms"],
               f"JSON codec time: {doc}")


with tempfile.TemporaryDirectory() as tmp:
    {"bad_input": bad_input, "resume": resume, "mismatch": mismatch, "report": report,
     "powersgd": powersgd, "warmup": warmup, "bench": bench}[CASE](tmp)
if FAILURES:
    sys.exit(f"{len(FAILURES)} failure(s)")
print("ok")
