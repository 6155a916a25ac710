"""`dltrain predict` on the command line (see docs/scaling.md).

usage: test_predict_cli.py DLTRAIN CASE WORKDIR [SYSFS_TREE]
CASE: links | unknown | hand | json | calibrate | this | errors"""
import json
import math
import os
import subprocess
import sys

DLTRAIN = os.path.abspath(sys.argv[1])
CASE = sys.argv[2]
WORK = sys.argv[3]
TREE = sys.argv[4] if len(sys.argv) > 4 else ""
FAILURES = []
MIB = 1024.0 * 1024.0

# GB/s per direction, worked out here independently of the C table.
LINKS = {}
for gen, gts in ((3, 8.0), (4, 16.0), (5, 32.0)):
    for lanes in (16, 8, 4):
        LINKS[f"pcie{gen}x{lanes}"] = gts * lanes * 128 / 130 / 8
LINKS.update({"nvlink2": 150.0, "nvlink3": 300.0, "nvlink4": 450.0,
              "ib-edr": 12.5, "ib-hdr": 25.0, "ib-ndr": 50.0,
              "eth-10g": 1.25, "eth-25g": 3.125, "eth-100g": 12.5})


def run(*args):
    return subprocess.run([DLTRAIN, "predict"] + [str(a) for a in args], capture_output=True,
                          text=True, timeout=60)


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}")
    if not ok:
        FAILURES.append(name)


def close(a, b, rel=1e-4):
    return abs(a - b) <= rel * abs(b) + 1e-9


def predict_json(*args):
    p = run(*args, "--json", "-")
    if p.returncode != 0:
        check(f"predict {' '.join(map(str, args))}", False, f"exit {p.returncode}: {p.stderr}")
        return None
    return json.loads(p.stdout)


def ring_ms(nbytes, n, gbps, alpha_us, bucket):
    """The documented model: per bucket 2(n-1)/n x b / bw + 2(n-1) x alpha."""
    if n == 1:
        return 0.0
    total, left = 0.0, nbytes
    while left > 0:
        b = min(bucket, left)
        total += 2 * (n - 1) / n * b / (gbps * 1e9) * 1e3 + 2 * (n - 1) * alpha_us * 1e-3
        left -= b
    return total


def case_links():
    for name, gbps in LINKS.items():
        j = predict_json("--grad-mb", 100, "--step-ms", 100, "--gpus", "1,2,4,8", "--link", name)
        if not j:
            continue
        link = j["link"]
        check(f"{name}: {gbps:.4f} GB/s", close(link["gbps"], gbps), f"{link['gbps']}")
        rows = j["rows"]
        check(f"{name}: 4 rows", [r["gpus"] for r in rows] == [1, 2, 4, 8])
        for r in rows:
            want = ring_ms(100 * MIB, r["gpus"], gbps, link["alpha_us"], j["bucket_bytes"])
            ok = close(r["comm_ms"], want) and close(r["speedup"], r["gpus"] * 100 / r["step_ms"])
            ok = ok and close(r["images_per_s"], r["gpus"] * 32 * 1e3 / r["step_ms"])
            ok = ok and r["exposed_ms"] <= r["comm_ms"] + 1e-9 and r["step_ms"] >= 100
            if not ok:
                check(f"{name}: row {r['gpus']} follows the model", False, json.dumps(r))
        check(f"{name}: lane table of 9 PCIe links", len(j["lanes"]) == 9)
        p = run("--grad-mb", 100, "--step-ms", 100, "--link", name)
        check(f"{name}: table", p.returncode == 0 and f"link {name}:" in p.stdout, p.stderr)


def case_unknown():
    for bad in ("pcie3x32", "PCIE3X16", "nvlink", "ib", "", "pcie6x16"):
        p = run("--grad-mb", 100, "--step-ms", 100, "--link", bad)
        names_listed = all(n in p.stderr for n in LINKS) and "this" in p.stderr
        check(f"--link '{bad}' rejected with the valid names",
              p.returncode == 2 and f"unknown link '{bad}'" in p.stderr and names_listed,
              f"exit {p.returncode}: {p.stderr.strip()[:200]}")
    p = run("--grad-mb", 100, "--step-ms", 100, "--gpus", 16, "--nodes", 2, "--net", "ib-xdr")
    check("--net ib-xdr rejected", p.returncode == 2 and "unknown link 'ib-xdr'" in p.stderr,
          p.stderr.strip())


def case_hand():
    # 32 ImageNet images over PCIe 3.0: bytes / bandwidth
    j = predict_json("--images", 32, "--image", "3x224x224")
    if j:
        check("batch of 32x3x224x224 fp32 = 19267584 bytes", j["transfer"]["bytes"] == 19267584)
        got = {l["link"]: l["transfer_ms"] for l in j["lanes"]}
        for name, ms in (("pcie3x16", 1.2230), ("pcie3x8", 2.4460), ("pcie3x4", 4.8920)):
            check(f"{name}: {ms} ms per batch", close(got[name], ms, 1e-3), f"{got[name]}")
    p = run("--images", 32, "--image", "3x224x224")
    check("transfer table", p.returncode == 0 and "1.223" in p.stdout and "4.892" in p.stdout,
          p.stdout)
    # 4 lanes shared by 16 GPUs
    j = predict_json("--grad-mb", 97.49, "--step-ms", 100, "--gpus", 16, "--link", "pcie3x4",
                     "--link-share", 16)
    if j:
        check("pcie3x4 shared by 16: 0.246 GB/s per GPU",
              close(j["link"]["gbps_per_gpu"], 0.2462, 1e-3), str(j["link"]["gbps_per_gpu"]))
        row = [r for r in j["rows"] if r["gpus"] == 16][0]
        check("... the ring runs at that bandwidth", close(row["gbps"], 0.2462, 1e-3))
        check("one-GPU baseline row added", j["rows"][0]["gpus"] == 1)
    # ResNet-50's gradients from the model itself
    j = predict_json("--model", "resnet50", "--step-ms", 100)
    if j:
        check("resnet50: 25557032 parameters", j["params"] == 25557032, str(j["params"]))
        check("resnet50: 102228128 gradient bytes", j["grad_bytes"] == 102228128)
        check("resnet50: input transfer of 32 images of 3x224x224",
              j["transfer"]["bytes"] == 19267584)
    j = predict_json("--model", "resnet50", "--gpu-tflops", 100, "--batch", 32)
    if j:
        want = 6 * j["macs_per_sample"] * 32 / 100e12 * 1e3
        check("--gpu-tflops: compute = 6 x MACs x batch / FLOP/s", close(j["compute_ms"], want),
              f"{j['compute_ms']} vs {want}")
        check("resnet50: about 4.1 GMAC per image", 4.0e9 < j["macs_per_sample"] < 4.2e9,
              str(j["macs_per_sample"]))
    j = predict_json("--grad-mb", 10, "--images-per-s", 400, "--batch", 64)
    if j:
        check("--images-per-s: compute = batch / rate", close(j["compute_ms"], 160.0))


def case_json():
    path = os.path.join(WORK, "predict.json")
    p = run("--grad-mb", 100, "--step-ms", 90, "--json", path)
    check("table and JSON file", p.returncode == 0 and "GPUs" in p.stdout, p.stderr)
    with open(path) as f:
        j = json.load(f)
    for key in ("command", "version", "model", "params", "grad_bytes", "bucket_bytes", "overlap",
                "compute_ms", "link", "net", "rows", "lanes", "transfer"):
        check(f"JSON has '{key}'", key in j)
    check("JSON command is predict", j.get("command") == "predict")
    for key in ("gpus", "nodes", "gbps", "comm_ms", "hidden_ms", "exposed_ms", "step_ms",
                "images_per_s", "speedup", "efficiency"):
        check(f"rows have '{key}'", all(key in r for r in j["rows"]))
    j2 = predict_json("--grad-mb", 100, "--step-ms", 90)
    check("--json - gives the same JSON", j2 == j)
    # the overlap model: buckets ready uniformly during backward, last one exposed
    j = predict_json("--grad-mb", 100, "--step-ms", 90, "--gpus", 8, "--link", "pcie3x16")
    r = j["rows"][-1]
    bucket = j["bucket_bytes"]
    last = ring_ms(bucket, 8, LINKS["pcie3x16"], j["link"]["alpha_us"], bucket)
    check("exposed = the last bucket when the link keeps up", close(r["exposed_ms"], last),
          f"{r['exposed_ms']} vs {last}")
    j = predict_json("--grad-mb", 100, "--step-ms", 90, "--gpus", 8, "--no-overlap")
    r = j["rows"][-1]
    check("--no-overlap: everything exposed", close(r["exposed_ms"], r["comm_ms"]))
    # nodes: fill nodes of 8, the network is the slowest hop
    j = predict_json("--grad-mb", 100, "--step-ms", 90, "--gpus", "1,8,16,32", "--nodes", 4,
                     "--net", "ib-hdr", "--link", "nvlink3")
    if j:
        check("nodes per count", [r["nodes"] for r in j["rows"]] == [1, 1, 2, 4])
        check("ring bandwidth per count", [r["gbps"] for r in j["rows"]] == [300, 300, 25, 25])
        check("latency per count", [r["alpha_us"] for r in j["rows"]] == [3.4, 3.4, 14, 14])


def case_bucket():
    """The default bucket is train's (dl_buckets_default_mb): an eighth of the
    gradients, clamped to 0.25-25 MiB; train counts buckets in fp32 floats."""
    for grad_mb, want_mb in ((100, 12.5), (1, 0.25), (400, 25), (2.5, 0.3125)):
        j = predict_json("--grad-mb", grad_mb, "--step-ms", 90, "--gpus", "1,8")
        check(f"--grad-mb {grad_mb}: default bucket {want_mb} MiB",
              j and close(j["bucket_bytes"], want_mb * MIB), str(j and j["bucket_bytes"] / MIB))
        want_n = math.ceil(grad_mb / want_mb - 1e-9)
        check(f"--grad-mb {grad_mb}: {want_n} buckets", j and j["rows"][-1]["buckets"] == want_n)
    j = predict_json("--model", "resnet50", "--step-ms", 90)
    check("resnet50: default bucket = 4 x 25557032 / 8 bytes",
          j and close(j["bucket_bytes"], 4 * 25557032 / 8), str(j and j["bucket_bytes"]))
    j16 = predict_json("--model", "resnet50", "--step-ms", 90, "--grad-dtype", "fp16")
    check("resnet50 fp16: half the bytes per bucket, as many buckets as train",
          j16 and close(j16["bucket_bytes"], j["bucket_bytes"] / 2)
          and j16["rows"][-1]["buckets"] == j["rows"][-1]["buckets"] == 8)
    j = predict_json("--grad-mb", 100, "--step-ms", 90, "--bucket-mb", 25)
    check("--bucket-mb 25 is kept", j and close(j["bucket_bytes"], 25 * MIB))
    p = run("--grad-mb", 100, "--step-ms", 90)
    check("the table prints the bucket used", "buckets of 12.5 MiB: 8 per step" in p.stdout)
    p = run("--help")
    check("--help states train's default rule", "an eighth of the gradients" in p.stdout
          and "default 25" not in p.stdout)


def case_calibrate():
    # a synthetic bench allreduce result: 4 ranks, 10 GB/s bus bandwidth, 7 us per step
    results, b = [], 4
    while b <= 1 << 30:
        t = 2 * 3 / 4 * b / 10e9 * 1e6 + 6 * 7.0
        results.append({"bytes": b, "count": b // 4, "time_us": t, "algbw_gbps": b / t / 1e3,
                        "busbw_gbps": b / t / 1e3 * 1.5, "errors": 0})
        b *= 4
    doc = {"bench": "allreduce", "version": 1, "backend": "mpi", "world": 4, "results": results,
           "errors": 0}
    path = os.path.join(WORK, "synthetic_allreduce.json")
    with open(path, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    j = predict_json("--grad-mb", 100, "--step-ms", 90, "--allreduce-json", path)
    if j:
        check("calibrated link is 'measured'", j["link"]["name"] == "measured")
        check("bandwidth ~ 10 GB/s", close(j["link"]["gbps"], 10.0, 2e-3), str(j["link"]["gbps"]))
        check("latency ~ 7 us per step", close(j["link"]["alpha_us"], 7.0, 2e-2),
              str(j["link"]["alpha_us"]))
    doc["world"] = 1
    with open(path, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    p = run("--grad-mb", 100, "--step-ms", 90, "--allreduce-json", path)
    check("one-rank result cannot calibrate", p.returncode == 2 and "rank" in p.stderr, p.stderr)
    with open(path, "w") as f:
        f.write('{"command":"predict"}')
    p = run("--grad-mb", 100, "--step-ms", 90, "--allreduce-json", path)
    check("other JSON rejected", p.returncode == 2 and "bench allreduce" in p.stderr, p.stderr)
    p = run("--grad-mb", 100, "--step-ms", 90, "--allreduce-json", os.path.join(WORK, "none"))
    check("missing file", p.returncode == 2 and "cannot read" in p.stderr, p.stderr)


def case_this():
    p = run("--grad-mb", 100, "--step-ms", 90, "--link", "this", "--json", "-")
    if p.returncode == 0:
        j = json.loads(p.stdout)
        check("this machine: a link with bandwidth", j["link"]["gbps"] > 0, j["link"]["source"])
    else:
        check("this machine without GPU: says so, exit 1",
              p.returncode == 1 and "no GPU" in p.stderr, f"exit {p.returncode}: {p.stderr}")
    if not TREE:
        print("skip fixture tree (no topology detection in this build)")
        return
    j = predict_json("--grad-mb", 100, "--step-ms", 90, "--link", "this", "--sysfs-root", TREE)
    if j:
        check("consumer x8/x8 board: PCIe 3.0 x8 between its GPUs",
              close(j["link"]["gbps"], LINKS["pcie3x8"]), str(j["link"]))
        check("default counts: up to its 2 GPUs", [r["gpus"] for r in j["rows"]] == [1, 2])
    empty = os.path.join(WORK, "empty_sysfs")
    os.makedirs(os.path.join(empty, "bus", "pci", "devices"), exist_ok=True)
    p = run("--grad-mb", 100, "--step-ms", 90, "--link", "this", "--sysfs-root", empty)
    check("no GPU under the tree: says so, exit 1", p.returncode == 1 and "no GPU" in p.stderr,
          p.stderr)


def case_errors():
    cases = [
        ([], "nothing to predict"),
        (["--step-ms", 10], "gradient size"),
        (["--grad-mb", 10], "compute time"),
        (["--grad-mb", 10, "--step-ms", 10, "--images-per-s", 5], "one of"),
        (["--grad-mb", 10, "--gpu-tflops", 10], "needs --model"),
        (["--grad-mb", 10, "--step-ms", 10, "--gpus", "8", "--nodes", 3, "--net", "ib-hdr"],
         "must divide"),
        (["--grad-mb", 10, "--step-ms", 10, "--gpus", "8", "--nodes", 2], "needs --net"),
        (["--grad-mb", 10, "--step-ms", 10, "--gpus", "0"], "--gpus"),
        (["--grad-mb", 10, "--step-ms", 10, "--gpus", "1,,2"], "--gpus"),
        (["--grad-mb", 10, "--step-ms", 10, "--gpus", "2,"], "--gpus"),
        (["--model", "vgg", "--step-ms", 10], "unknown model"),
        (["--model", "resnet50", "--input", "3x224", "--step-ms", 10], "--input"),
        (["--grad-mb", 10, "--step-ms", -1], "--step-ms"),
        (["--grad-mb", 10, "--step-ms", 10, "--bucket-mb", 0], "--bucket-mb"),
        (["--grad-mb", 10, "--step-ms", 10, "--link-shares", 2], "did you mean"),
    ]
    for args, text in cases:
        p = run(*args)
        check(f"predict {' '.join(map(str, args))}: exit 2, '{text}'",
              p.returncode == 2 and text in p.stderr, f"exit {p.returncode}: {p.stderr.strip()}")
    p = run("--help")
    check("--help", p.returncode == 0 and "usage: dltrain predict" in p.stdout
          and "nvlink4" in p.stdout and "eth-100g" in p.stdout)


CASES = {"links": case_links, "unknown": case_unknown, "hand": case_hand, "json": case_json,
         "calibrate": case_calibrate, "bucket": case_bucket, "this": case_this, "errors": case_errors}
os.makedirs(WORK, exist_ok=True)
CASES[CASE]()
print(f"{len(FAILURES)} failed" if FAILURES else "all passed")
sys.exit(1 if FAILURES else 0)
