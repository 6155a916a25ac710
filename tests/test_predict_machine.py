"""`dltrain predict --machine` on the command line (docs/scaling.md,
docs/topology.md): the shipped machines, a sysfs tree and the same machine
from a saved `dltrain topo --json`, calibration, --grad-dtype, the what-ifs,
the bottleneck in words, and bad input (one line, exit 2).

usage: test_predict_machine.py DLTRAIN WORKDIR SYSFS_TREE"""
import json
import os
import subprocess
import sys

DLTRAIN, WORK, TREE = os.path.abspath(sys.argv[1]), sys.argv[2], sys.argv[3]
FAILURES = []
PRESETS = ["consumer-x8x8", "workstation-4gpu", "dual-socket-8gpu", "epyc-8gpu", "dgx1",
           "nvswitch-8gpu"]


def run(*args):
    return subprocess.run([DLTRAIN] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=60)


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + str(detail) if detail else ''}")
    if not ok:
        FAILURES.append(name)


def predict(*args):
    p = run("predict", "--model", "resnet50", "--batch", 64, *args, "--json", "-")
    if p.returncode != 0:
        check(f"predict {args}", False, p.stderr.strip())
        return None
    return json.loads(p.stdout)


def refused(args, words, name):
    p = run("predict", "--model", "resnet50", "--batch", 64, *args)
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    check(name, p.returncode == 2 and len(lines) == 1 and all(w in p.stderr for w in words),
          f"exit {p.returncode}: {p.stderr.strip()}")


def presets():
    for name in PRESETS:
        out = predict("--machine", name, "--step-ms", 100)
        if not out:
            continue
        rows = {r["gpus"]: r for r in out["rows"]}
        top = max(rows)
        check(f"{name}: counts up to the machine's GPUs", top == out["machine"]["gpus"], top)
        check(f"{name}: bottleneck named at {top} GPUs", len(rows[top].get("bottleneck", "")) > 10,
              rows[top].get("bottleneck"))
        labels = [w["label"] for w in out["whatifs"]]
        check(f"{name}: what-ifs", labels[:6] == ["as described", "P2P on everywhere",
                                                    "every GPU at x16", "every GPU at x8",
                                                    "every GPU at x4", "one PCIe generation up"],
              labels)
    out = predict("--machine", "dual-socket-8gpu", "--step-ms", 100)
    if out:
        r8 = [r for r in out["rows"] if r["gpus"] == 8][0]
        check("dual socket: the socket link at 8", "socket link" in r8["bottleneck"], r8["bottleneck"])
        check("dual socket: 4 P2P + 4 through the CPU", r8["hops"]["p2p"] == 4 and
              r8["hops"]["shm"] == 4, r8["hops"])
        w = {x["label"]: x["step"] for x in out["whatifs"]}
        check("x4 is slower than x16", w["every GPU at x4"]["step_ms"] > w["every GPU at x16"]["step_ms"])
    p = run("predict", "--model", "resnet50", "--step-ms", 100, "--machine", "dgx1")
    check("tables name the bottleneck in words", p.returncode == 0 and "what limits the ring" in
          p.stdout and "NVLinks of GPU" in p.stdout and "what if, at 8 GPUs" in p.stdout,
          p.stderr.strip())


def tree_and_json():
    a = predict("--machine", TREE, "--step-ms", 100)
    path = os.path.join(WORK, "machine_topo.json")
    t = run("topo", "--sysfs-root", TREE, f"--json={path}")
    check("topo --json written", t.returncode == 0 and os.path.exists(path), t.stderr.strip())
    b = predict("--machine", path, "--step-ms", 100)
    if a and b:
        ra, rb = a["rows"], b["rows"]
        check("sysfs tree and its topo --json give the same prediction",
              [(r["gpus"], round(r["gbps"], 6), r.get("bottleneck")) for r in ra] ==
              [(r["gpus"], round(r["gbps"], 6), r.get("bottleneck")) for r in rb], (ra, rb))
        check("consumer x8/x8 tree: 2 GPUs through the CPU", ra[-1]["hops"]["shm"] == 2, ra[-1])
    text = open(path, encoding="utf-8").read()
    cut = os.path.join(WORK, "machine_truncated.json")
    with open(cut, "w", encoding="utf-8") as f:
        f.write(text[: len(text) // 2])
    refused(["--step-ms", 100, "--machine", cut], ["truncated"], "truncated topo json")
    other = os.path.join(WORK, "machine_other.json")
    with open(other, "w", encoding="utf-8") as f:
        f.write(text.replace('"dltrain.topo/1"', '"dltrain.topo/9"'))
    refused(["--step-ms", 100, "--machine", other], ["another dltrain version", "dltrain.topo/9"],
            "topo json of another version")
    odd = os.path.join(WORK, "machine_odd.json")
    with open(odd, "w", encoding="utf-8") as f:
        json.dump({"schema": "dltrain.topo/1", "ports": [{"switch": 99999}], "switches": [],
                   "gpus": [{"compute": True, "path_ports": [1e300, -5, 0],
                             "link": {"max_speed": {"gts": 1e300}}}],
                   "pairs": [{"a": 1e300, "b": 0}]}, f)
    refused(["--step-ms", 100, "--machine", odd], ["PCIe link of GPU 0"], "nonsense values in topo json")
    empty = os.path.join(WORK, "machine_empty.json")
    with open(empty, "w", encoding="utf-8") as f:
        f.write("")
    refused(["--step-ms", 100, "--machine", empty], ["not JSON"], "empty file")


def calibration():
    out = predict("--machine", "8x pcie4x16, 2 sockets, no-p2p, amd", "--measured",
                  "1:1026.83,2:1828.21", "--gpus", "1,2,4,8")
    if out:
        rows = {r["gpus"]: r for r in out["rows"]}
        check("calibrated: 2 GPUs reproduce the measurement",
              abs(rows[2]["images_per_s"] - 1828.21) < 0.5, rows[2]["images_per_s"])
        check("one bandwidth factor fitted", out["fit"]["fitted"] == 1 and
              0 < out["fit"]["bw_factor"] < 1, out["fit"])
        # a 2-GPU loss larger than the whole all-reduce at NCCL's bandwidth
        # (4.35 ms over the 24 GB/s link): nothing hidden, bandwidth lowered
        check("a large loss: nothing hidden, bandwidth factor below 1",
              out["fit"]["quantity"] == "bandwidth, nothing hidden"
              and out["fit"]["backward_frac"] == 0, out["fit"])
    for ips2, quantity in (("2000", "backward share"), ("2052", "bandwidth")):
        out = predict("--machine", "8x pcie4x16, 2 sockets, no-p2p, amd", "--measured",
                      f"1:1026.83,2:{ips2}", "--gpus", "1,2,4,8")
        if not out:
            continue
        fit, rows = out["fit"], {r["gpus"]: r for r in out["rows"]}
        check(f"2 GPUs at {ips2}/s: fitted {quantity}", fit["quantity"] == quantity, fit)
        if quantity == "backward share":
            check("links at NCCL's bandwidth, part of the all-reduce hidden",
                  fit["bw_factor"] == 1 and 0 < fit["backward_frac"] < 2 / 3, fit)
            check("the fit reproduces the 2-GPU point",
                  abs(rows[2]["images_per_s"] - float(ips2)) < 0.5, rows[2]["images_per_s"])
        else:
            check("a loss smaller than full overlap allows: bandwidth above NCCL's",
                  fit["bw_factor"] > 1 and abs(fit["backward_frac"] - 2 / 3) < 1e-6, fit)
        check("compute from the 1-GPU point", abs(rows[1]["images_per_s"] - 1026.83) < 0.01)
    three = predict("--machine", "8x pcie4x16, 2 sockets, no-p2p, amd", "--measured",
                    "1:1026.83,2:1828.21,4:2798.55,8:4039.44")
    if three:
        check("four points: three quantities fitted", three["fit"]["fitted"] == 3, three["fit"])
    fp16 = predict("--machine", "epyc-8gpu", "--step-ms", 50, "--grad-dtype", "fp16")
    fp32 = predict("--machine", "epyc-8gpu", "--step-ms", 50)
    if fp16 and fp32:
        check("fp16 gradients are half the bytes", fp16["grad_bytes"] * 2 == fp32["grad_bytes"])
        check("and take less time", fp16["rows"][-1]["comm_ms"] < fp32["rows"][-1]["comm_ms"])
    net = predict("--machine", "consumer-x8x8", "--step-ms", 100, "--nodes", 2, "--net", "10gbit",
                  "--gpus", "1,2,4")
    if net:
        r4 = net["rows"][-1]
        check("two nodes over 10 Gbit/s: the network", r4["nodes"] == 2 and
              "network" in r4["bottleneck"] and r4["hops"]["net"] == 2, r4)


def sweep():
    # a synthetic bench allreduce over 4 ranks: 10 GB/s bus bandwidth, 7 us per step
    results, b = [], 4
    while b <= 1 << 30:
        results.append({"bytes": b, "time_us": 2 * 3 / 4 * b / 10e9 * 1e6 + 6 * 7.0})
        b *= 4
    path = os.path.join(WORK, "machine_sweep.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"bench": "allreduce", "version": 1, "world": 4, "results": results}, f,
                  indent=1)  # spaces after the colons: any JSON writer's layout is read
    out = predict("--machine", "dual-socket-8gpu", "--step-ms", 100, "--allreduce-json", path)
    if out:
        rows, fit = {r["gpus"]: r for r in out["rows"]}, out["fit"]
        # the machine's 4-GPU ring runs at the x16 links (12 GB/s): factor 10/12
        check("sweep calibrates the machine: bandwidth x 10/12", fit["sweep_ranks"] == 4 and
              abs(fit["bw_factor"] - 10 / 12) < 2e-3, fit)
        check("the 4-GPU ring matches the sweep", abs(rows[4]["gbps"] - 10) < 0.02, rows[4])
        # NCCL's 5.7 us per step on PCIe; the sweep says 7
        check("latency from the sweep", abs(rows[4]["alpha_us"] - 7) < 0.1, rows[4])
        check("8 GPUs: the socket link, scaled alike", abs(rows[8]["gbps"] - 10 * 10 / 12) < 0.02,
              rows[8])
    refused(["--step-ms", 100, "--machine", "consumer-x8x8", "--allreduce-json", path],
            ["4 ranks", "2 GPUs"], "sweep over more ranks than the machine has GPUs")
    refused(["--machine", "dual-socket-8gpu", "--allreduce-json", path, "--measured",
             "1:300,2:580"], ["give one"], "--measured with --allreduce-json")
    refused(["--step-ms", 100, "--machine", "dual-socket-8gpu", "--link", "pcie3x8"],
            ["drop --link"], "--machine with --link")


def bad_input():
    refused(["--step-ms", 100, "--machine", "8x pcie4x16, mem 1e999"], ["'mem 1e999'"],
            "infinite memory bandwidth")
    refused(["--step-ms", 100, "--machine", os.path.join(WORK, "no_such_topo.json")],
            ["No such file", "topo --json"], "a topo --json file that is not there")
    out = predict("--machine", "DGX1", "--step-ms", 100)
    check("shipped names in any case", out and out["machine"]["gpus"] == 8)
    refused(["--step-ms", 100, "--machine", "8x pcie4x16, warp-drive"],
            ["'warp-drive'", "no-p2p", "per switch"], "unknown machine word")
    refused(["--step-ms", 100, "--machine", "eight gpus"], ["Nx pcieGxW"], "no GPU clause")
    refused(["--machine", "epyc-8gpu", "--measured", "1:100,4:300,2:200"], ["must increase"],
            "measured counts not increasing")
    refused(["--machine", "epyc-8gpu", "--measured", "1:100,2:0"], ["positive"],
            "zero throughput")
    refused(["--machine", "epyc-8gpu", "--measured", "1:100,2:-5"], ["positive"],
            "negative throughput")
    refused(["--machine", "epyc-8gpu", "--measured", "1:abc"], ["not a number"], "junk throughput")
    refused(["--step-ms", 100, "--measured", "1:100,2:190"], ["--machine"], "--measured alone")
    refused(["--step-ms", 100, "--machine", "epyc-8gpu", "--grad-dtype", "fp8"], ["fp16"],
            "unknown gradient type")
    p = run("predict", "--grad-mb", 97.5, "--step-ms", 100, "--machine", "epyc-8gpu",
            "--grad-dtype", "fp16")
    check("--grad-dtype fp16 with --grad-mb refused, not ignored", p.returncode == 2 and
          "goes with --model" in p.stderr and len(p.stderr.strip().splitlines()) == 1,
          f"exit {p.returncode}: {p.stderr.strip()}")
    refused(["--step-ms", 100, "--machine", "epyc-8gpu", "--gpus", 16], ["machine has 8"],
            "more GPUs than the machine")
    refused(["--step-ms", 100, "--machine", "epyc-8gpu", "--nodes", 2, "--net", "2gbit"],
            ["unknown link '2gbit'", "10gbit"], "unknown network")


def main():
    os.makedirs(WORK, exist_ok=True)
    presets()
    tree_and_json()
    calibration()
    sweep()
    bad_input()
    if FAILURES:
        print(f"{len(FAILURES)} check(s) failed")
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
