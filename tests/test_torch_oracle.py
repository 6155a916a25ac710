#!/usr/bin/env python3
"""PyTorch as an external oracle for dltrain's numerics.

For every case of oracle_runner (single layers in tiny networks, LeNet,
ResNet-20, ResNet-50 on small inputs) the C program writes its seeded
parameters, running statistics, input and labels, and what it computed: a
training forward + loss + backward, an evaluation forward, an SGD step
(momentum, Nesterov, weight decay), a second training step and a second SGD
step.  This script rebuilds the same network in torch (tests/torch_models.py
for the models; the layer list of manifest.txt for the layer cases), maps the
flat parameter layout onto the torch modules explicitly (C layers that hold
parameters, in forward order, against the Conv2d / Linear / BatchNorm2d
modules in registration order, checking kind, shape, stride and padding),
and compares:

  logits, softmax, per-sample and mean loss, the input gradient and every
  parameter gradient (training mode), the running statistics after the
  forward, the evaluation-mode logits, one and two steps of torch.optim.SGD
  (parameters and momentum buffers), and the second step's loss and
  gradients.

The torch side runs in float64, so it measures the C fp32 error alone (no
second fp32 implementation's rounding mixed in).  A float32 torch forward and
backward is run too and reported for information.

Error per tensor: max|c - torch| / max(max|torch|, 1e-20); every tensor must
be within TOL = 1e-4; the worst is reported.  (Exception: a parameter
gradient that is exactly zero in exact arithmetic, like the bias of a layer
followed by batch norm, is measured against 1e-3 of the network's largest
parameter gradient.)

usage: test_torch_oracle.py ORACLE_RUNNER [CASE...] [-v]"""
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:  # CTest reports exit status 77 as skipped
    print(f"skipped: {e} (run with Debian's /usr/bin/python3 and python3-torch)")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_models  # noqa: E402

TOL = 1e-4
TINY = 1e-20
GRAD_FLOOR = 1e-3
# ResNet-50 (3x64x64, batch 4: batch norm over 16 values in the last stage)
# is so ill-conditioned in backward that float32 torch itself is up to ~3e-1
# off float64 in some weight gradients (measured: C 0.26, fp32 torch 0.28 on
# the same tensor).  Its gradients are held to "no worse than RELAX x fp32
# torch's error"; its forward, losses, running statistics and SGD steps still
# to TOL.  The number of tensors judged that way is printed.
# Per tensor this is a lottery, not a fixed bound: in the last stages a
# ReLU whose input lies within rounding of zero flips between fp32
# implementations, and one flip moves a whole channel's gradient.  Measured
# on the same tensors: dltrain's BLAS path 1e-4 off float64, its AVX-512
# packed kernels up to 0.07 (layer3.3.batchnorm117.bias, where fp32 torch
# was 0.032) and fp32 torch up to 0.23, so RELAX leaves room for that.
FP32_LIMITED = {"resnet50"}
RELAX = 3.0
torch.set_num_threads(2)
torch.backends.cudnn.enabled = False


class Manifest:
    def __init__(self, path):
        self.tensors = {}
        self.layers = []
        self.bn = {}
        self.bn_relu = {}  # batch-norm layers with the following ReLU fused in
        with open(path) as f:
            for line in f:
                w = line.split()
                if not w:
                    continue
                key = w[0]
                if key == "tensor":
                    self.tensors[int(w[1])] = tuple(int(v) for v in w[2:5])
                elif key == "layer":
                    self.layers.append(dict(
                        idx=int(w[1]), kind=w[2], in0=int(w[3]), in1=int(w[4]), out=int(w[5]),
                        param_off=int(w[6]), n_params=int(w[7]), buffer_off=int(w[8]),
                        n_buffers=int(w[9]), a=int(w[10]), b=int(w[11]), c=int(w[12]),
                        d=int(w[13]), e=int(w[14]), name=w[15]))
                elif key == "bn":
                    self.bn[int(w[1])] = (float(w[2]), float(w[3]))
                    self.bn_relu[int(w[1])] = w[4] == "1"
                elif key in ("case", "model"):
                    setattr(self, key, w[1])
                elif key == "input":
                    self.input = tuple(int(v) for v in w[1:4])
                elif key == "sgd":
                    self.sgd = (float(w[1]), float(w[2]), float(w[3]), int(w[4]))
                elif key in ("classes", "batch", "n_params", "n_trainable", "n_buffers"):
                    setattr(self, key, int(w[1]))
                elif key in ("loss1", "loss_eval", "loss2"):
                    setattr(self, key, float(w[1]))


class Graph(nn.Module):
    """A layer network described by manifest.txt (the layer cases)."""

    def __init__(self, man):
        super().__init__()
        self.man = man
        mods = []
        for L in man.layers:
            cin = man.tensors[L["in0"]][0]
            k = L["kind"]
            if k == "conv":
                m = nn.Conv2d(cin, L["a"], L["b"], L["c"], L["d"], bias=bool(L["e"]))
            elif k == "fc":
                c, h, w = man.tensors[L["in0"]]
                m = nn.Linear(c * h * w, L["a"], bias=bool(L["e"]))
            elif k == "maxpool":
                m = nn.MaxPool2d(L["b"], L["c"], L["d"])
            elif k == "avgpool":
                m = nn.AvgPool2d(L["b"], L["c"], L["d"])  # count_include_pad=True
            elif k == "gap":
                m = nn.AdaptiveAvgPool2d(1)
            elif k == "batchnorm":
                eps, mom = man.bn[L["idx"]]
                m = nn.BatchNorm2d(cin, eps=eps, momentum=mom)
                if man.bn_relu[L["idx"]]:
                    m = nn.Sequential(m, nn.ReLU())
            elif k == "relu":
                m = nn.ReLU()
            elif k == "add":
                m = nn.Identity()
            else:
                raise ValueError(f"unknown layer kind {k}")
            mods.append(m)
        self.mods = nn.ModuleList(mods)

    def forward(self, x):
        t = {0: x}
        for L, m in zip(self.man.layers, self.mods):
            a = t[L["in0"]]
            if L["kind"] == "fc":
                y = m(a.flatten(1)).reshape(a.shape[0], -1, 1, 1)
            elif L["kind"] == "add":
                y = a + t[L["in1"]]
            else:
                y = m(a)
            t[L["out"]] = y
        return t[self.man.layers[-1]["out"]].flatten(1)


def build_torch(man):
    if man.model != "-":
        c, h, w = man.input
        return torch_models.MODELS[man.model](c, h, w, man.classes)
    return Graph(man)


KINDS = {"conv": nn.Conv2d, "fc": nn.Linear, "batchnorm": nn.BatchNorm2d}


def mapping(man, model):
    """[(C layer, torch module)] for every layer with parameters, checked."""
    c_layers = [L for L in man.layers if L["n_params"] > 0 or L["kind"] == "batchnorm"]
    t_mods = [m for m in model.modules() if isinstance(m, tuple(KINDS.values()))]
    if len(c_layers) != len(t_mods):
        raise AssertionError(f"{len(c_layers)} C layers with parameters, {len(t_mods)} torch modules")
    pairs = []
    for L, m in zip(c_layers, t_mods):
        if not isinstance(m, KINDS[L["kind"]]):
            raise AssertionError(f"C layer {L['name']} ({L['kind']}) maps to torch {m}")
        cin = man.tensors[L["in0"]]
        if L["kind"] == "conv":
            want = (L["a"], cin[0], L["b"], L["b"])
            ok = (tuple(m.weight.shape) == want and m.stride == (L["c"], L["c"])
                  and m.padding == (L["d"], L["d"]) and (m.bias is not None) == bool(L["e"]))
        elif L["kind"] == "fc":
            want = (L["a"], cin[0] * cin[1] * cin[2])
            ok = tuple(m.weight.shape) == want and (m.bias is not None) == bool(L["e"])
        else:
            want = (cin[0],)
            eps, mom = man.bn[L["idx"]]  # fp32 values, printed with 9 digits
            ok = tuple(m.weight.shape) == want and abs(m.eps - eps) <= 1e-6 * eps \
                and abs(m.momentum - mom) <= 1e-6 * mom
        n = m.weight.numel() + (m.bias.numel() if m.bias is not None else 0)
        if not ok or n != L["n_params"]:
            raise AssertionError(f"C layer {L['name']} {want} ({L['n_params']} params) does not "
                                 f"match torch {m}")
        pairs.append((L, m))
    covered = sum(L["n_params"] for L in c_layers)
    if covered != man.n_trainable:
        raise AssertionError(f"mapped {covered} of {man.n_trainable} parameters")
    for L in c_layers:  # each layer's slice on 256 bytes (runtime/net.h DL_NET_PARAM_ALIGN)
        if L["n_params"] and L["param_off"] % 64:
            raise AssertionError(f"C layer {L['name']} starts at float {L['param_off']}, "
                                 "not on 64 floats")
    return pairs


def param_slices(L, m):
    """(torch tensor, offset in the flat layout) for weight, bias."""
    out = [(m.weight, L["param_off"])]
    if m.bias is not None:
        out.append((m.bias, L["param_off"] + m.weight.numel()))
    return out


def load_state(pairs, params, buffers):
    with torch.no_grad():
        for L, m in pairs:
            for t, off in param_slices(L, m):
                t.copy_(torch.from_numpy(params[off:off + t.numel()].reshape(t.shape)))
            if isinstance(m, nn.BatchNorm2d):
                c, off = m.num_features, L["buffer_off"]
                m.running_mean.copy_(torch.from_numpy(buffers[off:off + c]))
                m.running_var.copy_(torch.from_numpy(buffers[off + c:off + 2 * c]))


def gather(pairs, n, what):
    """A flat array in dltrain's layout from per-module tensors; the padding
    between layers is zero, as dltrain must keep it in parameters, gradients
    and momentum (so the comparisons check that too)."""
    flat = np.zeros(n)
    for L, m in pairs:
        for t, off in param_slices(L, m):
            v = what(t)
            flat[off:off + t.numel()] = v.detach().double().reshape(-1).numpy()
    return flat


def gather_buffers(pairs, n):
    flat = np.full(n, np.nan)
    for L, m in pairs:
        if isinstance(m, nn.BatchNorm2d):
            c, off = m.num_features, L["buffer_off"]
            flat[off:off + c] = m.running_mean.double().numpy()
            flat[off + c:off + 2 * c] = m.running_var.double().numpy()
    return flat


def rel_err(c, ref, floor=TINY):
    c = np.asarray(c, dtype=np.float64).reshape(-1)
    ref = np.asarray(ref, dtype=np.float64).reshape(-1)
    if c.shape != ref.shape:
        return float("inf"), 0
    if c.size == 0:
        return 0.0, 0
    d = np.abs(c - ref)
    d[np.isnan(d)] = np.inf
    at = int(np.argmax(d))
    return float(d[at] / max(np.max(np.abs(ref)), floor)), at


class Report:
    def __init__(self, case, verbose):
        self.case, self.verbose = case, verbose
        self.rows, self.failures = [], []
        self.relaxed = 0

    def check(self, what, c, ref, tol=TOL, info=False, floor=TINY, fp32=None):
        if fp32 is not None and self.case in FP32_LIMITED:
            # no fp32 implementation gets within TOL here: C may be as far
            # from float64 as RELAX times fp32 torch's own error
            tol = max(tol, RELAX * rel_err(fp32, ref, floor)[0])
            if tol > TOL:
                self.relaxed += 1
        err, at = rel_err(c, ref, floor)
        self.rows.append((err, what, info))
        bad = not info and not err <= tol
        if bad:
            cv, rv = np.asarray(c).reshape(-1), np.asarray(ref).reshape(-1)
            self.failures.append(f"{self.case}: {what}: rel err {err:.3g} > {tol:g} "
                                 f"(at {at}: C {cv[at] if at < cv.size else '?'} "
                                 f"torch {rv[at] if at < rv.size else '?'})")
        if self.verbose or bad:
            print(f"  {'FAIL' if bad else 'info' if info else 'ok  '} {what:48s} {err:.3g}"
                  + (f"  (tol {tol:.3g})" if tol != TOL and not info else ""))
        return err

    def worst(self, info=False):
        rows = [r for r in self.rows if r[2] == info]
        return max(rows) if rows else (0.0, "-", info)


def run_case(runner, case, verbose):
    rep = Report(case, verbose)
    with tempfile.TemporaryDirectory(prefix="dl_oracle_") as d:
        p = subprocess.run([runner, case, d], capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            rep.failures.append(f"{case}: oracle_runner failed ({p.returncode}): {p.stderr.strip()}")
            return rep
        man = Manifest(os.path.join(d, "manifest.txt"))

        def f32(name):
            return np.fromfile(os.path.join(d, name), dtype="<f4")

        labels = torch.from_numpy(np.fromfile(os.path.join(d, "labels.bin"), dtype="<i4")).long()
        n, k = man.batch, man.classes
        x_np = f32("x.bin").reshape((n,) + man.input)
        params0, buffers0 = f32("params0.bin"), f32("buffers0.bin")

        torch.manual_seed(0)
        model = build_torch(man)
        pairs = mapping(man, model)
        load_state(pairs, params0, buffers0)
        model32 = build_torch(man)  # a float32 twin, for information and for SGD
        pairs32 = mapping(man, model32)
        load_state(pairs32, params0, buffers0)
        model.double()

        def train_step(mdl, prs, dtype):
            mdl.train()
            mdl.zero_grad(set_to_none=True)
            x = torch.from_numpy(x_np).to(dtype).requires_grad_(True)
            logits = mdl(x)
            per = F.cross_entropy(logits, labels, reduction="none")
            loss = per.mean()
            loss.backward()
            grads = gather(prs, man.n_params, lambda t: t.grad)
            return dict(logits=logits.detach(), per=per.detach(), loss=loss.item(),
                        probs=torch.softmax(logits.detach(), 1), dx=x.grad,
                        grads=grads, buffers=gather_buffers(prs, man.n_buffers))

        # 1. training forward + backward
        t1 = train_step(model, pairs, torch.float64)
        rep.check("train: logits", f32("logits1.bin"), t1["logits"])
        rep.check("train: softmax", f32("probs1.bin"), t1["probs"])
        rep.check("train: per-sample loss", f32("loss1.bin"), t1["per"])
        rep.check("train: mean loss", [man.loss1], [t1["loss"]])
        # float32 torch twin, for information and for the fp32-limited cases
        t32 = train_step(model32, pairs32, torch.float32)
        rep.check("train: input gradient", f32("dx1.bin"), t1["dx"], fp32=t32["dx"])
        g1 = f32("grads1.bin")
        # A gradient that is exactly zero (the bias of a layer followed by
        # batch norm: normalisation removes any constant) is fp32 rounding
        # noise in C; such tensors are measured against GRAD_FLOOR times the
        # largest parameter gradient of the network instead of their own.
        floor = GRAD_FLOOR * np.max(np.abs(t1["grads"]))
        for L, m in pairs:
            for t, off in param_slices(L, m):
                nm = "weight" if t is m.weight else "bias"
                rep.check(f"train: grad {L['name']}.{nm}", g1[off:off + t.numel()],
                          t1["grads"][off:off + t.numel()], floor=floor,
                          fp32=t32["grads"][off:off + t.numel()])
        if man.n_buffers:
            b1 = f32("buffers1.bin")
            for L, m in pairs:
                if isinstance(m, nn.BatchNorm2d):
                    c, off = m.num_features, L["buffer_off"]
                    rep.check(f"train: {L['name']}.running_mean", b1[off:off + c],
                              t1["buffers"][off:off + c])
                    rep.check(f"train: {L['name']}.running_var", b1[off + c:off + 2 * c],
                              t1["buffers"][off + c:off + 2 * c])
        rep.check("fp32 torch: logits", f32("logits1.bin"), t32["logits"], info=True)
        rep.check("fp32 torch: input gradient", f32("dx1.bin"), t32["dx"], info=True)
        rep.check("fp32 torch: all gradients", g1, t32["grads"], info=True)
        rep.check("fp32 torch vs float64 torch: all gradients", t32["grads"], t1["grads"],
                  info=True)

        # 2. evaluation forward with the running statistics of step 1
        model.eval()
        with torch.no_grad():
            le = model(torch.from_numpy(x_np).double())
        rep.check("eval: logits", f32("logits_eval.bin"), le)
        rep.check("eval: mean loss", [man.loss_eval], [F.cross_entropy(le, labels).item()])

        # 3. one SGD step with torch.optim.SGD on the float32 twin, given the
        #    C gradients, so the update rule alone is compared
        lr, mom, wd, nest = man.sgd
        load_state(pairs32, params0, buffers0)
        plist = [t for L, m in pairs32 for t, _ in param_slices(L, m)]
        opt = torch.optim.SGD(plist, lr=lr, momentum=mom, weight_decay=wd, nesterov=bool(nest))

        def sgd_step(grads_flat, tag):
            with torch.no_grad():
                for L, m in pairs32:
                    for t, off in param_slices(L, m):
                        t.grad = torch.from_numpy(grads_flat[off:off + t.numel()].copy()) \
                            .reshape(t.shape)
            before = gather(pairs32, man.n_params, lambda t: t)
            opt.step()
            after = gather(pairs32, man.n_params, lambda t: t)
            vel = gather(pairs32, man.n_params, lambda t: opt.state[t]["momentum_buffer"])
            pc, vc = f32(f"params{tag}.bin"), f32(f"velocity{tag}.bin")
            rep.check(f"sgd step {tag}: parameters", pc, after)
            rep.check(f"sgd step {tag}: momentum buffer", vc, vel)
            # the update itself, so it is not hidden behind the parameters' size
            rep.check(f"sgd step {tag}: update (p_new - p_old)", pc.astype(np.float64) - before,
                      after - before)
        sgd_step(g1, 1)

        # 4. second training step, at the C parameters after step 1 (and the C
        #    running statistics after step 1)
        load_state(pairs, f32("params1.bin").astype(np.float64), f32("buffers1.bin")
                   .astype(np.float64))
        t2 = train_step(model, pairs, torch.float64)
        t2_32 = None
        if case in FP32_LIMITED:
            load_state(pairs32, f32("params1.bin"), f32("buffers1.bin"))
            t2_32 = train_step(model32, pairs32, torch.float32)
        rep.check("step 2: logits", f32("logits2.bin"), t2["logits"])
        rep.check("step 2: mean loss", [man.loss2], [t2["loss"]])
        rep.check("step 2: input gradient", f32("dx2.bin"), t2["dx"],
                  fp32=t2_32["dx"] if t2_32 else None)
        g2 = f32("grads2.bin")
        rep.check("step 2: all gradients", g2, t2["grads"],
                  fp32=t2_32["grads"] if t2_32 else None)
        if man.n_buffers:
            rep.check("step 2: running statistics", f32("buffers2.bin"), t2["buffers"])
        # 5. second SGD step (momentum buffers carried over)
        with torch.no_grad():  # continue from exactly the C parameters
            p1 = f32("params1.bin")
            for L, m in pairs32:
                for t, off in param_slices(L, m):
                    t.copy_(torch.from_numpy(p1[off:off + t.numel()].reshape(t.shape)))
        sgd_step(g2, 2)
    return rep


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    verbose = "-v" in sys.argv
    if not args:
        print(__doc__)
        return 2
    runner = os.path.abspath(args[0])
    listing = subprocess.run([runner, "--list"], capture_output=True, text=True, check=True)
    cases = [line.split("\t")[0] for line in listing.stdout.splitlines() if line.strip()]
    if args[1:]:
        cases = [c for c in cases if c in args[1:]]
    print(f"torch {torch.__version__}; tolerance {TOL:g} (max|c - torch| / max|torch| per tensor)")
    failures, worst = [], (0.0, "-", "-")
    for case in cases:
        if verbose:
            print(f"{case}:")
        rep = run_case(runner, case, verbose)
        failures += rep.failures
        w, what, _ = rep.worst()
        wi, whati, _ = rep.worst(info=True)
        note = f" ({rep.relaxed} held to {RELAX:g}x fp32 torch)" if rep.relaxed else ""
        print(f"{case:16s} {len(rep.rows):4d} tensors  worst {w:9.3g}  {what:44s}"
              f"  [fp32 torch: worst {wi:.3g} {whati}]{note}", flush=True)
        if w > worst[0] or worst[1] == "-":
            worst = (w, case, what)
    print(f"worst over all cases: {worst[0]:.3g} ({worst[1]}: {worst[2]})")
    for f in failures:
        print("FAIL " + f)
    print("FAILED" if failures else "passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
