"""Write small IDX data sets (MNIST format) for tests: valid ones and ones
broken in a chosen way."""
import gzip
import os
import random
import struct


def idx_bytes(dims, data, magic_type=0x08):
    head = bytes([0, 0, magic_type, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)
    return head + bytes(data)


def write(path, blob, gz=False):
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(blob)
    else:
        with open(path, "wb") as f:
            f.write(blob)


def make_split(d, prefix, n, h=8, w=8, classes=4, seed=0, gz=False):
    rng = random.Random(seed)
    labels = [i % classes for i in range(n)]
    pixels = []
    for lab in labels:  # class-dependent brightness so the set is learnable
        pixels += [min(255, rng.randrange(0, 80) + 40 * lab) for _ in range(h * w)]
    suffix = ".gz" if gz else ""
    write(os.path.join(d, f"{prefix}-images-idx3-ubyte{suffix}"), idx_bytes([n, h, w], pixels), gz)
    write(os.path.join(d, f"{prefix}-labels-idx1-ubyte{suffix}"), idx_bytes([n], labels), gz)


def make_dataset(d, n_train=256, n_test=64, gz=False, **kw):
    os.makedirs(d, exist_ok=True)
    make_split(d, "train", n_train, seed=1, gz=gz, **kw)
    make_split(d, "t10k", n_test, seed=2, gz=gz, **kw)
    return d
