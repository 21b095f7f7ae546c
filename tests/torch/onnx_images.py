#!/usr/bin/python3
"""Image networks built in PyTorch (a VGG-style net, ResNet BasicBlocks, torchvision's ResNet-18),
exported with torch.onnx.export in training mode (BatchNormalization kept; gradscope normalises
with the batch's statistics, as the module does in training mode) and in eval mode (torch folds
each batch norm into the conv before it), and run by `gradscope run model.onnx`.

For each run: the weights gradscope used (--save-weights) are the module's, bit for bit; the
network its resolved config describes, rebuilt with torch.nn.functional over those weights,
computes the module's own output; and every per-op statistic of the report (the pre-activation's
and the output's moments, dead units, the gradient's rms and gain, the weight and bias gradient
norms), every parameter's norm and gradient norm, the output gradient and the loss agree with
PyTorch autograd in float64. In training mode every parameter's gradient norm is also compared
with the module's own parameter's (by the ONNX initializer gradscope names as its source).

usage: /usr/bin/python3 tests/torch/onnx_images.py PATH/TO/gradscope
Exit 0 when every run agrees within tolerance, 1 otherwise; 77 without torchvision.
"""
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import torch_crosscheck as xc  # noqa: E402

# The reference is float64 autograd on the values the run used (float32 weights widened exactly).
# float64 runs: both programs round each product once and sum at most a few thousand terms in
# another order (relative rounding below 1e-12); 1e-9 leaves room for the amplification through
# a ResNet-18's 20 layers while a wrong formula or a missed term is far above it (largest seen
# 2e-13). float32 runs: gradscope's float32 rounding through the network against the exact
# values, 24-bit products summed over up to 1e4 terms per entry (largest seen 2e-6).
TOLERANCE = {"float64": 1e-9, "float32": 1e-4}
# The module's output against the rebuilt network's: the same float64 operations in another
# grouping (conv2d against conv2d, batch norm's statistics in another order).
OUTPUT_TOLERANCE = 1e-12
BATCH = 4


class Mean(nn.Module):
    """x.mean((2, 3), keepdim): exported as ReduceMean over (2, 3)."""

    def __init__(self, keepdim):
        super().__init__()
        self.keepdim = keepdim

    def forward(self, x):
        return x.mean((2, 3), keepdim=self.keepdim)


def vgg():
    """Conv (+bias) -> ReLU -> MaxPool ..., an average pooling with padding (torch writes a Pad
    before it), a strided, dilated, grouped conv, a flatten and a Linear."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 12, 3, padding=1), nn.BatchNorm2d(12), nn.ReLU(),
        nn.AvgPool2d(3, 2, padding=1),
        nn.Conv2d(12, 12, 3, stride=2, padding=2, dilation=2, groups=3), nn.Tanh(),
        nn.Flatten(), nn.Linear(12 * 2 * 2, 5))


class ViewNet(nn.Module):
    """Conv -> ReLU -> MaxPool, then x.view(x.size(0), -1): with a dynamic batch torch exports
    Shape, Gather, Unsqueeze, Concat and Reshape."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.fc = nn.Linear(6 * 4 * 4, 3)

    def forward(self, x):
        x = self.features(x)
        return self.fc(x.view(x.size(0), -1))


def basic_blocks(keepdim):
    """A ResNet stem and two torchvision BasicBlocks without downsampling, a global average
    pooling (AdaptiveAvgPool2d, or x.mean((2, 3)) with or without keepdim) and a Linear."""
    from torchvision.models.resnet import BasicBlock
    pool = [nn.AdaptiveAvgPool2d(1), nn.Flatten()] if keepdim is None else \
        [Mean(keepdim)] + ([nn.Flatten()] if keepdim else [])
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.MaxPool2d(3, 2, padding=1), BasicBlock(8, 8), BasicBlock(8, 8), *pool, nn.Linear(8, 4))


def downsampling_blocks():
    """A stem, a BasicBlock, and a BasicBlock that doubles the channels and halves the image, its
    skip path a 1x1 conv of stride 2 and a batch norm (torchvision's downsample)."""
    from torchvision.models.resnet import BasicBlock
    down = nn.Sequential(nn.Conv2d(8, 16, 1, stride=2, bias=False), nn.BatchNorm2d(16))
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        BasicBlock(8, 8), BasicBlock(8, 16, stride=2, downsample=down),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 3))


def resnet18():
    import torchvision
    return torchvision.models.resnet18(weights=None, num_classes=6)


# name, builder, input (C, H, W), loss, modes, precisions
CASES = [
    ("vgg", vgg, (3, 12, 12), "mse", ("training", "eval"), ("float64", "float32")),
    ("view", ViewNet, (3, 8, 8), "mse", ("training",), ("float64",)),
    ("blocks", lambda: basic_blocks(None), (3, 12, 12), "probe", ("training", "eval"),
     ("float64", "float32")),
    ("blocks-mean", lambda: basic_blocks(True), (3, 8, 8), "mse", ("training",), ("float64",)),
    ("blocks-mean-flat", lambda: basic_blocks(False), (3, 8, 8), "mse", ("training",),
     ("float64",)),
    ("blocks-down", downsampling_blocks, (3, 8, 8), "probe", ("training",),
     ("float64", "float32")),
    # torchvision's ResNet-18 at 64 x 64, batch 4. (At 32 x 32 its last stage is 1 x 1, where
    # each batch norm normalises 4 values per channel: float32 rounding grows there to some 1e-4
    # of the gradients, in PyTorch's own float32 as in gradscope's.)
    ("resnet18", resnet18, (3, 64, 64), "mse", ("training",), ("float64", "float32")),
]
# Exported in eval mode, a downsample's conv carries its folded batch norm as a bias, which
# gradscope's learned projection does not have: refused, naming the node and saying what to do.
EVAL_REFUSED = [("blocks-down", downsampling_blocks, (3, 8, 8)),
                ("resnet18", resnet18, (3, 32, 32))]


def pair(v):
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def activation_of(item):
    return xc.activation_spec(item.get("activation", "linear"))


class Rebuilt:
    """The network of a resolved config over the run's tensors, in float64, recording per
    reported op what gradscope states (xc.torch_statistics's layer dicts)."""

    # Ops whose gradient statistic is dL/d(their input).
    INPUT_GRAD = ("norm", "activation", "pool", "flatten")

    def __init__(self, tensors):
        self.t = tensors
        self.op = 0
        self.layers = []
        self.block_input = None

    def leaf(self, name, default=None):
        a = self.t.get(name)
        v = torch.tensor(a, dtype=torch.float64) if a is not None else default
        return v.clone().requires_grad_(True)

    def run_items(self, items, x):
        for item in items:
            if "block" not in item:
                x = self.run_op(item, x)
                continue
            for _ in range(int(item.get("repeat", 1))):
                residual = item.get("residual")
                if not residual:
                    x = self.run_items(item["block"], x)
                    continue
                first = item["block"][0]
                if kind_of(first) in self.INPUT_GRAD:
                    # The branch's first op reports dL/d(block input), the skip's share included.
                    x = x.clone()
                    self.block_input = x
                self.op += 1  # the begin
                skip = x
                branch = self.run_items(item["block"], x)
                pre = branch.clone()
                pre.retain_grad()
                layer = {"op": self.op, "kind": "residual_end", "pre": pre}
                if residual.get("projection"):
                    skip = self.projection(residual["projection"], skip, branch, layer)
                y = float(residual.get("skip", 1.0)) * skip + float(residual["scale"]) * pre
                layer["out"] = y
                self.layers.append(layer)
                self.op += 1
                x = y
        return x

    def projection(self, spec, skip, branch, layer):
        """The learned projection of an image block (torchvision's downsample): a 1x1 conv of
        stride in / out without bias, then its batch norm (gamma 1, beta 0) unless "norm" is
        false."""
        if not isinstance(spec, dict) or skip.dim() != 4:
            raise SystemExit("onnx_images: only the learned projection of images is rebuilt")
        k = f"ops.{self.op}"
        w = self.leaf(k + ".projection.weight")
        stride = (skip.shape[2] // branch.shape[2], skip.shape[3] // branch.shape[3])
        p = F.conv2d(skip, w, stride=stride)
        layer["params"] = [("projection.weight", w, p, skip)]
        if spec.get("norm"):
            name, eps = xc.norm_spec(spec["norm"])
            n = p.shape[1]
            gamma = torch.ones(n, dtype=torch.float64, requires_grad=True)
            beta = torch.zeros(n, dtype=torch.float64, requires_grad=True)
            p = F.batch_norm(p, None, None, gamma, beta, training=True, eps=eps)
            layer["params"] += [("projection_norm.weight", gamma, p, "per_unit"),
                                ("projection_norm.bias", beta, p, None)]
        return p

    def input_pre(self, x):
        if self.block_input is not None:
            pre, self.block_input = self.block_input, None
        else:
            pre = x.clone()
        pre.retain_grad()
        return pre

    def run_op(self, item, x):
        k = f"ops.{self.op}"
        kind = kind_of(item)
        layer = {"op": self.op, "kind": kind}
        if kind in ("conv", "dense"):
            w = self.leaf(k + ".weight")
            b = self.leaf(k + ".bias") if (k + ".bias") in self.t else None
            if kind == "conv":
                c = item["conv"]
                h = F.conv2d(x, w, b, stride=pair(c["stride"]), padding=pair(c["padding"]),
                             dilation=pair(c["dilation"]), groups=int(c["groups"]))
            else:
                h = F.linear(x, w, b)
            h.retain_grad()
            name, param = activation_of(item)
            y = xc.ACTIVATIONS[name](h, param)
            layer.update(pre=h, slope=xc.accurate_slope(name, param, h),
                         params=[("weight", w, h, x)] + ([("bias", b, h, None)] if b is not None
                                                         else []))
            self.block_input = None
        else:
            pre = self.input_pre(x)
            layer["pre"] = pre
            if kind == "activation":
                name, param = activation_of(item)
                y = xc.ACTIVATIONS[name](pre, param)
                layer["slope"] = xc.accurate_slope(name, param, pre)
            elif kind == "pool":
                p = item["pool"]
                if p["kind"] == "global_average":
                    y = F.adaptive_avg_pool2d(pre, 1)
                elif p["kind"] == "max":
                    y = F.max_pool2d(pre, pair(p["kernel"]), pair(p["stride"]),
                                     pair(p["padding"]))
                else:
                    y = F.avg_pool2d(pre, pair(p["kernel"]), pair(p["stride"]),
                                     pair(p["padding"]), count_include_pad=True)
            elif kind == "flatten":
                y = pre.reshape(pre.shape[0], -1)
            elif kind == "norm":
                name, eps = xc.norm_spec(item["norm"])
                if name != "batch_norm" or pre.dim() != 4:
                    raise SystemExit(f"onnx_images: norm {name} not rebuilt")
                n = pre.shape[1]
                gamma = self.leaf(k + ".weight", torch.ones(n, dtype=torch.float64))
                beta = self.leaf(k + ".bias", torch.zeros(n, dtype=torch.float64))
                y = F.batch_norm(pre, None, None, gamma, beta, training=True, eps=eps)
                layer["params"] = [("weight", gamma, y, "per_unit"), ("bias", beta, y, None)]
            else:
                raise SystemExit(f"onnx_images: item {item} not rebuilt")
        layer["out"] = y
        self.layers.append(layer)
        self.op += 1
        return y


def kind_of(item):
    for key in ("conv", "pool", "flatten", "norm"):
        if key in item:
            return key
    return "dense" if "width" in item else "activation"


def rows(t):
    """(batch, features) in gradscope's order: C H W per example."""
    return t.reshape(t.shape[0], -1)


def reference(config, tensors):
    """Every statistic the comparison reads, from float64 autograd, and the output."""
    inp = config["input"]
    shape = (int(inp["batch"]), int(inp["channels"]), int(inp["height"]), int(inp["width"]))
    x = torch.tensor(tensors["input"], dtype=torch.float64).reshape(shape).requires_grad_(True)
    net = Rebuilt(tensors)
    y = net.run_items(config["layers"], x)
    y.retain_grad()
    loss_name = config["loss"] if isinstance(config["loss"], str) else config["loss"]["name"]
    if loss_name == "probe":
        probe = torch.tensor(tensors["probe"], dtype=torch.float64).reshape(y.shape)
        loss = (probe * y).sum()
    elif loss_name == "mse":
        target = torch.tensor(tensors["targets"], dtype=torch.float64)
        loss = (y - target).square().sum() / (2 * y.shape[0])
    else:
        raise SystemExit(f"onnx_images: loss {loss_name} not rebuilt")
    loss.backward()
    stats = []
    for layer in net.layers:
        out = rows(layer["out"])
        preact = layer["pre"] if layer["kind"] in ("conv", "dense") else layer["pre"]
        s = {"op": layer["op"], "kind": layer["kind"], "width": out.shape[1],
             "preact": xc.moments(preact), "act": xc.moments(out),
             "grad": xc.log10_norm(layer["pre"].grad, rms=True), "dead_units": 0}
        if "slope" in layer:
            slope = rows(layer["slope"])
            s["dead_units"] = int((slope.abs() < torch.finfo(torch.float64).tiny).all(0).sum())
        if "params" in layer:
            s["params"] = [{"role": role, "shape": list(p.shape),
                            "norm": float(p.detach().norm()),
                            "grad": xc.log10_norm(p.grad)} for role, p, _, _ in layer["params"]]
        stats.append(s)
    return stats, y, float(loss), xc.log10_norm(y.grad, rms=True)


def compare(report, stats, loss, output_grad, tol, dead_tol):
    """The report's numbers against the reference's; a list of what differs."""
    failures = []
    layers = report["layers"]
    if len(layers) != len(stats):
        return [f"{len(layers)} layers in the report, {len(stats)} rebuilt"]
    # A gradient that is 0 in exact arithmetic (a conv's bias before a batch norm) is rounding on
    # both sides: below this share of the largest parameter gradient both count as 0 (float64:
    # 1e-12; float32: 1e-6, its unit roundoff 6e-8 over sums of up to 1e4 terms).
    share = 1e-12 if tol < 1e-6 else 1e-6
    top = max((p["grad"] for s in stats for p in s.get("params", [])), default=-math.inf)
    floor = top + math.log10(share)

    def rel(what, ours, theirs, scale=0.0):
        if ours is None or theirs is None:
            if ours is not theirs:
                failures.append(f"{what}: gradscope {ours}, torch {theirs}")
            return
        d = abs(ours - theirs) / max(abs(ours), abs(theirs), scale, 1e-300)
        if d > tol:
            failures.append(f"{what}: gradscope {ours!r}, torch {theirs!r} ({d:.2g} relative)")

    def log_rel(what, ours, theirs, zero_floor=None):
        if zero_floor is not None and ours <= zero_floor and theirs <= zero_floor:
            return
        d = xc.relative_from_log10(ours, theirs)
        if d > tol:
            failures.append(f"{what}: gradscope 10^{ours!r}, torch 10^{theirs!r} "
                            f"({d:.2g} relative)")

    above = output_grad
    for s in reversed(stats):
        s["gain"] = s["grad"] - above
        above = s["grad"]
    params = {}
    for lr, s in zip(layers, stats):
        where = f"layer {lr['index']} ({lr['kind']})"
        want = "residual" if s["kind"] == "residual_end" else s["kind"]
        if lr["kind"] != want or lr["width"] != s["width"]:
            return failures + [f"{where}: the rebuilt op {s['op']} is a {want} of width "
                               f"{s['width']}, the report's {lr['width']} wide"]
        fw, bw = lr["forward"], lr["backward"]
        scale = max(s["act"]["rms"], fw["act"]["rms"] or 0.0)
        for key in ("mean", "rms", "min", "max"):
            rel(f"{where} act.{key}", fw["act"][key], s["act"][key], scale)
        rel(f"{where} preact.rms", fw["preact"]["rms"], s["preact"]["rms"])
        if abs(fw["dead_units"] - s["dead_units"]) > dead_tol:
            failures.append(f"{where} dead_units: gradscope {fw['dead_units']}, "
                            f"torch {s['dead_units']}")
        log_rel(f"{where} grad rms", xc.report_log10(bw["grad_preact"], "log10_rms"), s["grad"])
        log_rel(f"{where} gain", xc.report_log10(bw, "log10_gain"), s["gain"])
        for p in s.get("params", []):
            params[f"ops.{s['op']}.{p['role']}"] = p
        # The layer's norms are over all its weight (bias) tensors together.
        for key, suffix in (("grad_weight", "weight"), ("grad_bias", "bias")):
            mine = [p["grad"] for p in s.get("params", []) if p["role"].endswith(suffix)]
            if key in bw and mine:
                log_rel(f"{where} {key}", xc.report_log10(bw[key], "log10_norm"),
                        xc.log10_sum(mine), floor)
    theirs = {p["name"]: p for p in report["parameters"]}
    if sorted(theirs) != sorted(params):
        failures.append(f"the report's parameters {sorted(theirs)}, the rebuilt {sorted(params)}")
    for name, p in params.items():
        if name not in theirs:
            continue
        rel(f"{name} norm", theirs[name]["norm"], p["norm"])
        log_rel(f"{name} grad norm", xc.report_log10(theirs[name], "log10_grad_norm"), p["grad"],
                floor)
    log_rel("output grad rms", xc.report_log10(report["output_grad"], "log10_rms"), output_grad)
    rel("loss", report["loss"]["value"], loss)
    return failures


def module_grads(model, x, tensors, loss_name, dtype):
    """The module's own output and parameter gradients (training mode), in the run's format
    widened: the module in float64 over the same float32-representable values."""
    m = model.to(torch.float64).train()
    m.zero_grad()
    y = m(torch.tensor(x, dtype=torch.float64))
    if loss_name == "probe":
        loss = (torch.tensor(tensors["probe"], dtype=torch.float64).reshape(y.shape) * y).sum()
    else:
        loss = (y - torch.tensor(tensors["targets"], dtype=torch.float64)).square().sum() \
            / (2 * y.shape[0])
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in m.named_parameters()}
    out = y.detach()
    m.to(dtype)
    return out, grads


def run_case(binary, root, index, case, mode, precision, failures):
    name, build, (C, H, W), loss_name, _, _ = case
    tag = f"{name}-{mode}-{precision}"
    d = os.path.join(root, tag)
    os.makedirs(d)
    torch.manual_seed(200 + index)
    model = build()
    # ONNX stores a batch norm's epsilon in float32 (1e-5 becomes 9.99999974e-6): the module
    # takes the stored value, so that it is the network the file describes.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eps = float(np.float32(m.eps))
    dtype = torch.float64 if precision == "float64" else torch.float32
    rng = np.random.default_rng(11 + index)
    npdt = np.float64 if precision == "float64" else np.float32
    # Running statistics away from (0, 1), so that eval mode's folded weights are not the
    # module's: one training-mode pass over another batch.
    with torch.no_grad():
        model.train()(torch.from_numpy(rng.standard_normal((8, C, H, W)).astype(np.float32)))
    x = rng.standard_normal((BATCH, C, H, W)).astype(npdt)
    onnx_path = os.path.join(d, "model.onnx")
    # Exported in float32, as models are; a float64 run widens the weights exactly.
    training = mode == "training"
    model.train(training)
    torch.onnx.export(model, torch.from_numpy(x.astype(np.float32)), onnx_path, opset_version=17,
                      training=torch.onnx.TrainingMode.TRAINING if training
                      else torch.onnx.TrainingMode.EVAL,
                      input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "batch"}})
    np.save(os.path.join(d, "input.npy"), x.reshape(BATCH, -1))
    args = [onnx_path, "--precision", precision, "--input", os.path.join(d, "input.npy"),
            "--name", tag, "--out", d, "--quiet", "--save-weights", os.path.join(d, "run.st")]
    if loss_name == "mse":
        with torch.no_grad():
            n_out = model(torch.from_numpy(x.astype(np.float32))).shape[1]
        t = rng.standard_normal((BATCH, n_out)).astype(npdt)
        np.save(os.path.join(d, "targets.npy"), t)
        args += ["--set", "loss=mse", "--targets", os.path.join(d, "targets.npy")]
    r = subprocess.run([binary, "run", *args], capture_output=True, text=True)
    if r.returncode != 0:
        failures.append(f"{tag}: gradscope run exit {r.returncode}: {r.stderr[:800]}")
        print(f"FAIL {tag}: gradscope run exit {r.returncode}")
        return
    with open(os.path.join(d, tag + ".json"), encoding="utf-8") as f:
        report = json.load(f)
    _, tensors = xc.read_safetensors(os.path.join(d, "run.st"))
    config = report["config"]
    problems = []
    norms = sum("norm" in item for item in walk_items(config["layers"])) + \
        sum(isinstance(p, dict) and bool(p.get("norm")) for p in projections(config["layers"]))
    batch_norms = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    if norms != (batch_norms if training else 0):
        problems.append(f"the module has {batch_norms} batch norms, which a training-mode export "
                        f"keeps and an eval-mode one folds, but this {mode}-mode run has {norms}")

    # The weights gradscope used are the initializers gradscope names as their sources, and in
    # training mode those are the module's parameters, bit for bit.
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    initializers = onnx_initializers(onnx_path)
    sources = {}
    for a in report["sources"]["assignments"]:
        role = a["role"]
        suffix = role if role.startswith("projection") else \
            "weight" if role.endswith("weight") else "bias"
        key = f"ops.{a['layer'] - 1}.{suffix}"
        sources[key] = a["tensor"]
        used = tensors.get(key)
        want = initializers.get(a["tensor"])
        if used is None:  # a norm's gamma = 1 and beta = 0 are not stored
            if want is None or not np.all(want == (1.0 if role.endswith("weight") else 0.0)):
                problems.append(f"{key} ({a['tensor']}) is not in the run's weights")
            continue
        if want is None or not np.array_equal(used.reshape(want.shape), want.astype(used.dtype)):
            problems.append(f"{key} is not the initializer {a['tensor']}")
        if training and (a["tensor"] not in state or
                         not np.array_equal(want, state[a["tensor"]].astype(want.dtype))):
            problems.append(f"{a['tensor']} is not the module's parameter")

    stats, y, loss, output_grad = reference(config, tensors)
    # The rebuilt network is the module (training mode: the batch's statistics; eval mode: the
    # running statistics torch folded into the convs).
    module_dtype = torch.float64
    model.to(module_dtype).train(training)
    with torch.no_grad():
        y_module = model(torch.tensor(tensors["input"], dtype=module_dtype).reshape(x.shape))
    err = float((y.detach() - y_module).abs().max() / y_module.abs().max())
    # The module's float32 export rounds the folded weights (eval) once more.
    out_tol = OUTPUT_TOLERANCE if training else 1e-6
    if not err <= out_tol:
        problems.append(f"the rebuilt network is not the module: output off by {err:.3g}")

    tol = TOLERANCE[precision]
    dead_tol = 0 if precision == "float64" else 2
    problems += compare(report, stats, loss, output_grad, tol, dead_tol)
    # The comparison can fail: the first layer's gradient rms moved by 10 tolerances is caught.
    moved = json.loads(json.dumps(report))
    moved["layers"][0]["backward"]["grad_preact"]["log10_rms"] += math.log10(1 + 10 * tol)
    if not any("layer 1 " in f and "grad rms" in f
               for f in compare(moved, stats, loss, output_grad, tol, dead_tol)):
        problems.append("a gradient moved by 10 tolerances was not caught")

    if training:
        # Every parameter's gradient norm against the module's own autograd.
        _, grads = module_grads(model, tensors["input"].reshape(x.shape), tensors, loss_name,
                                dtype)
        top = max(float(g.norm()) for g in grads.values())
        share = 1e-12 if precision == "float64" else 1e-6
        for p in report["parameters"]:
            src = sources.get(p["name"])
            if src not in grads:
                problems.append(f"{p['name']}: its source {src} is no parameter of the module")
                continue
            theirs = float(grads[src].norm())
            ours = p["grad_norm"]
            if max(ours, theirs) < share * top:
                continue
            if abs(ours - theirs) > tol * max(ours, theirs):
                problems.append(f"{p['name']} ({src}) grad norm: gradscope {ours!r}, module "
                                f"{theirs!r}")
        for n in grads:
            if n not in sources.values():
                problems.append(f"the module's {n} is in no op of the run")
    model.to(torch.float32)

    if problems:
        failures.append(tag)
        print(f"FAIL {tag}: {len(problems)} problem(s):")
        for p in problems[:20]:
            print("  " + p)
    else:
        print(f"ok {tag}: {len(report['layers'])} layers, {len(report['parameters'])} "
              f"parameters agree with PyTorch within {tol:g}")


def expect_eval_refusal(binary, root, name, build, shape, failures):
    path = os.path.join(root, f"{name}-eval-refused.onnx")
    torch.manual_seed(0)
    torch.onnx.export(build().eval(), torch.randn(BATCH, *shape), path, opset_version=17,
                      input_names=["x"], output_names=["y"])
    r = subprocess.run([binary, "run", path, "--out", root, "--quiet"], capture_output=True,
                       text=True)
    ok = r.returncode == 2 and "downsample.0/Conv" in r.stderr and "has a bias" in r.stderr \
        and "TrainingMode.TRAINING" in r.stderr
    if ok:
        print(f"ok {name}-eval: refused, naming the downsample's conv and its bias")
    else:
        failures.append(f"{name}-eval")
        print(f"FAIL {name}-eval: exit {r.returncode}, not 2 naming the downsample's conv and "
              f"its folded bias: {r.stderr[:400]}")


def walk_items(items):
    for item in items:
        if "block" in item:
            yield from walk_items(item["block"])
        else:
            yield item


def projections(items):
    """The "projection" of every residual item."""
    for item in items:
        if "block" in item:
            if isinstance(item.get("residual"), dict):
                yield item["residual"].get("projection")
            yield from projections(item["block"])


def onnx_initializers(path):
    import onnx
    import onnx.numpy_helper
    g = onnx.load(path).graph
    out = {t.name: onnx.numpy_helper.to_array(t) for t in g.initializer}
    for n in g.node:
        if n.op_type == "Constant":
            out[n.output[0]] = onnx.numpy_helper.to_array(n.attribute[0].t)
    return out


def main(argv):
    if len(argv) != 1:
        sys.stderr.write(__doc__)
        return 2
    try:
        import torchvision  # noqa: F401
    except ImportError:
        print("onnx_images: skipped: torchvision is not installed (apt install "
              "python3-torchvision)")
        return 77
    binary = argv[0]
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")  # torch.onnx.export's notes on training-mode export
    failures = []
    runs = 0
    with tempfile.TemporaryDirectory() as root:
        for index, case in enumerate(CASES):
            for mode in case[4]:
                for precision in case[5]:
                    runs += 1
                    run_case(binary, root, index, case, mode, precision, failures)
        for name, build, shape in EVAL_REFUSED:
            runs += 1
            expect_eval_refusal(binary, root, name, build, shape, failures)
    print(f"\nONNX image networks: {runs - len(failures)} of {runs} runs agree with PyTorch")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
