#!/usr/bin/env python3
"""PyTorch peer for `dltrain bench train`: the same model (tests/torch_models.py),
batch, thread count and step (forward, cross-entropy, backward, SGD with
momentum 0.9 and weight decay 5e-4) on a fixed synthetic batch, after warm-up;
prints images/s as the median of several timed repeats."""
import argparse
import contextlib
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import torch  # noqa: E402
import torch_models  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="lenet")
    p.add_argument("--shape", default="1x28x28", help="CxHxW")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--device", default="cpu")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--precision", default="fp32", choices=["auto", "fp32", "tf32", "bf16"],
                   help="CUDA: auto (PyTorch's defaults: TF32 for cuDNN convolutions, not for "
                        "matmuls, = dltrain --precision auto), fp32 (TF32 off), tf32 (TF32 "
                        "matmul/cuDNN), bf16 (autocast)")
    p.add_argument("--json", default="")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    if a.device != "cpu":
        tf32 = a.precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32 or a.precision == "auto"
        torch.backends.cudnn.benchmark = True
    c, h, w = (int(v) for v in a.shape.split("x"))
    model = torch_models.MODELS[a.model](c, h, w, a.classes).to(a.device)
    x = torch.randn(a.batch, c, h, w, device=a.device)
    y = torch.randint(0, a.classes, (a.batch,), device=a.device)
    if a.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    loss_fn = torch.nn.CrossEntropyLoss()

    def autocast():
        # Built only for bf16 on a GPU: CPU-only torch builds reject even a
        # disabled CUDA autocast (is_bf16_supported initialises CUDA).
        if a.precision == "bf16" and a.device != "cpu":
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def steps(n):
        for _ in range(n):
            opt.zero_grad(set_to_none=True)
            with autocast():
                loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            if a.device == "cpu":
                loss.item()  # free on the CPU; dltrain reads its loss every step there too
            # On a GPU, item() would make the host wait for every step: dltrain's
            # bench train queues its loss statistics and never reads them (train
            # reads them one step late), so neither side stalls the GPU per step.
        if a.device != "cpu":
            torch.cuda.synchronize()

    steps(a.warmup)
    ips = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        steps(a.steps)
        ips.append(a.steps * a.batch / (time.perf_counter() - t0))
    med = statistics.median(ips)
    where = torch.cuda.get_device_name() if a.device != "cpu" else f"threads {a.threads}"
    print(f"torch train: model {a.model}, data {a.shape}, batch {a.batch}, {where}, "
          f"precision {a.precision}{', channels-last' if a.channels_last else ''}, "
          f"torch {torch.__version__}")
    print(f"  {med:.1f} images/s (median of {a.repeats}; min {min(ips):.1f}, max {max(ips):.1f})")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"bench": "torch", "model": a.model, "batch": a.batch,
                       "threads": a.threads, "device": a.device, "precision": a.precision,
                       "channels_last": a.channels_last, "images_per_s": med}, f)


if __name__ == "__main__":
    main()
