#!/usr/bin/env python3
"""Recomputes a gradscope report of an image network with PyTorch autograd and compares.

    python3 scripts/torch_conv_check.py REPORT.json WEIGHTS.safetensors

REPORT.json is `gradscope run CONFIG --format json` (or the .json it writes) and WEIGHTS the file
`--save-weights` wrote for the same run: the resolved config (in its metadata), every weight, the
input batch and the labels, probe or targets. The network is rebuilt from the config's items with
torch.nn.functional (conv2d, batch_norm over (N, H, W) per channel, max_pool2d, avg_pool2d,
adaptive_avg_pool2d, flatten, linear, layer_norm, residual sums with torchvision ResNet's learned
projection conv1x1 + BatchNorm2d) in float64, and for every layer the rms of its output, the rms
of the gradient the report states (dL/dh for conv and dense ops, dL/d(input) for the others,
dL/dF = scale dL/dy for residual sums) and every parameter's gradient norm are compared with the
report's. Exits 1 on a mismatch, 2 on a network it cannot rebuild.
"""
import json
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from torch_crosscheck import read_safetensors  # noqa: E402

# float64 autograd against gradscope's float64 (or its float32 run's sums in double): both round
# each product once; 1e-9 relative holds float64 runs with room, float32 runs need 1e-4 (24-bit
# products summed over up to 1e5 terms).
TOLERANCE = {"float64": 1e-9, "float32": 1e-4}


def pair(v):
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def act(name, h):
    table = {"linear": lambda x: x, "relu": F.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
             "gelu": F.gelu, "silu": F.silu, "elu": F.elu}
    if name not in table:
        raise SystemExit(f"torch_conv_check: activation {name!r} not covered")
    return table[name](h)


def activation_name(item):
    a = item.get("activation", "linear")
    return a if isinstance(a, str) else a["name"]


class Net:
    def __init__(self, config, tensors):
        self.config = config
        self.tensors = tensors
        self.op = 0  # gradscope's op index (residual begins and ends counted)
        self.layers = []  # per reported layer: (kind, y, grad_of) with grad_of the tensor whose
        #                   gradient the report states
        self.params = {}

    def param(self, name):
        t = torch.tensor(self.tensors[name], dtype=torch.float64, requires_grad=True)
        self.params[name] = t
        return t

    def report(self, kind, y, grad_of):
        y.retain_grad()
        if grad_of is not y:
            grad_of.retain_grad()
        self.layers.append((kind, y, grad_of))

    def run_items(self, items, x):
        for item in items:
            if "block" in item:
                for _ in range(int(item.get("repeat", 1))):
                    residual = item.get("residual")
                    if residual:
                        self.op += 1  # the begin
                        skip = x
                    x = self.run_items(item["block"], x)
                    if residual:
                        projection = residual.get("projection")
                        if projection:
                            skip = self.projection(projection, skip, x)
                        y = skip * float(residual.get("skip", 1.0)) + float(residual["scale"]) * x
                        self.report("residual", y, x)  # the report states dL/dF
                        self.op += 1
                        x = y
                continue
            x = self.run_op(item, x)
        return x

    def projection(self, projection, skip, x):
        """torchvision ResNet's downsample: conv1x1(stride) then BatchNorm2d (training mode)."""
        if not isinstance(projection, dict) or "init" not in projection or skip.dim() != 4:
            raise SystemExit("torch_conv_check: only the learned projection of images is covered")
        k = f"ops.{self.op}"
        w = self.param(k + ".projection.weight")
        stride = (skip.shape[2] // x.shape[2], skip.shape[3] // x.shape[3])
        p = F.conv2d(skip, w, None, stride=stride)
        norm = projection.get("norm")
        if norm:
            name = norm if isinstance(norm, str) else norm["name"]
            eps = 1e-5 if isinstance(norm, str) else float(norm.get("eps", 1e-5))
            if name != "batch_norm":
                raise SystemExit(f"torch_conv_check: projection norm {name!r} not covered")
            gamma = torch.ones(p.shape[1], dtype=torch.float64, requires_grad=True)
            beta = torch.zeros(p.shape[1], dtype=torch.float64, requires_grad=True)
            self.params[k + ".projection_norm.weight"] = gamma
            self.params[k + ".projection_norm.bias"] = beta
            p = F.batch_norm(p, None, None, gamma, beta, training=True, eps=eps)
        return p

    def run_op(self, item, x):
        k = f"ops.{self.op}"
        if "conv" in item:
            c = item["conv"]
            w = self.param(k + ".weight")
            b = self.param(k + ".bias") if c.get("bias", True) else None
            h = F.conv2d(x, w, b, stride=pair(c["stride"]), padding=pair(c["padding"]),
                         dilation=pair(c["dilation"]), groups=int(c["groups"]))
            y = act(activation_name(item), h)
            self.report("conv", y, h)
        elif "pool" in item:
            p = item["pool"]
            if p["kind"] == "global_average":
                y = F.adaptive_avg_pool2d(x, 1)
            elif p["kind"] == "max":
                y = F.max_pool2d(x, pair(p["kernel"]), pair(p["stride"]), pair(p["padding"]))
            else:
                y = F.avg_pool2d(x, pair(p["kernel"]), pair(p["stride"]), pair(p["padding"]),
                                 count_include_pad=True)
            self.report("pool", y, x)
        elif "flatten" in item:
            y = x.reshape(x.shape[0], -1)
            self.report("flatten", y, x)
        elif "norm" in item:
            n = item["norm"]
            name, eps = n["name"], float(n.get("eps", 1e-5))
            # gamma = 1 and beta = 0 as parameters, for their gradients.
            shape = (x.shape[1],) if name == "batch_norm" else tuple(x.shape[1:])
            gamma = torch.ones(shape, dtype=torch.float64, requires_grad=True)
            beta = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
            self.params[k + ".weight"], self.params[k + ".bias"] = gamma, beta
            if name == "batch_norm":
                y = F.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)
            elif name == "layer_norm":
                y = F.layer_norm(x, x.shape[1:], gamma, beta, eps=eps)
            else:
                raise SystemExit(f"torch_conv_check: norm {name!r} not covered")
            self.report("norm", y, x)
        elif "width" in item:
            w = self.param(k + ".weight")
            b = self.param(k + ".bias")
            h = x.reshape(x.shape[0], -1) @ w.T + b
            y = act(activation_name(item), h)
            self.report("dense", y, h)
        elif "activation" in item:
            y = act(activation_name(item), x)
            self.report("activation", y, x)
        else:
            raise SystemExit(f"torch_conv_check: item {item} not covered")
        self.op += 1
        return y


def rms(t):
    return float(t.detach().pow(2).mean().sqrt())


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    report = json.load(open(sys.argv[1]))
    metadata, tensors = read_safetensors(sys.argv[2])
    config = json.loads(metadata["gradscope_config"])
    inp = config["input"]
    tol = TOLERANCE[config["precision"]]
    x = torch.tensor(tensors["input"], dtype=torch.float64).reshape(
        int(inp["batch"]), int(inp["channels"]), int(inp["height"]), int(inp["width"]))
    net = Net(config, tensors)
    y = net.run_items(config["layers"], x)
    loss = config["loss"]["name"] if isinstance(config["loss"], dict) else config["loss"]
    if loss == "softmax_cross_entropy":
        labels = torch.tensor(tensors["labels"].astype(np.int64))
        value = F.cross_entropy(y, labels)
    elif loss == "probe":
        value = (torch.tensor(tensors["probe"], dtype=torch.float64).reshape(y.shape) * y).sum()
    else:
        raise SystemExit(f"torch_conv_check: loss {loss!r} not covered")
    value.backward()

    failures = []
    # A gradient that is 0 in exact arithmetic (a conv's bias in front of a batch norm) is
    # rounding on both sides: below this share of the largest parameter gradient both count as 0
    # (float64: 1e-12; float32: 1e-6, its unit roundoff 6e-8 over sums of up to 1e4 terms).
    share = 1e-12 if config["precision"] == "float64" else 1e-6
    floor = share * max(float(t.grad.norm()) for t in net.params.values())

    def compare(what, ours, theirs):
        if ours is None or not math.isfinite(theirs):
            return
        if max(abs(ours), abs(theirs)) < floor:
            return
        if abs(ours - theirs) > tol * max(abs(ours), abs(theirs)):
            failures.append(f"{what}: gradscope {ours!r}, torch {theirs!r}")

    layers = report["layers"]
    if len(layers) != len(net.layers):
        raise SystemExit(f"torch_conv_check: {len(layers)} layers in the report, "
                         f"{len(net.layers)} rebuilt")
    for layer, (kind, out, grad_of) in zip(layers, net.layers):
        where = f"layer {layer['index']} ({layer['kind']})"
        compare(where + " act rms", layer["forward"]["act"]["rms"], rms(out))
        compare(where + " grad rms", layer["backward"]["grad_preact"]["rms"], rms(grad_of.grad))
    for p in report["parameters"]:
        t = net.params.get(p["name"])
        if t is None:
            failures.append(f"{p['name']}: not in the rebuilt network")
            continue
        compare(p["name"] + " grad norm", p["grad_norm"], float(t.grad.norm()))
        if list(t.shape) != p["shape"] and math.prod(t.shape) != math.prod(p["shape"]):
            failures.append(f"{p['name']}: shape {p['shape']} against torch's {list(t.shape)}")
    checked = 2 * len(layers) + len(report["parameters"])
    if failures:
        print(f"torch_conv_check: {len(failures)} of {checked} values differ:")
        for f in failures:
            print("  " + f)
        sys.exit(1)
    print(f"torch_conv_check: {config['name']}: {checked} values agree within {tol:g}")


if __name__ == "__main__":
    main()
