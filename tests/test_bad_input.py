#!/usr/bin/env python3
"""Bad input must give one clear line on stderr and a non-zero exit: never a
crash, a hang, a sanitizer report, or a damaged checkpoint.

usage: test_bad_input.py DLTRAIN"""
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import idx_fixture  # noqa: E402

DLTRAIN = os.path.abspath(sys.argv[1])
FAILURES = []
SMALL = ["--threads", "1", "--no-progress", "--batch", "16"]


def run(args, timeout=120):
    p = subprocess.run([DLTRAIN] + args, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def expect_error(name, args, *needles, code=None):
    rc, out, err = run(args)
    lines = [l for l in err.splitlines() if l.strip()]
    problems = []
    if rc == 0 or rc < 0:
        problems.append(f"exit status {rc}")
    if code is not None and rc != code:
        problems.append(f"exit status {rc}, expected {code}")
    if len(lines) != 1:
        problems.append(f"{len(lines)} stderr lines, expected 1")
    for bad in ("AddressSanitizer", "runtime error:", "LeakSanitizer", "Segmentation"):
        if bad in err:
            problems.append(f"sanitizer/crash output ({bad})")
    for n in needles:
        if n.lower() not in err.lower():
            problems.append(f"message lacks '{n}'")
    status = "ok  " if not problems else "FAIL"
    print(f"{status} {name}: {lines[0] if lines else '(no message)'}")
    if problems:
        print("     " + "; ".join(problems))
        print("     stderr: " + err.strip().replace("\n", "\n             "))
        FAILURES.append(name)


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def data_cases(tmp):
    good = idx_fixture.make_dataset(os.path.join(tmp, "good"))
    expect_error("missing data directory", ["train", "--data", os.path.join(tmp, "nope")],
                 os.path.join(tmp, "nope"), "dataset-fashion-mnist")

    def broken(name, mutate):
        d = os.path.join(tmp, name)
        shutil.copytree(good, d)
        mutate(d)
        return d

    def truncate(d):
        p = os.path.join(d, "train-images-idx3-ubyte")
        blob = open(p, "rb").read()
        open(p, "wb").write(blob[: len(blob) - 100])
    expect_error("truncated IDX", ["train", "--data", broken("trunc", truncate)] + SMALL, "truncated")

    def magic(d):
        p = os.path.join(d, "train-labels-idx1-ubyte")
        blob = bytearray(open(p, "rb").read())
        blob[0] = 7
        open(p, "wb").write(bytes(blob))
    expect_error("wrong magic", ["train", "--data", broken("magic", magic)] + SMALL, "magic")

    def count(d):
        labels = [0, 1] * 100
        idx_fixture.write(os.path.join(d, "train-labels-idx1-ubyte"),
                          idx_fixture.idx_bytes([len(labels)], labels))
    expect_error("label/image count mismatch", ["train", "--data", broken("count", count)] + SMALL,
                 "200 labels", "256 images")

    def corrupt_gz(d):
        p = os.path.join(d, "t10k-images-idx3-ubyte")
        blob = gzip.compress(open(p, "rb").read())
        os.remove(p)
        open(p + ".gz", "wb").write(blob[: len(blob) // 2])
    expect_error("corrupt gzip", ["train", "--data", broken("gz", corrupt_gz)] + SMALL, "t10k-images")

    def header(d):
        open(os.path.join(d, "train-images-idx3-ubyte"), "wb").write(b"\0\0\x08\x03\0\0")
    expect_error("truncated header", ["train", "--data", broken("hdr", header)] + SMALL, "truncated")
    return good


def flag_cases(good):
    expect_error("unknown model", ["train", "--model", "vgg"], "unknown model", "lenet", code=2)
    expect_error("negative lr", ["train", "--lr", "-0.1"], "--lr", code=2)
    expect_error("zero batch", ["train", "--batch", "0"], "--batch", code=2)
    expect_error("non-numeric epochs", ["train", "--epochs", "five"], "--epochs", code=2)
    expect_error("unknown option", ["train", "--epoch", "3"], "did you mean --epochs", code=2)
    expect_error("missing value", ["train", "--model"], "needs a value", code=2)
    expect_error("bad schedule", ["train", "--schedule", "linear"], "schedule", code=2)
    expect_error("bad milestones", ["train", "--lr-steps", "3,x"], "--lr-steps", code=2)
    expect_error("unknown command", ["trian"], "unknown command", code=2)
    expect_error("shape the model cannot take", ["train", "--data", "synthetic:1x2x2"] + SMALL,
                 "lenet", "2x2")
    expect_error("bad synthetic spec", ["train", "--data", "synthetic:3x32"] + SMALL, "synthetic")
    expect_error("more samples per batch than data",
                 ["train", "--data", good, "--batch", "100000", "--threads", "1"], "fewer than one")


def test_record(out):
    """The end-of-epoch test loss and accuracy from a --json metrics file."""
    recs = [json.loads(l) for l in open(os.path.join(out, "m.json")) if '"test_acc"' in l]
    return (recs[-1]["test_loss"], recs[-1]["test_acc"]) if recs else None


def eval_batch_case(tmp):
    """--eval-batch larger than --batch once wrote past the activation arena
    (caught by AddressSanitizer): it must work and evaluate the same samples."""
    results = {}
    for eb in ("4096", None):
        out = os.path.join(tmp, f"eval{eb}")
        args = ["train", "--data", "synthetic:1x8x8:10", "--batch", "256", "--epochs", "1", "--train-samples", "1024",
                "--threads", "1", "--no-progress", "--out", out, "--json", os.path.join(out, "m.json")]
        rc, _, err = run(args + (["--eval-batch", eb] if eb else []), timeout=600)
        bad = [b for b in ("AddressSanitizer", "runtime error:", "LeakSanitizer") if b in err]
        if rc != 0 or bad:
            print(f"FAIL --eval-batch {eb}: exit {rc} {bad}\n     stderr: {err.strip()}")
            FAILURES.append(f"eval-batch {eb}")
            return
        results[eb] = test_record(out)
    big, default = results["4096"], results[None]
    ok = big and default and big[1] == default[1] and abs(big[0] - default[0]) <= 1e-4 * abs(default[0])
    print(f"{'ok  ' if ok else 'FAIL'} --eval-batch 4096 > --batch 256: test loss/acc {big}, "
          f"with the default eval batch {default}")
    if not ok:
        FAILURES.append("eval-batch result")


def checkpoint_cases(tmp, good):
    out = os.path.join(tmp, "run")
    base = ["train", "--data", good, "--out", out, "--epochs", "1"] + SMALL
    rc, _, err = run(base)
    assert rc == 0, f"a good run failed: {err}"
    ckpt = os.path.join(out, "checkpoint.bin")
    blob = open(ckpt, "rb").read()

    def variant(name, data):
        p = os.path.join(tmp, name)
        open(p, "wb").write(data)
        return p
    flipped = bytearray(blob)
    flipped[len(blob) - 7] ^= 0x40
    expect_error("corrupt checkpoint", base + ["--resume", variant("flip.bin", bytes(flipped))], "checksum")
    expect_error("truncated checkpoint", base + ["--resume", variant("short.bin", blob[:-40])], "truncated")
    expect_error("not a checkpoint", base + ["--resume", variant("junk.bin", b"hello" * 50)], "not a dltrain checkpoint")
    expect_error("missing checkpoint", base + ["--resume", os.path.join(tmp, "none.bin")], "none.bin")
    other = os.path.join(tmp, "other")
    rc, _, err = run(["train", "--model", "resnet20", "--data", good, "--out", other, "--epochs", "1"] + SMALL)
    assert rc == 0, err
    expect_error("checkpoint of another model",
                 base + ["--resume", os.path.join(other, "checkpoint.bin")], "resnet20", "lenet")

    before = sha(ckpt)
    expect_error("NaN loss stops training",
                 base + ["--resume", ckpt, "--epochs", "3", "--lr", "1e6"],
                 "NaN", "checkpoint", code=3)
    if sha(ckpt) != before:
        print("FAIL NaN run changed the last good checkpoint")
        FAILURES.append("checkpoint intact after NaN")
    rc, _, err = run(base + ["--resume", ckpt, "--epochs", "2"])
    if rc != 0:
        print(f"FAIL checkpoint no longer resumable after the bad runs: {err.strip()}")
        FAILURES.append("resume after bad runs")


def main():
    tmp = tempfile.mkdtemp(prefix="dltrain-bad-")
    try:
        good = data_cases(tmp)
        flag_cases(good)
        eval_batch_case(tmp)
        checkpoint_cases(tmp, good)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(FAILURES)} failed" if FAILURES else "all bad-input cases handled")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
