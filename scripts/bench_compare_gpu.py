#!/usr/bin/env python3
"""dltrain against PyTorch eager on one CUDA GPU: same model, batch, input
shape and precision, in the same run, printing both, their ratio and the
achieved TFLOP/s against the GPU's peak for that precision.

    scripts/bench_compare_gpu.py --dltrain build/launch/dltrain
    scripts/bench_compare_gpu.py --quick                # small steps, for a smoke test

Default cases (the issue's list): resnet50 at 3x224x224 batch 64 and 128 in
bf16 (PyTorch: autocast, channels-last) and fp32; resnet20 and lenet at
28x28 batch 128 in fp32.  FLOPs per image are dltrain's own count (6 x the
forward multiply-adds: forward, input gradient, weight gradient), applied to
both tools.  The two bf16 modes differ: dltrain --precision bf16 rounds the
GEMM inputs to bf16 (tensor cores, fp32 accumulation) but keeps activations
in fp32, while PyTorch's autocast also stores activations in bf16 (half the
memory traffic).  Should a dltrain build refuse bf16 (exit status 2), the row
shows the refusal and dltrain's tf32 figure beside it, marked with *, never
passed off as the precision asked for; a bf16 run that fails otherwise is a
failure of the row.  --json FILE keeps every figure.
Needs no MPI and no network."""
import argparse
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Dense peaks in TFLOP/s (NVIDIA data sheets): fp32 (CUDA cores), tf32, bf16.
PEAKS = {
    "H100 PCIe": {"fp32": 51.2, "tf32": 378.0, "bf16": 756.0},
    "H100": {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4},   # SXM5 (HBM3)
    "H200": {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4},
    "A100": {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0},
}

CASES = [  # model, shape, classes, batch, precision
    # auto: both tools' defaults, which agree: TF32 for convolutions, fp32 for
    # fully connected layers (dltrain --precision auto; torch.backends
    # cudnn.allow_tf32 = True, cuda.matmul.allow_tf32 = False)
    ("resnet50", "3x224x224", 1000, 128, "auto"),
    ("resnet50", "3x224x224", 1000, 64, "bf16"),
    ("resnet50", "3x224x224", 1000, 128, "bf16"),
    ("resnet50", "3x224x224", 1000, 64, "fp32"),
    ("resnet50", "3x224x224", 1000, 128, "fp32"),
    ("resnet20", "1x28x28", 10, 128, "fp32"),
    ("lenet", "1x28x28", 10, 128, "fp32"),
]


def parse_cases(text):
    cases = []
    for item in text.split(","):
        model, batch, precision = item.split(":")
        shape, classes = ("3x224x224", 1000) if model == "resnet50" else ("1x28x28", 10)
        cases.append((model, shape, classes, int(batch), precision))
    return cases


def peak_for(gpu_name, precision):
    precision = "tf32" if precision == "auto" else precision  # the convolutions' peak
    for key in ("H100 PCIe", "H100", "H200", "A100"):
        if key == "H100 PCIe" and "H100" in gpu_name and "PCIe" in gpu_name:
            return PEAKS[key][precision]
        if key != "H100 PCIe" and key in gpu_name:
            return PEAKS[key][precision]
    return None


def run(cmd, timeout):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired:
        return 124, f"timed out after {timeout} s"


def dltrain_case(a, model, shape, classes, batch, precision):
    cmd = [a.dltrain, "bench", "train", "--device", "cuda", "--model", model, "--data",
           f"synthetic:{shape}:{classes}", "--batch", str(batch), "--precision", precision,
           "--steps", str(a.steps), "--warmup", str(a.warmup), "--repeats", str(a.repeats)]
    rc, out = run(cmd, a.timeout)
    ips = re.search(r"([\d.]+) images/s", out)
    gf = re.search(r"([\d.]+) GFLOP/s", out)
    if rc != 0 or not ips:
        return {"ok": False, "rc": rc,
                "output": out.strip().splitlines()[-1:] if out.strip() else [],
                "cmd": " ".join(cmd)}
    return {"ok": True, "images_per_s": float(ips.group(1)),
            "gflop_per_image": float(gf.group(1)) / float(ips.group(1)) if gf else None,
            "output": out.strip().splitlines(), "cmd": " ".join(cmd)}


def torch_case(a, model, shape, classes, batch, precision):
    cmd = [a.python, os.path.join(ROOT, "scripts", "bench_torch.py"), "--device", "cuda",
           "--model", model, "--shape", shape, "--classes", str(classes), "--batch", str(batch),
           "--precision", precision, "--steps", str(a.steps), "--warmup", str(a.warmup),
           "--repeats", str(a.repeats)]
    if precision == "bf16":
        cmd.append("--channels-last")
    rc, out = run(cmd, a.timeout)
    ips = re.search(r"([\d.]+) images/s", out)
    if rc != 0 or not ips:
        return {"ok": False, "output": out.strip().splitlines()[-3:], "cmd": " ".join(cmd)}
    return {"ok": True, "images_per_s": float(ips.group(1)), "output": out.strip().splitlines(),
            "cmd": " ".join(cmd)}


def gpu_name(python):
    rc, out = run([python, "-c", "import torch; print(torch.cuda.get_device_name())"], 120)
    return out.strip().splitlines()[-1] if rc == 0 and out.strip() else "unknown GPU"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dltrain", default=os.path.join(ROOT, "build", "launch", "dltrain"))
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--timeout", type=int, default=600, help="seconds per tool and case")
    p.add_argument("--quick", action="store_true", help="5 steps, 1 repeat")
    p.add_argument("--only", default="", help="run only cases whose model matches this name")
    p.add_argument("--cases", default="",
                   help="MODEL:BATCH:PRECISION,... instead of the default list (resnet50 at "
                        "3x224x224, 1000 classes; others at 1x28x28, 10 classes)")
    p.add_argument("--json", default="")
    a = p.parse_args()
    if a.quick:
        a.steps, a.warmup, a.repeats = 5, 2, 1
    name = gpu_name(a.python)
    print(f"GPU: {name}; dltrain {a.dltrain}; PyTorch from {a.python}")
    print(f"{'model':9} {'batch':>5} {'prec':5} {'dltrain img/s':>14} {'torch img/s':>12} "
          f"{'ratio':>6} {'dl TFLOP/s':>10} {'torch TFLOP/s':>13} {'peak':>6}")
    results = []
    for model, shape, classes, batch, precision in parse_cases(a.cases) if a.cases else CASES:
        if a.only and a.only != model:
            continue
        d = dltrain_case(a, model, shape, classes, batch, precision)
        dl_prec = precision
        # Only a refusal (bad usage, exit 2: a build without bf16) falls back
        # to tf32; a bf16 run that fails otherwise (a CUDA error) is a failure.
        if not d["ok"] and precision == "bf16" and d.get("rc") == 2:
            d["refused"] = d["output"]
            d = dict(dltrain_case(a, model, shape, classes, batch, "tf32"), refused=d["output"])
            dl_prec = "tf32"
        t = torch_case(a, model, shape, classes, batch, precision)
        gfi = d.get("gflop_per_image")
        row = {"model": model, "shape": shape, "classes": classes, "batch": batch, "precision": precision,
               "dltrain_precision": dl_prec, "dltrain": d, "torch": t}
        dl_ips = d["images_per_s"] if d["ok"] else None
        t_ips = t["images_per_s"] if t["ok"] else None
        ratio = dl_ips / t_ips if dl_ips and t_ips else None
        dl_tf = dl_ips * gfi / 1e3 if dl_ips and gfi else None
        t_tf = t_ips * gfi / 1e3 if t_ips and gfi else None
        peak = peak_for(name, precision)
        row.update(ratio=ratio, dltrain_tflops=dl_tf, torch_tflops=t_tf, peak_tflops=peak)
        results.append(row)

        def f(v, fmt):
            width = int(fmt.split(".")[0])
            return format(v, fmt) if v is not None else "-".rjust(width)
        label = precision if dl_prec == precision else f"{precision}*"
        print(f"{model:9} {batch:5d} {label:5} {f(dl_ips, '14.1f')} {f(t_ips, '12.1f')} "
              f"{f(ratio, '6.2f')} {f(dl_tf, '10.2f')} {f(t_tf, '13.2f')} {f(peak, '6.0f')}")
        if not d["ok"]:
            print(f"    dltrain failed: {d['output']}")
        if not t["ok"]:
            print(f"    torch failed: {t['output']}")
        if dl_prec != precision:
            print(f"    * dltrain refused {precision} ({' '.join(d.get('refused', []))}); "
                  f"its column is --precision {dl_prec}")
        sys.stdout.flush()
    print("ratio = dltrain / PyTorch images/s (> 1: dltrain faster); TFLOP/s from dltrain's "
          "FLOP count per image; peak = dense data-sheet figure for the torch precision")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"gpu": name, "results": results}, fh, indent=1)
    return 0 if all(r["dltrain"]["ok"] and r["torch"]["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
