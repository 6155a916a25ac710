#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz harnesses into tests/fuzz/corpus/.

usage: make_corpus.py [FUZZ_CHECKPOINT_SEED]
  FUZZ_CHECKPOINT_SEED: build-fuzz/tests/fuzz/fuzz_checkpoint_seed, which
  saves a real checkpoint of the checkpoint harness's tiny net (skipped
  when not given).  The topology seeds are the fixtures of tests/topo."""
import gzip
import os
import shutil
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def put(harness, name, data):
    d = os.path.join(CORPUS, harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def idx(dims, data):
    return bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", x) for x in dims) + bytes(data)


def idx_seeds():
    images = idx([3, 2, 2], range(12))
    labels = idx([3], [0, 1, 2])
    def pack(flags, a, b):
        return bytes([flags]) + struct.pack("<H", len(a)) + a + b
    put("fuzz_idx", "raw", pack(0, images, labels))
    put("fuzz_idx", "gz-both", pack(3, images, labels))
    put("fuzz_idx", "four-dims", pack(0, idx([2, 3, 2, 2], range(24)), idx([2], [1, 0])))
    put("fuzz_idx", "truncated", pack(0, images[:-3], labels))
    put("fuzz_idx", "already-gz", pack(0, gzip.compress(images, mtime=0), labels))


def sysfs_seeds():
    texts = ["8.0 GT/s PCIe\n", "2.5 GT/s\n", "16\n", "x8", "0-3,8-11\n", "0x10de\n", "-1\n",
             "0000:01:00.0", "10000:e1:00.3", "pci0000:00", "NVIDIA \"A100\"\\"]
    for i, t in enumerate(texts):
        put("fuzz_sysfs", f"text-{i}", bytes([i % 8]) + t.encode())
    # config space: a PCI Express capability (id 0x10) at 0x40, port type root (4)
    cfg = bytearray(256)
    cfg[0x06] = 0x10  # status: capability list
    cfg[0x34] = 0x40
    cfg[0x40], cfg[0x41], cfg[0x42] = 0x10, 0x00, 0x42
    put("fuzz_sysfs", "config-root-port", bytes([0x80]) + bytes(cfg))


def topo_seeds():
    fixtures = os.path.join(HERE, "..", "topo", "fixtures")
    for name in sorted(os.listdir(fixtures)):
        if name.endswith(".topo"):
            d = os.path.join(CORPUS, "fuzz_topo_tree")
            os.makedirs(d, exist_ok=True)
            shutil.copy(os.path.join(fixtures, name), os.path.join(d, name))


def option_seeds():
    words = [["--count", "5", "--big", "123", "--rate", "1e-3", "--name", "abc", "--flag"],
             ["3x32x32:10"], ["1x28x28"], ["--count=7", "--rate=0.5"], ["-12", "--count"],
             ["--cout", "3"], ["--help"], ["0.25e+2"]]
    for i, w in enumerate(words):
        put("fuzz_options", f"args-{i}", "\0".join(w).encode())


def checkpoint_seed(tool):
    d = os.path.join(CORPUS, "fuzz_checkpoint")
    os.makedirs(d, exist_ok=True)
    subprocess.run([tool, os.path.join(d, "valid-resealed")], check=True)
    blob = open(os.path.join(d, "valid-resealed"), "rb").read()
    put("fuzz_checkpoint", "valid-as-is", b"\0" + blob[1:])
    put("fuzz_checkpoint", "short", b"\1" + blob[1:60])


def main():
    idx_seeds()
    sysfs_seeds()
    topo_seeds()
    option_seeds()
    if len(sys.argv) > 1:
        checkpoint_seed(sys.argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
