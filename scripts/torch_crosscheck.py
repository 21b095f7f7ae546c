#!/usr/bin/python3
"""Recomputes a gradscope run's statistics in PyTorch from the file `gradscope run
--save-weights` writes, and prints the largest difference from gradscope's JSON report: every
layer's moments, dead units and gradients, the token statistics of sequence runs (tokens > 1),
the attention rows' entropy, largest logit and peaked share, and each learned tensor's norm,
gradient norm and update ratio (the report's "parameters").

Why this file is long: it mirrors every op gradscope has (dense, norms, activations, residuals,
attention, GLU) and every statistic, with the safetensors reader and a self-test of all of it, so
that one file reproduces a report without gradscope's sources.

usage: /usr/bin/python3 scripts/torch_crosscheck.py RUN.safetensors REPORT.json [RUN REPORT ...]
       /usr/bin/python3 scripts/torch_crosscheck.py --self-test
(several pairs in one call save PyTorch's import, a second each.)

Exit codes: 0 every statistic within tolerance; 1 a difference above tolerance; 2 unusable input
(unreadable file, a config this script cannot reproduce such as dropout > 0, a report that is not
of this run).
"""
import json
import math
import os
import struct
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F


class UsageError(Exception):
    """Input this script cannot work with; main() prints it and exits 2."""


# ---- safetensors, read and written with json + numpy only ---------------------------------------

_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4"}


def read_safetensors(path):
    """Returns (metadata dict, {name: numpy array}). Layout: an 8-byte little-endian header length,
    the JSON header, then the data; each tensor's data_offsets are relative to the data start."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise UsageError(f"{path}: {len(blob)} bytes, too short for a safetensors file")
    (header_len,) = struct.unpack("<Q", blob[:8])
    if header_len > len(blob) - 8:
        raise UsageError(f"{path}: header length {header_len} exceeds the file "
                         f"({len(blob)} bytes); not a safetensors file, or truncated")
    try:
        header = json.loads(blob[8:8 + header_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"{path}: the header is not valid JSON: {e}") from None
    if not isinstance(header, dict):
        raise UsageError(f"{path}: the header is not a JSON object")
    data = memoryview(blob)[8 + header_len:]
    metadata = header.pop("__metadata__", {}) or {}
    tensors = {}
    for name, entry in header.items():
        dtype = entry.get("dtype")
        if dtype not in _DTYPES:
            raise UsageError(f"{path}: tensor {name!r} has dtype {dtype!r}; this script reads "
                             f"{', '.join(_DTYPES)}")
        shape = [int(s) for s in entry["shape"]]
        begin, end = (int(v) for v in entry["data_offsets"])
        itemsize = np.dtype(_DTYPES[dtype]).itemsize
        expected = itemsize * math.prod(shape)
        if not 0 <= begin <= end <= len(data) or end - begin != expected:
            raise UsageError(f"{path}: tensor {name!r} of shape {shape} ({dtype}) has data_offsets "
                             f"[{begin}, {end}] in a data section of {len(data)} bytes; "
                             f"expected {expected} bytes")
        array = np.frombuffer(data[begin:end], dtype=_DTYPES[dtype]).reshape(shape)
        tensors[name] = array.copy()  # owns its memory, native byte order
    return metadata, tensors


def write_safetensors(path, tensors, metadata):
    """Writes {name: numpy array} (float32 or float64) in the layout read_safetensors reads; the
    header is padded with spaces to a multiple of 8 bytes, as the format's reference writer does."""
    names = {np.dtype("<f8"): "F64", np.dtype("<f4"): "F32"}
    header = {"__metadata__": metadata}
    chunks = []
    offset = 0
    for name, array in tensors.items():
        a = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
        raw = a.tobytes()
        header[name] = {"dtype": names[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in chunks:
            f.write(raw)


# safetensors' own order of dtypes (the Rust crate's Dtype enum), which orders the data section.
_DTYPE_RANK = ["BOOL", "U8", "I8", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64", "I64",
               "U64"]
_NUMPY_DTYPES = {np.dtype("<f8"): "F64", np.dtype("<f4"): "F32", np.dtype("<i8"): "I64",
                 np.dtype("<i4"): "I32", np.dtype("<f2"): "F16"}


def save_file_layout(path, tensors, metadata=None):
    """Writes {name: numpy array} byte for byte as safetensors.torch.save_file(tensors, path,
    metadata) does (the package is not installed here): tensors sorted by dtype, widest
    alignment first (the crate's Dtype order, descending), then by name; the compact JSON header
    with "__metadata__" first (only when given) and each entry's dtype, shape, data_offsets in
    data order; the header padded with spaces to a multiple of 8; 0-d tensors as shape []."""
    entries = []
    for name, array in tensors.items():
        a = np.asarray(array)
        # Not np.ascontiguousarray: it turns a 0-d tensor (num_batches_tracked) into shape [1].
        a = np.array(a, dtype=a.dtype.newbyteorder("<"), order="C", copy=True)
        if a.dtype not in _NUMPY_DTYPES:
            raise UsageError(f"{name}: dtype {a.dtype} is not written by this script")
        entries.append((name, _NUMPY_DTYPES[a.dtype], a))
    entries.sort(key=lambda e: (-_DTYPE_RANK.index(e[1]), e[0]))
    header = {} if metadata is None else {"__metadata__": metadata}
    offset = 0
    for name, dtype, a in entries:
        header[name] = {"dtype": dtype, "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for _, _, a in entries:
            f.write(a.tobytes())


# ---- The architecture: a mirror of src/core/spec.cpp expand_ops over the resolved config --------

ACTIVATION_PARAMS = {"leaky_relu": ("slope", 0.01), "elu": ("alpha", 1.0)}
ACTIVATION_ALIASES = {"swish": "silu"}


def activation_spec(value):
    """("name", param) from "name" or {"name": ..., <param>}."""
    if isinstance(value, str):
        name, given = value, {}
    else:
        name, given = value["name"], value
    name = ACTIVATION_ALIASES.get(name, name)
    if name not in ACTIVATIONS:
        raise UsageError(f"unknown activation {name!r}")
    key, default = ACTIVATION_PARAMS.get(name, (None, 0.0))
    return name, float(given.get(key, default)) if key else 0.0


def norm_spec(value):
    """("batch_norm" | "layer_norm" | "rms_norm", eps)."""
    if isinstance(value, str):
        return value, 1e-5
    return value["name"], float(value.get("eps", 1e-5))


def dense_op(item):
    return {"kind": "dense", "width": int(item["width"]),
            "activation": activation_spec(item.get("activation", "relu"))}


def residual_spec(value):
    """None for no residual; else {"scale", "projection" (bool), "post_norm" (a norm or None)}."""
    if value is None or value is False:
        return None
    r = {} if value is True else value
    placement = r.get("placement", "pre_norm")
    post_norm = norm_spec(r["norm"]) if placement == "post_norm" and r.get("norm") else None
    return {"scale": float(r.get("scale", 1.0)), "skip": float(r.get("skip", 1.0)),
            "projection": r.get("projection", False) is not False, "post_norm": post_norm}


ATTENTION_SCALES = ("1/sqrt(d_head)", "1/d_head")


def attention_op(value, where):
    """An attention item's op: heads, causal, scale (a number, or how to resolve it for the
    layer's width), bias, output_projection, with spec.hpp's defaults."""
    a = value or {}
    scale = a.get("scale", "1/sqrt(d_head)")
    if isinstance(scale, str) and scale not in ATTENTION_SCALES:
        raise UsageError(f"config {where}.attention.scale: {scale!r} is none of "
                         f"{', '.join(ATTENTION_SCALES)} or a number")
    return {"kind": "attention", "heads": int(a.get("heads", 1)),
            "causal": bool(a.get("causal", True)),
            "scale": scale if isinstance(scale, str) else float(scale),
            "bias": bool(a.get("bias", False)),
            "output_projection": bool(a.get("output_projection", True))}


def resolved_attention_scale(op, width):
    """The number the logits are multiplied by (src/core/spec.cpp attention_scale)."""
    d_head = width / max(op["heads"], 1)
    if op["scale"] == "1/sqrt(d_head)":
        return 1.0 / math.sqrt(d_head)
    if op["scale"] == "1/d_head":
        return 1.0 / d_head
    return op["scale"]


def glu_op(value, where):
    if "hidden" not in value:
        raise UsageError(f"config {where}.glu: no \"hidden\" width")
    return {"kind": "glu", "hidden": int(value["hidden"]),
            "activation": activation_spec(value.get("activation", "silu")),
            "bias": bool(value.get("bias", False))}


def append_ops(items, ops, path):
    for i, item in enumerate(items):
        where = f"{path}[{i}]"
        if "block" in item:
            residual = residual_spec(item.get("residual"))
            for _ in range(int(item.get("repeat", 1))):
                if residual:
                    ops.append({"kind": "residual_begin", **residual})
                append_ops(item["block"], ops, where + ".block")
                if residual:
                    ops.append({"kind": "residual_end", **residual})
                    if residual["post_norm"]:
                        ops.append({"kind": "norm", "norm": residual["post_norm"]})
        elif "attention" in item:
            ops.append(attention_op(item["attention"], where))
        elif "glu" in item:
            ops.append(glu_op(item["glu"], where))
        elif "transformer" in item:
            raise UsageError(f"config {where}: a transformer shorthand; give the resolved config "
                             "(the one --save-weights stores), in which the reader expanded it")
        elif "width" in item and item.get("norm") is not None:
            # The dense-with-norm shorthand (the resolved config has it expanded already).
            act = activation_spec(item.get("activation", "relu"))
            norm = {"kind": "norm", "norm": norm_spec(item["norm"])}
            if item.get("norm_position", "before_activation") == "after_activation":
                ops += [dense_op(item), norm]
            else:
                ops += [dense_op({**item, "activation": "linear"}), norm]
                if act[0] != "linear":
                    ops.append({"kind": "activation", "activation": act})
        elif "width" in item:
            ops.append(dense_op(item))
        elif "norm" in item:
            ops.append({"kind": "norm", "norm": norm_spec(item["norm"])})
        elif "dropout" in item:
            ops.append({"kind": "dropout", "p": float(item["dropout"])})
        elif "activation" in item:
            ops.append({"kind": "activation", "activation": activation_spec(item["activation"])})
        else:
            raise UsageError(f"config {where}: an item of a kind this script does not know: "
                             f"{sorted(item)}")


def expand_ops(config):
    """The flat op list, input side first, residual begins included (they are ops.{k} too)."""
    ops = []
    if config.get("layers"):
        append_ops(config["layers"], ops, "layers")
    else:
        stack = config["stack"]
        ops = [dense_op(stack) for _ in range(int(stack["depth"]))]
        if config.get("output"):
            ops.append(dense_op({"activation": "linear", **config["output"]}))
    # Residual begin <-> end partners, as src/core/checkpoint.cpp pairs them.
    open_begins = []
    for k, op in enumerate(ops):
        if op["kind"] == "residual_begin":
            open_begins.append(k)
        elif op["kind"] == "residual_end":
            op["partner"] = open_begins.pop()
    return ops


# ---- PyTorch's functional definitions of gradscope's activations --------------------------------

ACTIVATIONS = {
    "linear": lambda x, p: x,
    "relu": lambda x, p: F.relu(x),
    "leaky_relu": lambda x, p: F.leaky_relu(x, p),
    "elu": lambda x, p: F.elu(x, p),
    "selu": lambda x, p: F.selu(x),
    "gelu": lambda x, p: F.gelu(x),
    "gelu_tanh": lambda x, p: F.gelu(x, approximate="tanh"),
    "silu": lambda x, p: F.silu(x),
    "mish": lambda x, p: F.mish(x),
    "softplus": lambda x, p: F.softplus(x),
    "sigmoid": lambda x, p: torch.sigmoid(x),
    "tanh": lambda x, p: torch.tanh(x),
    "hard_tanh": lambda x, p: F.hardtanh(x),
    "softmax": lambda x, p: F.softmax(x, dim=1),  # over the units of an example (a row)
}


PIECEWISE_LINEAR = ("linear", "relu", "leaky_relu", "hard_tanh")


def activation_slope(name, param, h):
    """phi'(h) by autograd, elementwise; for softmax the Jacobian's diagonal y (1 - y)."""
    if name == "softmax":
        y = F.softmax(h, dim=1)
        return y * (1 - y)
    x = h.detach().clone().requires_grad_(True)
    (d,) = torch.autograd.grad(ACTIVATIONS[name](x, param).sum(), x)
    return d


def _sigmoid_slope(x):
    """sigmoid'(x) = e / (1 + e)^2 with e = exp(-|x|): no 1 - y cancellation in the tails."""
    e = torch.exp(-x.abs())
    return e / (1 + e).square()


# SELU's constants as PyTorch (and gradscope) spell them.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def accurate_slope(name, param, h):
    """phi'(h) in double, accurate to the last bits in the tails, where PyTorch's own backward of
    sigmoid, tanh and their kin, y (1 - y) or 1 - y^2, rounds to exactly 0 (sigmoid past |h| = 17
    in float32, 37 in float64) long before the true slope does. Piecewise-linear kinds: autograd,
    exact. Softmax: y (1 - y) in the run's own format, which is how gradscope defines it."""
    if name in PIECEWISE_LINEAR or name == "softmax":
        return activation_slope(name, param, h)
    x = h.detach().to(torch.float64)
    if name == "sigmoid":
        return _sigmoid_slope(x)
    if name == "tanh":
        e = torch.exp(-2 * x.abs())
        return 4 * e / (1 + e).square()
    if name == "softplus":
        return torch.sigmoid(x)
    if name == "elu":  # PyTorch's elu'(0) = alpha
        return torch.where(x > 0, torch.ones_like(x), param * torch.exp(x.clamp(max=0)))
    if name == "selu":
        return SELU_SCALE * torch.where(x > 0, torch.ones_like(x),
                                        SELU_ALPHA * torch.exp(x.clamp(max=0)))
    if name == "gelu":
        # Phi(x) = erfc(-x / sqrt 2) / 2: torch.special.ndtr (1.13) cancels to 0 below x = -8.
        cdf = 0.5 * torch.special.erfc(-x / math.sqrt(2))
        return cdf + x * torch.exp(-0.5 * x.square()) / math.sqrt(2 * math.pi)
    if name == "gelu_tanh":
        xc = x.clamp(-1000, 1000)  # exp(-2u) is 0 or inf past there; x^3 stays finite
        u = math.sqrt(2 / math.pi) * (xc + 0.044715 * xc ** 3)
        du = math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * xc.square())
        return torch.sigmoid(2 * u) + x * 2 * du * _sigmoid_slope(2 * u)
    if name == "silu":
        return torch.sigmoid(x) + x * torch.sigmoid(x) * torch.sigmoid(-x)
    if name == "mish":
        t = torch.tanh(F.softplus(x))
        return t + x * (1 - t.square()) * torch.sigmoid(x)
    raise UsageError(f"no slope for activation {name!r}")


def apply_norm(norm, x, gamma, beta):
    kind, eps = norm
    if kind == "batch_norm":  # per unit over the batch, training mode (biased variance)
        return F.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)
    if kind == "layer_norm":  # per example over the units
        return F.layer_norm(x, (x.shape[1],), gamma, beta, eps)
    if kind == "rms_norm":  # torch 1.13 has no F.rms_norm; no beta
        return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + eps) * gamma
    raise UsageError(f"unknown norm {kind!r}")


# ---- The run in PyTorch ------------------------------------------------------------------------


def tokens_of(config):
    return int(config["input"].get("tokens", 1))


def file_tensors(op, k, fan_in):
    """[(role, name, shape)] of the tensors the file holds for op k (fan_in: its input width), in
    named_parameters() order (a norm's gamma and beta are not in the file)."""
    kind = op["kind"]
    if kind == "dense":
        return [("weight", f"ops.{k}.weight", (op["width"], fan_in)),
                ("bias", f"ops.{k}.bias", (op["width"],))]
    if kind == "attention":
        roles = ["query", "key", "value"] + (["output"] if op["output_projection"] else [])
        out = []
        for role in roles:
            out.append((f"{role}.weight", f"ops.{k}.{role}.weight", (fan_in, fan_in)))
            if op["bias"]:
                out.append((f"{role}.bias", f"ops.{k}.{role}.bias", (fan_in,)))
        return out
    if kind == "glu":
        n = op["hidden"]
        out = []
        for role, shape, bias in (("gate", (n, fan_in), n), ("up", (n, fan_in), n),
                                  ("down", (fan_in, n), fan_in)):
            out.append((f"{role}.weight", f"ops.{k}.{role}.weight", shape))
            if op["bias"]:
                out.append((f"{role}.bias", f"ops.{k}.{role}.bias", (bias,)))
        return out
    return []


def load_run(tensors, ops, config):
    """Checks that every tensor the config needs is present with its shape, and that PyTorch can
    reproduce every op; returns the names of the tensors the run uses. Sequences (tokens T > 1)
    are (batch, T, width) in the file, or (batch T, width) rows example-major."""
    x = tensors.get("input")
    batch, tokens = int(config["input"]["batch"]), tokens_of(config)
    rows = batch * tokens
    if x is None or x.ndim not in (2, 3):
        raise UsageError("the file has no 'input' tensor (batch, n_in) or (batch, tokens, n_in)")
    width = x.shape[-1]
    shape_ok = (tuple(x.shape) == (batch, tokens, width) if x.ndim == 3 else
                x.shape[0] == rows)
    if not shape_ok or width != config["input"]["width"]:
        raise UsageError(f"'input' is {list(x.shape)}, the config says batch {batch}, tokens "
                         f"{tokens} and width {config['input']['width']}")
    widths = []  # the width each op outputs
    used = {"input"}
    for k, op in enumerate(ops):
        fan_in = width
        need = {name: shape for _, name, shape in file_tensors(op, k, fan_in)}
        if op["kind"] == "dense":
            width = op["width"]
        elif op["kind"] == "residual_end" and op["projection"]:
            p = op["partner"]
            skip = widths[p - 1] if p > 0 else config["input"]["width"]
            need = {f"ops.{k}.projection": (fan_in, skip)}
        elif op["kind"] == "attention" and width % op["heads"]:
            raise UsageError(f"op {k}: {op['heads']} heads do not divide the width {width}")
        for name, shape in need.items():
            if name not in tensors:
                raise UsageError(f"the file has no tensor {name!r} for op {k} ({op['kind']})")
            if tuple(tensors[name].shape) != shape:
                raise UsageError(f"{name} is {list(tensors[name].shape)}, expected {list(shape)}")
            used.add(name)
        if op["kind"] == "dropout" and op["p"] > 0:
            raise UsageError(f"op {k} is dropout with p = {op['p']}: its masks are seeded inside "
                             "gradscope and not saved, so PyTorch cannot reproduce them; "
                             "cross-check a config without dropout (or with dropout 0)")
        widths.append(width)
    # The loss reads one column per token: the probe as the input is stored, targets and labels
    # as (batch T, width) and (batch T).
    drive = {"probe": ("probe", (rows, width)), "mse": ("targets", (rows, width)),
             "sigmoid_bce": ("targets", (rows, width)),
             "softmax_cross_entropy": ("labels", (rows,))}.get(summary_loss_name(config))
    if drive is None:
        raise UsageError(f"unknown loss {summary_loss_name(config)!r}")
    name, shape = drive
    found = tensors[name].shape if name in tensors else None
    if found is None or (tuple(found) != shape and
                         not (len(shape) == 2 and tuple(found) == (batch, tokens, width))):
        raise UsageError(f"loss {summary_loss_name(config)} needs {name!r} of shape "
                         f"{list(shape)}; the file's is {list(found) if found else 'missing'}")
    used.add(name)
    return used


def as_rows(a, width):
    """(batch, T, width) or (batch T, width) as (batch T, width): one row per token."""
    return a.reshape(-1, width)


# Ops whose gradient statistic is dL/d(their input) (src/core/ops/op.cpp's input_grad_stat).
INPUT_GRAD_KINDS = ("norm", "activation", "dropout", "attention", "glu")


def leaf(t, name):
    """A learned tensor of the file as a leaf that collects its gradient."""
    return t[name].clone().requires_grad_(True)


def attention_forward(op, k, t, x, tokens, layer):
    """q, k, v = x W^T + b; per head P = softmax(scale q k^T) (causal: key <= query), o = P v with
    the heads concatenated, y = o Wo^T + bo; x is (batch T, d), rows example-major."""
    rows, d = x.shape
    batch, heads = rows // tokens, op["heads"]
    dh = d // heads
    scale = resolved_attention_scale(op, d)
    bias = (lambda role: leaf(t, f"ops.{k}.{role}.bias")) if op["bias"] else (lambda role: None)
    params = []
    proj = {}
    for role in ("query", "key", "value"):
        w, b = leaf(t, f"ops.{k}.{role}.weight"), bias(role)
        h = F.linear(x, w, b)
        h.retain_grad()
        params.append((f"{role}.weight", w, h, x))
        if b is not None:
            params.append((f"{role}.bias", b, h, None))
        proj[role] = h.reshape(batch, tokens, heads, dh).transpose(1, 2)  # (batch, h, T, dh)
    logits = scale * (proj["query"] @ proj["key"].transpose(-1, -2))  # (batch, h, T, T)
    if op["causal"]:
        mask = torch.ones(tokens, tokens, dtype=torch.bool).triu(1)  # key after the query
        logits = logits.masked_fill(mask, -math.inf)
    p = F.softmax(logits, dim=-1)
    o = (p @ proj["value"]).transpose(1, 2).reshape(rows, d)
    if op["output_projection"]:
        w, b = leaf(t, f"ops.{k}.output.weight"), bias("output")
        y = F.linear(o, w, b)
        y.retain_grad()
        params.append(("output.weight", w, y, o))
        if b is not None:
            params.append(("output.bias", b, y, None))
    else:
        y = o
    layer["attention"] = {"logits": logits.detach(), "probs": p.detach(), "scale": scale}
    return y, params


def glu_forward(op, k, t, x, layer):
    """y = (act(x Wg^T + bg) * (x Wu^T + bu)) Wd^T + bd."""
    name, param = op["activation"]
    w = {role: leaf(t, f"ops.{k}.{role}.weight") for role in ("gate", "up", "down")}
    b = ({role: leaf(t, f"ops.{k}.{role}.bias") for role in ("gate", "up", "down")}
         if op["bias"] else dict.fromkeys(("gate", "up", "down")))
    h1 = F.linear(x, w["gate"], b["gate"])
    h3 = F.linear(x, w["up"], b["up"])
    m = ACTIVATIONS[name](h1, param) * h3
    y = F.linear(m, w["down"], b["down"])
    params = []
    for role, h, inp in (("gate", h1, x), ("up", h3, x), ("down", y, m)):
        h.retain_grad()
        params.append((f"{role}.weight", w[role], h, inp))
        if b[role] is not None:
            params.append((f"{role}.bias", b[role], h, None))
    # gradscope's forward.preact of a GLU is the gate's pre-activation, its dead units the gate's.
    layer["preact"] = h1
    layer["slope"] = accurate_slope(name, param, h1)
    return y, params


def run_torch(config, ops, tensors, dtype):
    """The forward and backward passes; returns per reported op a dict of tensors (pre: the
    tensor whose gradient is the op's gradient statistic, out, slope, params: (role, leaf,
    tensor whose gradient multiplies, its other factor)) and the output, loss and loss scale."""
    t = {name: torch.from_numpy(np.asarray(a)).to(dtype) for name, a in tensors.items()}
    tokens = tokens_of(config)
    # A leaf, so that an op at the input side that reports dL/d(its input) has one.
    x = as_rows(t["input"], t["input"].shape[-1]).clone().requires_grad_(True)
    layers = []  # one entry per reported op (residual begins are not reported)
    skips = []
    block_input = None  # the copy of a block's input that the op opening its branch reports
    for k, op in enumerate(ops):
        kind = op["kind"]
        if kind == "residual_begin":
            # An op opening the branch whose statistic is dL/d(its input) reports the block's
            # input: the total, the skips' shares included. Its copy is made before the first
            # begin of the run, so that every skip reads it too.
            if k == 0 or ops[k - 1]["kind"] != "residual_begin":
                o = k
                while ops[o]["kind"] == "residual_begin":
                    o += 1
                if ops[o]["kind"] in INPUT_GRAD_KINDS:
                    x = x.clone()
                    block_input = x
            skips.append(x)
            continue
        layer = {"op": k, "kind": kind}
        if kind == "dense":
            w = leaf(t, f"ops.{k}.weight")
            b = leaf(t, f"ops.{k}.bias")
            pre = F.linear(x, w, b)
            layer["params"] = [("weight", w, pre, x), ("bias", b, pre, None)]
        elif block_input is not None:
            pre = block_input
            block_input = None
        else:
            # A copy of the input, so that its gradient is this op's alone (gradscope's
            # grad_preact), not summed with a skip path reading the same value.
            pre = x.clone()
        pre.retain_grad()
        layer["pre"] = pre
        if kind in ("dense", "activation"):
            name, param = op["activation"]
            out = ACTIVATIONS[name](pre, param)
            layer["slope"] = accurate_slope(name, param, pre)
        elif kind == "norm":
            n = pre.shape[1]
            gamma = torch.ones(n, dtype=dtype, requires_grad=True)
            beta = torch.zeros(n, dtype=dtype, requires_grad=True)  # rms_norm: unused, no grad
            out = apply_norm(op["norm"], pre, gamma, beta)
            out.retain_grad()
            # The gradients are sums over the batch of g * x_hat (gamma) and of g (beta); with
            # gamma 1 and beta 0, x_hat is the output.
            layer["params"] = [("weight", gamma, out, "per_unit"), ("bias", beta, out, None)]
        elif kind == "dropout":
            out = pre.clone()  # p = 0 only: load_run refused the rest
        elif kind == "residual_end":
            skip = skips.pop()
            if op["projection"]:
                skip = F.linear(skip, t[f"ops.{k}.projection"])
            out = op["skip"] * skip + op["scale"] * pre
        elif kind == "attention":
            out, layer["params"] = attention_forward(op, k, t, pre, tokens, layer)
        elif kind == "glu":
            out, layer["params"] = glu_forward(op, k, t, pre, layer)
        else:
            raise UsageError(f"op {k}: unknown kind {kind!r}")
        layer["out"] = out
        layers.append(layer)
        x = out

    y = x
    y.retain_grad()
    loss_name = summary_loss_name(config)
    rows = y.shape[0]  # one column of the loss per token
    if loss_name == "probe":
        probe = as_rows(t["probe"], y.shape[1])
        loss = (probe * y).sum()
        loss_scale = (probe * y).abs().sum().item()
    elif loss_name == "mse":
        loss = (y - t["targets"]).square().sum() / (2 * rows)
        loss_scale = abs(loss.item())
    elif loss_name == "softmax_cross_entropy":
        labels = tensors["labels"]
        classes = y.shape[1]
        if (labels.shape != (rows,) or np.any(labels != np.round(labels)) or
                np.any(labels < 0) or np.any(labels >= classes)):
            raise UsageError(f"'labels' must be {rows} class indices in [0, {classes})")
        loss = F.cross_entropy(y, torch.from_numpy(labels.astype(np.int64)))
        loss_scale = abs(loss.item())
    elif loss_name == "sigmoid_bce":
        loss = F.binary_cross_entropy_with_logits(y, t["targets"], reduction="sum") / rows
        loss_scale = abs(loss.item())
    else:
        raise UsageError(f"unknown loss {loss_name!r}")
    loss.backward()
    return layers, y, loss.item(), loss_scale


def moments(a):
    """mean, rms, min, max of the finite entries, in double (as gradscope's MomentAccumulator)."""
    v = a.detach().to(torch.float64).numpy().ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"mean": None, "rms": None, "min": None, "max": None}
    return {"mean": float(v.mean()), "rms": float(np.sqrt(np.mean(v * v))),
            "min": float(v.min()), "max": float(v.max())}


def log10_norm(a, rms=False):
    """log10 of the Frobenius norm (or the rms) of the finite entries; -inf for all zeros."""
    if a is None:
        return -math.inf
    v = a.detach().to(torch.float64).numpy().ravel()
    v = v[np.isfinite(v)]
    s = float(np.sum(v * v))
    if rms:
        s /= max(1, v.size)
    return 0.5 * math.log10(s) if s > 0 else -math.inf


# The parameter gradients are sums over the batch, and a sum whose terms cancel exactly keeps only
# its rounding: a dense layer's bias gradient before a batch norm (which removes the batch mean)
# is 0 in exact arithmetic and about eps * ||g||_F * sqrt(B) in either program. Below this many
# units of that bound, two values both count as zero (an explicit allowance where the true value
# is 0, rather than a looser tolerance everywhere); float32's deltas carry some 10-100 eps of
# accumulated rounding each, hence the factor.
ZERO_FLOOR_ULPS = 256.0


def log10_sum_bound(g, x, per_unit=False):
    """log10 of a bound on the sum over the batch of g * x (x None: of g alone), whose rounding
    is about eps times it. per_unit: the gradient is per unit (sum_a g_ia x_ia, as a norm's
    gamma), else an outer product (sum_a g_a x_a^T, as a dense weight): |sum| <= ||g||_F times
    the largest unit norm of x, or times ||x||_F."""
    gn = log10_norm(g)
    if x is None:
        xn = 0.5 * math.log10(g.shape[0])
    elif per_unit:
        v = x.detach().to(torch.float64)
        xn = 0.5 * math.log10(max(float(v.square().sum(dim=0).max()), 1e-300))
    else:
        xn = log10_norm(x)
    return gn + xn


def run_dtype(config):
    return torch.float64 if config.get("precision", "float32") == "float64" else torch.float32


def optimizer_of(config):
    """(name, learning rate, eps) of the config's optimizer, with gradscope's defaults; None for
    no optimizer."""
    o = config.get("optimizer", "none")
    o = {"name": o} if isinstance(o, str) else o
    if o["name"] == "none":
        return None
    if o["name"] not in ("sgd", "adam"):
        raise UsageError(f"unknown optimizer {o['name']!r}")
    return o["name"], float(o.get("learning_rate", 1e-3)), float(o.get("eps", 1e-8))


def log10_update(optimizer, grad, p_log10):
    """log10 of ||one first optimizer step|| / ||p|| (src/core/ops/param_stats.cpp): sgd from
    zero momentum steps lr g; adam's first step lr g / (|g| + eps), its moments being g and g^2."""
    name, lr, eps = optimizer
    if name == "sgd":
        return math.log10(lr) + log10_norm(grad) - p_log10
    g = torch.zeros(1) if grad is None else grad.detach().to(torch.float64)
    g = g[torch.isfinite(g)]
    return math.log10(lr) + log10_norm(g / (g.abs() + eps)) - p_log10


def log10_sum(logs):
    """log10 sqrt(sum 10^(2 l)): the norm of tensors together from their log10 norms."""
    logs = [v for v in logs if v > -math.inf]
    if not logs:
        return -math.inf
    top = max(logs)
    return top + 0.5 * math.log10(sum(10.0 ** (2 * (v - top)) for v in logs))


def param_statistics(params, optimizer):
    """Per learned tensor: role, its norm, the log10 of its gradient's norm, of a bound on that
    gradient's rounding (log10_sum_bound) and of the update ratio."""
    out = []
    for role, p, h, other in params:
        g = h.grad
        if role.endswith("bias"):
            bound = log10_sum_bound(g, None) if g is not None else -math.inf
        elif isinstance(other, str):  # a norm's gamma: per unit, against x_hat = its output
            bound = log10_sum_bound(g, h, per_unit=True)
        else:
            bound = log10_sum_bound(g, other)
        norm = float(p.detach().to(torch.float64).norm())
        s = {"role": role, "shape": list(p.shape), "norm": norm,
             "log10_grad_norm": log10_norm(p.grad), "log10_bound": bound}
        if optimizer:
            p_log10 = math.log10(norm) if norm > 0 else -math.inf
            s["log10_update_to_weight"] = log10_update(optimizer, p.grad, p_log10)
        out.append(s)
    return out


def token_statistics(y, tokens):
    """mean over examples of the mean over pairs t != t' of cos(y_t, y_t') (a zero token: cosine
    0), and the rms of y_t minus its example's mean token; examples with a non-finite entry are
    left out, as gradscope leaves them out (src/core/layer_stats.cpp fill_token_stats)."""
    v = y.detach().to(torch.float64)
    v = v.reshape(-1, tokens, v.shape[1])  # (batch, T, d)
    v = v[torch.isfinite(v).all(dim=2).all(dim=1)]
    if v.shape[0] == 0:
        return {"mean_cosine": None, "centered_rms": None}
    norms = v.norm(dim=2, keepdim=True)
    u = torch.where(norms > 0, v / torch.where(norms > 0, norms, torch.ones_like(norms)),
                    torch.zeros_like(v))
    cos = u @ u.transpose(1, 2)  # (batch, T, T), each pair twice, the diagonal apart
    off = ~torch.eye(tokens, dtype=torch.bool)
    mean_cosine = float(cos[:, off].mean(dim=1).mean())
    centered = v - v.mean(dim=1, keepdim=True)
    return {"mean_cosine": mean_cosine, "centered_rms": float(centered.square().mean().sqrt())}


def attention_statistics(a):
    """Over the rows (example, head, query) of P: mean entropy -sum P ln P in nats over the
    unmasked keys (masked entries are exactly 0), the largest scaled logit over the unmasked
    entries, the share of rows whose largest weight exceeds 0.99 among the rows that see two keys
    or more (a causal first row's one weight is 1 whatever the logits); rows with a non-finite
    logit are left out."""
    logits = a["logits"].to(torch.float64)
    p = a["probs"].to(torch.float64)
    unmasked = logits > -math.inf
    finite_row = (torch.isfinite(logits) | ~unmasked).all(dim=-1)
    p = p[finite_row]
    if p.shape[0] == 0:
        return {"entropy": None, "max_logit": None, "peaked_rows": 0, "rows": 0, "choosing": 0}
    choosing = unmasked[finite_row].sum(dim=-1) > 1
    terms = torch.where(p > 0, p * torch.log(torch.where(p > 0, p, torch.ones_like(p))),
                        torch.zeros_like(p))
    return {"entropy": float((-terms.sum(dim=-1)).mean()),
            "max_logit": float(logits[finite_row][unmasked[finite_row]].max()),
            "peaked_rows": int(((p.max(dim=-1).values > 0.99) & choosing).sum()),
            "rows": int(p.shape[0]), "choosing": int(choosing.sum()),
            "scale": a["scale"]}


def torch_statistics(config, ops, tensors, compute_dtype=None):
    """Every compared statistic, per reported layer, from PyTorch, computed in the run's format
    (or in compute_dtype: float64 for the reference beside a float32 run)."""
    dtype = run_dtype(config)
    layers, y, loss, loss_scale = run_torch(config, ops, tensors, compute_dtype or dtype)
    tokens = tokens_of(config)
    optimizer = optimizer_of(config)
    stats = []
    for layer in layers:
        s = {"op": layer["op"], "kind": layer["kind"], "width": layer["out"].shape[1],
             "preact": moments(layer.get("preact", layer["pre"])), "act": moments(layer["out"]),
             "log10_grad_preact_rms": log10_norm(layer["pre"].grad, rms=True)}
        if "slope" in layer:
            # gradscope counts a unit dead when its slope, as computed in the run's format, is 0
            # for every example. A smooth activation's slope is 0 there only by underflow, and
            # gradscope's forms (1 / (E + 2 + 1/E) for sigmoid, E = exp(-h)) reach 0 where E
            # overflows, where the true slope is already below the format's smallest normal
            # number: so the true slope counts as 0 from there (flush to zero).
            tiny = torch.finfo(dtype).tiny
            dead = (layer["slope"].abs() < tiny).all(dim=0)
            s["dead_units"] = int(dead.sum().item())
        else:
            s["dead_units"] = 0
        if "params" in layer:
            ps = param_statistics(layer["params"], optimizer)
            weights = [p for p in ps if p["role"].endswith("weight")]
            biases = [p for p in ps if p["role"].endswith("bias")]
            # The layer's norms are over all its weight (bias) tensors together.
            s["log10_grad_weight_norm"] = log10_sum([p["log10_grad_norm"] for p in weights])
            s["log10_grad_bias_norm"] = log10_sum([p["log10_grad_norm"] for p in biases])
            s["log10_weight_bound"] = log10_sum([p["log10_bound"] for p in weights])
            s["log10_bias_bound"] = log10_sum([p["log10_bound"] for p in biases])
            s["params"] = ps
        if tokens > 1:
            s["tokens"] = token_statistics(layer["out"], tokens)
        if "attention" in layer:
            s["attention"] = attention_statistics(layer["attention"])
        stats.append(s)
    above = log10_norm(y.grad, rms=True)
    for s in reversed(stats):
        s["log10_gain"] = s["log10_grad_preact_rms"] - above
        above = s["log10_grad_preact_rms"]
    summary = {
        "log10_grad_ratio_first_to_last":
            stats[0]["log10_grad_preact_rms"] - stats[-1]["log10_grad_preact_rms"],
        "log10_output_grad_rms": log10_norm(y.grad, rms=True),
        "loss": loss,
        "loss_scale": loss_scale,
    }
    return stats, summary, dtype


# ---- Comparison with the report ----------------------------------------------------------------

REPORT_KINDS = {"dense": "dense", "norm": "norm", "activation": "activation",
                "dropout": "dropout", "residual_end": "residual", "attention": "attention",
                "glu": "glu"}


def report_value(obj, key):
    """A number from the report; None when it is null (with a _status such as underflow)."""
    v = obj.get(key)
    return None if v is None else float(v)


def report_log10(obj, key):
    """A log10 from the report, where null with status "-inf" means log10(0)."""
    v = obj.get(key)
    if v is None:
        status = obj.get(key + "_status")
        return {"-inf": -math.inf, "inf": math.inf}.get(status, math.nan)
    return float(v)


def relative_from_log10(a, b):
    """|x/y - 1| from log10 x and log10 y, exact where x or y is beyond double's range."""
    if a == b or (math.isnan(a) and math.isnan(b)):  # also two exact zeros, or two 0 / 0 gains
        return 0.0
    if math.isnan(a) or math.isnan(b) or math.isinf(a) or math.isinf(b):
        return math.inf
    return math.expm1(abs(a - b) * math.log(10.0))


def relative_above_floor(a, b, floor):
    """relative_from_log10, where two values both at or below the rounding floor agree (both are
    the rounding of an exact zero) and a value below it counts as the floor."""
    if a <= floor and b <= floor:
        return 0.0
    return relative_from_log10(max(a, floor), max(b, floor))


def scaled_difference(a, b, scale):
    """|a - b| / max(|a|, |b|, scale): relative where a value is large, and relative to the scale
    of the entries (their rms) where it is a near-zero mean or extreme of entries of either sign."""
    if a is None or b is None:
        return 0.0 if a is None and b is None else math.inf
    denom = max(abs(a), abs(b), scale or 0.0)
    return abs(a - b) / denom if denom > 0 else 0.0


class Table:
    """The largest difference per statistic and where it occurs."""

    def __init__(self):
        self.rows = {}

    def add(self, stat, diff, where, tolerance, unit="rel"):
        row = self.rows.setdefault(stat, {"diff": -1.0, "where": "-", "tol": tolerance,
                                          "unit": unit})
        diff = math.inf if math.isnan(diff) else diff
        if diff > row["diff"]:
            row.update(diff=diff, where=where)

    def failures(self):
        return [s for s, r in self.rows.items() if r["diff"] > r["tol"]]

    @staticmethod
    def _cell(r):
        if r["unit"] == "units":
            return f"{int(r['diff'])} units"
        return f"{r['diff']:.3g} {r['unit']}"

    def print(self, out, extras=()):
        """extras: (title, Table) pairs whose largest difference per statistic is shown beside."""
        out.write(f"{'statistic':<44} {'largest difference':>18}  {'at layer':<28} "
                  f"{'tolerance':>10}  status" + "".join(f"  {t:>18}" for t, _ in extras) + "\n")
        for stat, r in self.rows.items():
            tol = f"{int(r['tol'])} units" if r["unit"] == "units" else f"{r['tol']:.0e}"
            status = "ok" if r["diff"] <= r["tol"] else "FAIL"
            more = "".join(f"  {self._cell(t.rows[stat]) if stat in t.rows else '-':>18}"
                           for _, t in extras)
            where = r["where"] if r["diff"] > 0 else "-"
            out.write(f"{stat:<44} {self._cell(r):>18}  {where:<28} {tol:>10}  {status:<6}"
                      f"{more}".rstrip() + "\n")


def format_range_note(dtype):
    info = torch.finfo(dtype)
    return math.log10(info.tiny), math.log10(info.max)


def compare(report, stats, summary, dtype):
    float64 = dtype == torch.float64
    # float64: both programs compute every statistic in double from the same stored values, with
    # reductions of at most a few thousand terms in other orders; their rounding (n eps, eps =
    # 1.1e-16) stays below 1e-13 here, and 1e-10 leaves room for a deeper stack's amplification
    # while any real disagreement (a wrong formula, a missed term) is far above it. float32: the
    # two programs' float32 rounding through the whole network.
    rel_tol = 1e-10 if float64 else 1e-3
    log_tol = 1e-10 if float64 else 1e-3
    # A unit is dead when all its B derivatives are exactly 0: in float32 a pre-activation within
    # rounding of a kink (relu at 0, hard_tanh at +-1), or a sigmoid/tanh slope at the edge of
    # underflow, can fall either way with another summation order than OpenBLAS's; not so in
    # float64 at these sizes.
    dead_tol = 0 if float64 else 2
    # Gradients whose rms lies within this many decades of the format's limits have entries that
    # PyTorch stores as subnormals, zeros or infinities (gradscope rescales, PyTorch cannot).
    margin = 4.0
    lo, hi = format_range_note(dtype)
    log10_ulps = math.log10(ZERO_FLOOR_ULPS * torch.finfo(dtype).eps)
    tol = sequence_tolerances(float64, rel_tol)

    layers = report["layers"]
    if len(layers) != len(stats):
        raise UsageError(f"the report has {len(layers)} layers, the config in the file expands "
                         f"to {len(stats)} reported ops: the report is not of this run")
    table = Table()
    notes = []
    for lr, s in zip(layers, stats):
        where = f"{lr['index']} ({lr['kind']})"
        if REPORT_KINDS.get(s["kind"]) != lr["kind"] or s["width"] != lr["width"]:
            raise UsageError(f"report layer {lr['index']} is a {lr['kind']} of width "
                             f"{lr['width']}, the file's op {s['op']} a {s['kind']} of width "
                             f"{s['width']}: the report is not of this run")
        fw, bw = lr["forward"], lr["backward"]
        for part in ("preact", "act"):
            mine = s[part]
            theirs = {k: report_value(fw[part], k) for k in ("mean", "rms", "min", "max")}
            scale = max(theirs["rms"] or 0.0, mine["rms"] or 0.0)
            keys = ("rms",) if part == "preact" else ("rms", "mean", "min", "max")
            for key in keys:
                table.add(f"forward.{part}.{key}",
                          scaled_difference(mine[key], theirs[key], scale), where, rel_tol)
        table.add("forward.dead_units", abs(s["dead_units"] - int(fw["dead_units"])), where,
                  dead_tol, unit="units")

        theirs_g = report_log10(bw["grad_preact"], "log10_rms")
        if math.isfinite(theirs_g) and not lo + margin <= theirs_g <= hi - margin:
            notes.append(f"layer {where}: gradient rms 1e{theirs_g:.1f} is within {margin:g} "
                         f"decades of {str(dtype).split('.')[-1]}'s limits, where PyTorch's "
                         "entries turn subnormal, zero or infinite (gradscope rescales by powers "
                         "of two): a difference there is PyTorch's")
        table.add("backward.grad_preact.rms (log10)",
                  relative_from_log10(s["log10_grad_preact_rms"], theirs_g), where, rel_tol)
        if "grad_weight" in bw:
            if "log10_grad_weight_norm" not in s:
                raise UsageError(f"report layer {lr['index']} has weights, the file's op "
                                 f"{s['op']} none")
            table.add("backward.grad_weight.norm (log10)",
                      relative_above_floor(s["log10_grad_weight_norm"],
                                           report_log10(bw["grad_weight"], "log10_norm"),
                                           s["log10_weight_bound"] + log10_ulps), where, rel_tol)
            table.add("backward.grad_bias.norm (log10)",
                      relative_above_floor(s["log10_grad_bias_norm"],
                                           report_log10(bw["grad_bias"], "log10_norm"),
                                           s["log10_bias_bound"] + log10_ulps), where, rel_tol)
        table.add("backward.gain (log10)",
                  relative_from_log10(s["log10_gain"], report_log10(bw, "log10_gain")), where,
                  rel_tol)
        compare_sequence_stats(table, lr, s, where, tol)
        if "parameters" in bw:
            compare_params(table, "backward.parameters", bw["parameters"], s.get("params", []),
                           where, tol, log10_ulps, require_update=True)

    # Every learned tensor, named as --save-weights names them, input side first.
    mine_params = []
    for i, s in enumerate(stats):
        for p in s.get("params", []):
            if p["role"] == "bias" and s["kind"] == "norm" and p["log10_grad_norm"] == -math.inf \
                    and p["norm"] == 0:
                continue  # rms_norm's beta: not a parameter (no gradient reaches it)
            mine_params.append({**p, "name": f"ops.{s['op']}.{p['role']}", "layer": i + 1})
    if "parameters" in report:
        compare_params(table, "parameters", report["parameters"], mine_params, "-", tol,
                       log10_ulps)

    mine = summary["log10_grad_ratio_first_to_last"]
    theirs = report_log10(report["summary"], "log10_grad_ratio_first_to_last")
    if math.isfinite(mine) and math.isfinite(theirs):
        diff = abs(mine - theirs)
    else:  # a zero gradient (log10 -inf) makes the ratio -inf, +inf or NaN alike in both
        diff = 0.0 if mine == theirs or (math.isnan(mine) and math.isnan(theirs)) else math.inf
    table.add("summary.log10_grad_ratio_first_to_last", diff, "-", log_tol, unit="abs")
    table.add("output_grad.rms (log10)",
              relative_from_log10(summary["log10_output_grad_rms"],
                                  report_log10(report["output_grad"], "log10_rms")), "-", rel_tol)
    table.add("loss.value",
              scaled_difference(summary["loss"], report_value(report["loss"], "value"),
                                summary["loss_scale"]), "-", rel_tol)
    return table, notes


def sequence_tolerances(float64, rel_tol):
    """Tolerances of the sequence, attention and parameter statistics. float64: each is a
    double-precision computation of a handful of reductions (a few hundred roundings of 1.1e-16
    at these sizes), so 1e-10 leaves a margin of 1e4 over rounding; float32 keeps the script's
    float32 tolerance (rel_tol: float32 rounding through the whole network)."""
    return {
        # Cosines lie in [-1, 1]: an absolute difference (gradscope forms the pair sum as
        # ||sum u||^2 - sum ||u||^2, which cancels to eps T^2 absolute, not relative).
        "cosine": 1e-10 if float64 else rel_tol,
        # Relative to the output's rms: the centred tokens are y minus a mean, whose rounding is
        # eps |y|, however small the difference.
        "centered": 1e-10 if float64 else rel_tol,
        # Entropy relative to max(entropy, 1 nat): a near-one-hot row's entropy is a sum of tiny
        # terms of relative accuracy eps but far below the scale that matters.
        "entropy": 1e-10 if float64 else rel_tol,
        "logit": 1e-10 if float64 else rel_tol,  # relative: one dot product and a scale
        # Rows with max P > 0.99: none may differ in float64 (no row lies within 1e-13 of 0.99
        # at these sizes); float32's P moves by ~1e-7, so one row near the threshold may flip.
        "peaked": 0 if float64 else 1,
        "norm": 1e-10 if float64 else rel_tol,  # ||p|| of the same stored values, in double
        "grad": 1e-10 if float64 else rel_tol,  # ||dL/dp||: rounding of the backward pass
        "update": 1e-10 if float64 else rel_tol,  # lr ||step|| / ||p||: as the two above
        "scale": 1e-15,  # the resolved scale: the same formula in double
    }


def compare_sequence_stats(table, lr, s, where, tol):
    """forward.tokens (T > 1) and forward.attention of one layer, and the resolved scale."""
    fw = lr["forward"]
    if ("tokens" in s) != ("tokens" in fw):
        raise UsageError(f"report layer {lr['index']}: forward.tokens is "
                         f"{'missing' if 'tokens' in s else 'present'}, the run has "
                         f"{'tokens' if 'tokens' in s else 'one token'} per example")
    if "tokens" in s:
        mine, theirs = s["tokens"], fw["tokens"]
        table.add("forward.tokens.mean_cosine",
                  scaled_difference(mine["mean_cosine"], report_value(theirs, "mean_cosine"),
                                    1.0), where, tol["cosine"], unit="abs")
        table.add("forward.tokens.centered_rms",
                  scaled_difference(mine["centered_rms"], report_value(theirs, "centered_rms"),
                                    s["act"]["rms"]), where, tol["centered"])
    if ("attention" in s) != ("attention" in fw):
        raise UsageError(f"report layer {lr['index']}: forward.attention is "
                         f"{'missing' if 'attention' in s else 'present'} for a {lr['kind']}")
    if "attention" not in s:
        return
    mine, theirs = s["attention"], fw["attention"]
    table.add("forward.attention.entropy",
              scaled_difference(mine["entropy"], report_value(theirs, "entropy"), 1.0), where,
              tol["entropy"])
    table.add("forward.attention.max_logit",
              scaled_difference(mine["max_logit"], report_value(theirs, "max_logit"), 0.0),
              where, tol["logit"])
    fraction = report_value(theirs, "peaked_fraction")
    rows = mine["choosing"]
    # The report's share times the row count is the count up to rounding (an integer).
    theirs_rows = math.inf if fraction is None else round(fraction * rows)
    table.add("forward.attention.peaked rows", abs(mine["peaked_rows"] - theirs_rows), where,
              tol["peaked"], unit="units")
    if "scale" in mine and "attention" in lr:
        table.add("attention.scale",
                  scaled_difference(mine["scale"], report_value(lr["attention"], "scale"), 0.0),
                  where, tol["scale"])


def compare_params(table, prefix, theirs_list, mine_list, where, tol, log10_ulps,
                   require_update=False):
    """Per learned tensor: its norm, gradient norm (both at the rounding floor count as equal,
    as for the layers' weight gradients) and update ratio, where the report has one (every
    tensor of an attention or GLU op under an optimizer: require_update)."""
    theirs_by = {p.get("name", p["role"]): p for p in theirs_list}
    mine_by = {p.get("name", p["role"]): p for p in mine_list}
    if sorted(theirs_by) != sorted(mine_by):
        raise UsageError(f"{prefix} at {where}: the report lists {sorted(theirs_by)}, the run has "
                         f"{sorted(mine_by)}: the report is not of this run")
    for key, mine in mine_by.items():
        theirs = theirs_by[key]
        at = key if where == "-" else f"{where} {key}"
        if list(theirs["shape"]) != mine["shape"] or theirs.get("layer", mine.get("layer")) != \
                mine.get("layer"):
            raise UsageError(f"{prefix} {at}: shape {theirs['shape']} (layer "
                             f"{theirs.get('layer')}), the run's {mine['shape']} (layer "
                             f"{mine.get('layer')})")
        table.add(f"{prefix}.norm",
                  scaled_difference(mine["norm"], report_value(theirs, "norm"), 0.0), at,
                  tol["norm"])
        floor = mine["log10_bound"] + log10_ulps
        theirs_g = report_log10(theirs, "log10_grad_norm")
        table.add(f"{prefix}.grad_norm (log10)",
                  relative_above_floor(mine["log10_grad_norm"], theirs_g, floor), at,
                  tol["grad"])
        has_update = "log10_update_to_weight" in theirs or "update_to_weight_status" in theirs
        if require_update and "log10_update_to_weight" in mine and not has_update:
            raise UsageError(f"{prefix} {at}: no update_to_weight, though the run has an "
                             "optimizer")
        if has_update:
            if "log10_update_to_weight" not in mine:
                raise UsageError(f"{prefix} {at}: the report has an update ratio, the run no "
                                 "optimizer")
            # An update of a gradient that is rounding noise is noise itself.
            below = mine["log10_grad_norm"] <= floor and theirs_g <= floor
            table.add(f"{prefix}.update_to_weight (log10)",
                      0.0 if below else
                      relative_from_log10(mine["log10_update_to_weight"],
                                          report_log10(theirs, "log10_update_to_weight")),
                      at, tol["update"])


def crosscheck(run_path, report_path, out):
    """Cross-checks a --save-weights file against the report of the same run."""
    metadata, tensors = read_safetensors(run_path)
    try:
        with open(report_path, encoding="utf-8") as f:
            report = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise UsageError(f"{report_path}: {e}") from None
    text = metadata.get("gradscope_config")
    if text is None:
        raise UsageError(f"{run_path}: no __metadata__.gradscope_config; was it written by "
                         "`gradscope run --save-weights`?")
    config = json.loads(text)
    if "config" in report and report["config"] != config:
        raise UsageError(f"{report_path} was made with another config than {run_path}")
    return check_run(config, tensors, report, out,
                     f"gradscope {metadata.get('gradscope_version', '?')}")


def check_run(config, tensors, report, out, title="gradscope"):
    """Recomputes every statistic of the run that `config` (resolved) and `tensors` (named as
    --save-weights names them: ops.K.weight, input, probe/targets/labels) describe, compares it
    with `report` (gradscope's JSON, parsed), prints the table; 0 within tolerance, else 1."""
    ops = expand_ops(config)
    unused = sorted(set(tensors) - load_run(tensors, ops, config))
    stats, summary, dtype = torch_statistics(config, ops, tensors)
    table, notes = compare(report, stats, summary, dtype)
    extras = []
    if dtype == torch.float32:
        # The same float32 values through PyTorch in float64: how far each program's float32
        # rounding moves a statistic here. Only informative (the verdict is float32 against
        # float32), but it tells a bug from a network that amplifies rounding beyond tolerance.
        ref, ref_summary, _ = torch_statistics(config, ops, tensors, torch.float64)
        torch_f32, _ = compare(as_report(stats, summary), ref, ref_summary, dtype)
        gradscope_f32, _ = compare(report, ref, ref_summary, dtype)
        extras = [("torch f32 vs f64", torch_f32), ("gradscope vs f64", gradscope_f32)]

    out.write(f"{title} vs PyTorch {torch.__version__}"
              f": {config.get('name', '?')} ({config.get('precision', 'float32')}, "
              f"{len(stats)} layers, loss {summary_loss_name(config)})\n")
    table.print(out, extras)
    if unused:
        out.write(f"info: tensors in the file that this config does not use: {', '.join(unused)}\n")
    for n in notes:
        out.write(f"note: {n}\n")
    failed = table.failures()
    if failed:
        out.write(f"FAIL: {len(failed)} statistic(s) above tolerance: {', '.join(failed)}\n")
        if extras:
            rounding = [f for f in failed if extras[0][1].rows[f]["diff"] > table.rows[f]["tol"]]
            if rounding:
                out.write("note: PyTorch's own float32 is off from float64 by more than the "
                          f"tolerance in {', '.join(rounding)}: this network amplifies float32 "
                          "rounding (compare the two columns on the right)\n")
        return 1
    out.write(f"ok: all {len(table.rows)} statistics within tolerance\n")
    return 0


def as_report(stats, summary):
    """PyTorch's statistics in the report's layout, to compare two PyTorch runs with compare()."""
    layers = []
    for i, s in enumerate(stats):
        bw = {"grad_preact": {"log10_rms": s["log10_grad_preact_rms"]},
              "log10_gain": s["log10_gain"]}
        if "log10_grad_weight_norm" in s:
            bw["grad_weight"] = {"log10_norm": s["log10_grad_weight_norm"]}
            bw["grad_bias"] = {"log10_norm": s["log10_grad_bias_norm"]}
        fw = {"preact": s["preact"], "act": s["act"], "dead_units": s["dead_units"]}
        if "tokens" in s:
            fw["tokens"] = s["tokens"]
        if "attention" in s:
            a = s["attention"]
            fw["attention"] = {"entropy": a["entropy"], "max_logit": a["max_logit"],
                               "peaked_fraction": a["peaked_rows"] / max(a["choosing"], 1)}
        if s["kind"] in ("attention", "glu"):
            bw["parameters"] = [as_report_param(p) for p in s["params"]]
        layers.append({"index": i + 1, "kind": REPORT_KINDS[s["kind"]], "width": s["width"],
                       "forward": fw, "backward": bw})
    params = [{**as_report_param(p), "name": f"ops.{s['op']}.{p['role']}", "layer": i + 1}
              for i, s in enumerate(stats) for p in s.get("params", [])
              if not (s["kind"] == "norm" and p["role"] == "bias" and
                      p["log10_grad_norm"] == -math.inf and p["norm"] == 0)]
    return {"layers": layers, "parameters": params,
            "summary": {"log10_grad_ratio_first_to_last":
                        summary["log10_grad_ratio_first_to_last"]},
            "output_grad": {"log10_rms": summary["log10_output_grad_rms"]},
            "loss": {"value": summary["loss"]}}


def as_report_param(p):
    out = {"role": p["role"], "shape": p["shape"], "norm": p["norm"],
           "log10_grad_norm": p["log10_grad_norm"]}
    if "log10_update_to_weight" in p:
        out["log10_update_to_weight"] = p["log10_update_to_weight"]
    return out


def summary_loss_name(config):
    loss = config.get("loss", "probe")
    return loss if isinstance(loss, str) else loss["name"]


# ---- Self-test: the loader, the op expansion and the activation definitions --------------------

def _numpy_activation(name, p, x):
    """gradscope's formulas (src/core/activation.cpp's table) written independently in numpy."""
    erf = np.vectorize(math.erf)
    sig = lambda v: 1.0 / (1.0 + np.exp(-v))
    alpha, scale = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
    return {
        "linear": lambda: x,
        "relu": lambda: np.maximum(x, 0.0),
        "leaky_relu": lambda: np.where(x > 0, x, p * x),
        "elu": lambda: np.where(x > 0, x, p * np.expm1(x)),
        "selu": lambda: scale * np.where(x > 0, x, alpha * np.expm1(x)),
        "gelu": lambda: x * 0.5 * (1.0 + erf(x / math.sqrt(2.0))),
        "gelu_tanh": lambda: 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) *
                                                      (x + 0.044715 * x ** 3))),
        "silu": lambda: x * sig(x),
        "mish": lambda: x * np.tanh(np.log1p(np.exp(x))),
        "softplus": lambda: np.log1p(np.exp(x)),
        "sigmoid": lambda: sig(x),
        "tanh": lambda: np.tanh(x),
        "hard_tanh": lambda: np.clip(x, -1.0, 1.0),
    }[name]()


def _check(condition, what, failures):
    if not condition:
        failures.append(what)


def _self_test_activations(failures):
    # |x| <= 15 keeps the formulas' naive numpy forms accurate (no overflow, no 1 - 1 cancellation
    # worse than 1e-12); the kinks are included.
    x = np.concatenate([np.linspace(-15, 15, 3001), [-1.0, 0.0, 1.0]])
    for name in ACTIVATIONS:
        if name == "softmax":
            continue
        p = ACTIVATION_PARAMS.get(name, (None, 0.0))[1]
        if name == "leaky_relu":
            p = 0.1
        mine = ACTIVATIONS[name](torch.from_numpy(x), p).numpy()
        ref = _numpy_activation(name, p, x)
        # Agreement to 1e-12 of the value's size: both are double, written differently.
        err = np.max(np.abs(mine - ref) / np.maximum(1.0, np.abs(ref)))
        _check(err < 1e-12, f"activation {name}: PyTorch and the formula differ by {err:.2g}",
               failures)
    # Derivatives at the kinks follow PyTorch's backward, as gradscope's do (src/core/activation.cpp).
    kinks = {("relu", 0.0): 0.0, ("leaky_relu", 0.0): 0.1, ("elu", 0.0): 1.0,
             ("hard_tanh", 1.0): 0.0, ("hard_tanh", -1.0): 0.0}
    for (name, at), want in kinks.items():
        p = 0.1 if name == "leaky_relu" else ACTIVATION_PARAMS.get(name, (None, 0.0))[1]
        d = activation_slope(name, p, torch.tensor([[at]], dtype=torch.float64)).item()
        _check(d == want, f"{name}'({at}) = {d}, gradscope uses {want}", failures)
    # The accurate slopes of the dead-unit count are the derivatives autograd takes, where
    # autograd's forms are accurate (|x| <= 10: 1 - sigmoid(10) keeps 12 digits of 4.5e-5) ...
    x = torch.linspace(-10, 10, 2001, dtype=torch.float64)
    for name in ACTIVATIONS:
        if name == "softmax":
            continue
        p = 0.1 if name == "leaky_relu" else ACTIVATION_PARAMS.get(name, (None, 0.0))[1]
        want = activation_slope(name, p, x)
        got = accurate_slope(name, p, x)
        # 1e-9: autograd's own y (1 - y) forms lose up to ~1e-11 relative at |x| = 10.
        err = float(((got - want).abs() / want.abs().clamp(min=1e-3)).max())
        _check(err < 1e-9, f"accurate slope of {name} is off autograd's by {err:.2g}", failures)
    # ... and keep their relative accuracy in the tails, where autograd's round to 0.
    tails = [("sigmoid", -700.0, math.exp(-700.0)), ("tanh", 300.0, 4 * math.exp(-600.0)),
             ("softplus", -700.0, math.exp(-700.0)), ("elu", -700.0, math.exp(-700.0)),
             ("sigmoid", 40.0, math.exp(-40.0) / (1 + math.exp(-40.0)) ** 2),
             ("gelu", -30.0, 0.5 * math.erfc(30 / math.sqrt(2)) -
              30 * math.exp(-450) / math.sqrt(2 * math.pi))]
    for name, at, want in tails:
        got = accurate_slope(name, 1.0, torch.tensor([at], dtype=torch.float64)).item()
        _check(abs(got - want) <= 1e-12 * abs(want), f"{name}'({at}) = {got:.6g}, not {want:.6g}",
               failures)
    y = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
    s = F.softmax(y, dim=1)
    _check(abs(s.sum().item() - 1.0) < 1e-15 and s[0, 2] > s[0, 0],
           "softmax is not over the units of an example", failures)


def _self_test_expansion(failures):
    config = {"input": {"width": 6, "batch": 7}, "layers": [
        {"width": 8, "activation": "relu", "norm": "batch_norm"},
        {"width": 8, "activation": "tanh", "norm": "rms_norm", "norm_position": "after_activation"},
        {"width": 8, "activation": "linear", "norm": "layer_norm"},
        {"repeat": 2, "residual": {"scale": 0.5},
         "block": [{"norm": "layer_norm"}, {"width": 8, "activation": "gelu"},
                   {"repeat": 1, "residual": True, "block": [{"activation": "silu"}]}]},
        {"repeat": 1, "residual": {"projection": True, "placement": "post_norm",
                                   "norm": "layer_norm"}, "block": [{"width": 5}]},
        {"dropout": 0.0},
        {"repeat": 2, "block": [{"width": 3, "activation": "linear"}]}]}
    kinds = [op["kind"] for op in expand_ops(config)]
    want = (["dense", "norm", "activation", "dense", "norm", "dense", "norm"] +
            ["residual_begin", "norm", "dense", "residual_begin", "activation", "residual_end",
             "residual_end"] * 2 +
            ["residual_begin", "dense", "residual_end", "norm", "dropout", "dense", "dense"])
    _check(kinds == want, f"expand_ops gives {kinds}, expected {want}", failures)
    ops = expand_ops(config)
    ends = [(k, op["partner"]) for k, op in enumerate(ops) if op["kind"] == "residual_end"]
    _check(ends == [(12, 10), (13, 7), (19, 17), (20, 14), (23, 21)],
           f"residual partners {ends}", failures)
    stack = {"stack": {"depth": 3, "width": 4, "activation": {"name": "elu", "alpha": 0.5}},
             "output": {"width": 2, "activation": "softmax"}}
    got = [(op["kind"], op["width"], op["activation"]) for op in expand_ops(stack)]
    _check(got == [("dense", 4, ("elu", 0.5))] * 3 + [("dense", 2, ("softmax", 0.0))],
           f"stack expansion {got}", failures)


def _random_run(rng, precision, loss):
    """A config with every op kind, and weights, input and drive for it, as the file holds them."""
    config = {"name": f"selftest-{precision}-{loss}", "precision": precision,
              "input": {"width": 5, "batch": 6},
              "layers": [
                  {"width": 7, "activation": "linear"}, {"norm": {"name": "batch_norm",
                                                                  "eps": 1e-5}},
                  {"activation": "tanh"},
                  {"repeat": 2, "residual": {"scale": 0.5, "projection": False,
                                             "placement": "pre_norm"},
                   "block": [{"norm": {"name": "layer_norm", "eps": 1e-5}},
                             {"width": 7, "activation": "gelu"}]},
                  {"repeat": 1, "residual": {"scale": 1.0, "projection": {"name": "orthogonal"},
                                             "placement": "post_norm",
                                             "norm": {"name": "rms_norm", "eps": 1e-6}},
                   "block": [{"width": 4, "activation": {"name": "elu", "alpha": 1.0}}]},
                  {"dropout": 0.0},
                  {"width": 3, "activation": "linear"}],
              "loss": loss if loss != "softmax_cross_entropy" else {"name": loss, "classes": 3}}
    dt = np.float64 if precision == "float64" else np.float32
    ops = expand_ops(config)
    tensors = {}
    width = 5
    widths = []
    for k, op in enumerate(ops):
        if op["kind"] == "dense":
            tensors[f"ops.{k}.weight"] = (rng.standard_normal((op["width"], width)) /
                                          math.sqrt(width)).astype(dt)
            tensors[f"ops.{k}.bias"] = (0.1 * rng.standard_normal(op["width"])).astype(dt)
            width = op["width"]
        elif op["kind"] == "residual_end" and op["projection"]:
            skip = widths[op["partner"] - 1]
            tensors[f"ops.{k}.projection"] = rng.standard_normal((width, skip)).astype(dt)
        widths.append(width)
    tensors["input"] = rng.standard_normal((6, 5)).astype(dt)
    if loss == "probe":
        tensors["probe"] = rng.standard_normal((6, 3)).astype(dt)
    elif loss == "mse":
        tensors["targets"] = rng.standard_normal((6, 3)).astype(dt)
    elif loss == "sigmoid_bce":
        tensors["targets"] = (rng.random((6, 3)) < 0.5).astype(dt)
    else:
        tensors["labels"] = rng.integers(0, 3, 6).astype(dt)
    return config, tensors


def _random_sequence_run(rng, precision):
    """A sequence config with attention (biases, causal and not, each scale kind, without an
    output projection), a GLU, a residual skip and batch norm over batch x tokens, and its file's
    tensors: (batch, tokens, width) input and probe."""
    batch, tokens, width = 3, 4, 8
    config = {"name": f"selftest-seq-{precision}", "precision": precision,
              "input": {"width": width, "batch": batch, "tokens": tokens},
              "layers": [
                  {"attention": {"heads": 2, "causal": True, "bias": True}},
                  {"glu": {"hidden": 6, "activation": "gelu", "bias": True}},
                  {"repeat": 1, "residual": {"scale": 0.5, "skip": 0.7, "projection": False},
                   "block": [{"norm": {"name": "layer_norm", "eps": 1e-5}},
                             {"attention": {"heads": 4, "causal": False, "scale": "1/d_head",
                                            "output_projection": False}}]},
                  {"attention": {"heads": 1, "scale": 0.3, "bias": False}},
                  {"width": 8, "activation": "linear"},
                  {"norm": {"name": "batch_norm", "eps": 1e-5}}, {"activation": "relu"},
                  {"width": 3, "activation": "linear"}],
              "loss": "probe"}
    dt = np.float64 if precision == "float64" else np.float32
    tensors = {}
    n = width
    for k, op in enumerate(expand_ops(config)):
        for _, name, shape in file_tensors(op, k, n):
            tensors[name] = (rng.standard_normal(shape) / math.sqrt(shape[-1])).astype(dt)
        n = op.get("width", n) if op["kind"] == "dense" else n
    tensors["input"] = rng.standard_normal((batch, tokens, width)).astype(dt)
    tensors["probe"] = rng.standard_normal((batch, tokens, 3)).astype(dt)
    return config, tensors


def _self_test_sequence_ops(failures):
    """The attention and GLU forms against loops written from their definitions in numpy, and
    the token, attention and update statistics against closed forms."""
    rng = np.random.default_rng(7)
    batch, tokens, d = 2, 5, 6
    x = rng.standard_normal((batch * tokens, d))
    for heads, causal, scale, proj in ((2, True, "1/sqrt(d_head)", True),
                                       (3, False, "1/d_head", False), (1, True, 0.25, True)):
        op = {"kind": "attention", "heads": heads, "causal": causal, "scale": scale, "bias": True,
              "output_projection": proj}
        w = {r: rng.standard_normal((d, d)) for r in ("query", "key", "value", "output")}
        b = {r: rng.standard_normal(d) for r in w}
        t = {f"ops.0.{r}.weight": torch.from_numpy(w[r]) for r in w}
        t.update({f"ops.0.{r}.bias": torch.from_numpy(b[r]) for r in b})
        layer = {}
        y, _ = attention_forward(op, 0, t, torch.from_numpy(x), tokens, layer)
        dh = d // heads
        sc = resolved_attention_scale(op, d)
        _check(sc == (scale if isinstance(scale, float) else
                      1 / math.sqrt(dh) if scale == "1/sqrt(d_head)" else 1 / dh),
               f"attention scale {scale}: {sc}", failures)
        want = np.zeros_like(x)
        for e in range(batch):
            xe = x[e * tokens:(e + 1) * tokens]
            q, k, v = (xe @ w[r].T + b[r] for r in ("query", "key", "value"))
            o = np.zeros((tokens, d))
            for h in range(heads):
                cols = slice(h * dh, (h + 1) * dh)
                for i in range(tokens):
                    keys = range(i + 1) if causal else range(tokens)
                    logit = np.array([sc * q[i, cols] @ k[j, cols] for j in keys])
                    pr = np.exp(logit - logit.max())
                    pr /= pr.sum()
                    o[i, cols] = sum(pr[n] * v[j, cols] for n, j in enumerate(keys))
            want[e * tokens:(e + 1) * tokens] = o @ w["output"].T + b["output"] if proj else o
        err = float(np.abs(y.detach().numpy() - want).max())
        # 1e-12: the same double arithmetic in other orders, on values of size ~10.
        _check(err < 1e-12, f"attention (heads {heads}, causal {causal}) is off the loop by "
               f"{err:.2g}", failures)
    hidden = 4
    w = {"gate": rng.standard_normal((hidden, d)), "up": rng.standard_normal((hidden, d)),
         "down": rng.standard_normal((d, hidden))}
    b = {"gate": rng.standard_normal(hidden), "up": rng.standard_normal(hidden),
         "down": rng.standard_normal(d)}
    t = {f"ops.3.{r}.weight": torch.from_numpy(w[r]) for r in w}
    t.update({f"ops.3.{r}.bias": torch.from_numpy(b[r]) for r in b})
    y, params = glu_forward({"kind": "glu", "hidden": hidden, "activation": ("silu", 0.0),
                             "bias": True}, 3, t, torch.from_numpy(x), {})
    h1 = x @ w["gate"].T + b["gate"]
    want = ((h1 / (1 + np.exp(-h1))) * (x @ w["up"].T + b["up"])) @ w["down"].T + b["down"]
    err = float(np.abs(y.detach().numpy() - want).max())
    _check(err < 1e-12, f"SwiGLU is off its formula by {err:.2g}", failures)
    _check([r for r, *_ in params] == ["gate.weight", "gate.bias", "up.weight", "up.bias",
                                        "down.weight", "down.bias"],
           f"GLU parameter order {[r for r, *_ in params]}", failures)
    # Tokens: identical tokens are collapsed (cosine 1, nothing centred); e, -e and a zero token
    # give pair cosines -1, -1 and four zeros: -1/3; the centred rms sqrt(2 / (3 d)).
    e = np.eye(d)[0]
    seq = np.stack([np.tile(e + 0.5, (3, 1)), np.stack([e, -e, 0 * e])]).reshape(6, d)
    ts = token_statistics(torch.from_numpy(seq), 3)
    _check(abs(ts["mean_cosine"] - (1 - 1 / 3) / 2) < 1e-15 and
           abs(ts["centered_rms"] - math.sqrt(2 / (3 * d) / 2)) < 1e-15,
           f"token statistics {ts}", failures)
    # Attention rows: uniform over 3 unmasked keys (ln 3), one-hot (0, peaked), a masked key.
    inf = math.inf
    logits = torch.tensor([[[[0.5, 0.5, 0.5, -inf], [40.0, 0.0, -inf, -inf]]]],
                          dtype=torch.float64)
    st = attention_statistics({"logits": logits, "probs": F.softmax(logits, dim=-1),
                               "scale": 1.0})
    _check(abs(st["entropy"] - math.log(3) / 2) < 1e-15 and st["max_logit"] == 40.0 and
           st["peaked_rows"] == 1 and st["rows"] == 2, f"attention statistics {st}", failures)
    # First steps: sgd lr ||g|| / ||p||; adam lr ||g / (|g| + eps)|| / ||p||.
    g = torch.tensor([3.0, -4.0, 1e-8], dtype=torch.float64)
    sgd = 10 ** log10_update(("sgd", 0.1, 1e-8), g, math.log10(2.0))
    adam = 10 ** log10_update(("adam", 0.1, 1e-8), g, math.log10(2.0))
    want_adam = 0.1 * math.sqrt(sum((v / (abs(v) + 1e-8)) ** 2 for v in (3.0, -4.0, 1e-8))) / 2
    _check(abs(sgd - 0.1 * math.sqrt(25 + 1e-16) / 2) < 1e-15 and
           abs(adam / want_adam - 1) < 1e-14, f"update ratios {sgd}, {adam}", failures)


def _self_test_files(failures, directory):
    rng = np.random.default_rng(12345)
    runs = [(precision, loss) for precision in ("float64", "float32")
            for loss in ("probe", "mse", "softmax_cross_entropy", "sigmoid_bce", "sequence")]
    for precision, loss in runs:
        if loss == "sequence":
            config, tensors = _random_sequence_run(rng, precision)
        else:
            config, tensors = _random_run(rng, precision, loss)
        # Stored in reverse order, so data_offsets do not follow the header's order.
        stored = dict(reversed(list(tensors.items())))
        meta = {"gradscope_config": json.dumps(config), "gradscope_version": "self-test"}
        path = os.path.join(directory, f"{config['name']}.safetensors")
        write_safetensors(path, stored, meta)
        with open(path, "rb") as f:
            head_len = struct.unpack("<Q", f.read(8))[0]
        _check(head_len % 8 == 0, f"{path}: header of {head_len} bytes is not padded",
               failures)
        got_meta, got = read_safetensors(path)
        _check(got_meta == meta, f"{path}: metadata {got_meta} != {meta}", failures)
        _check(sorted(got) == sorted(tensors), f"{path}: tensors {sorted(got)}", failures)
        for name, a in tensors.items():
            b = got.get(name)
            _check(b is not None and b.dtype == a.dtype and b.shape == a.shape and
                   np.array_equal(a, b), f"{path}: {name} does not round-trip", failures)
        # The loaded file reproduces, bit for bit, the statistics of the arrays it came from.
        config2 = json.loads(got_meta["gradscope_config"])
        ops = expand_ops(config2)
        load_run(got, ops, config2)
        s1, m1, _ = torch_statistics(config, expand_ops(config), tensors)
        s2, m2, _ = torch_statistics(config2, ops, got)
        _check(s1 == s2 and m1 == m2, f"{path}: statistics differ after loading", failures)
        _check(all(math.isfinite(s["log10_grad_preact_rms"]) for s in s2),
               f"{path}: a gradient is zero or non-finite", failures)
        if loss == "sequence":
            # Every op has token statistics, each attention op its rows (batch heads T).
            _check(all("tokens" in s for s in s2) and
                   [s["attention"]["rows"] for s in s2 if "attention" in s] ==
                   [3 * 2 * 4, 3 * 4 * 4, 3 * 1 * 4],
                   f"{path}: token or attention statistics missing", failures)
            # The skip's gradient reaches the residual's input, the key bias's is rounding
            # alone (softmax ignores a constant per row): far below the query bias's.
            keyb = [p for p in s2[0]["params"] if p["role"] == "key.bias"][0]
            queryb = [p for p in s2[0]["params"] if p["role"] == "query.bias"][0]
            _check(keyb["log10_grad_norm"] < queryb["log10_grad_norm"] - 5,
                   f"{path}: the key bias has a gradient", failures)
    # save_file's layout: data sorted by dtype (I64 before F64 before F32), then by name; the
    # compact header in that order, without __metadata__ when none is given; 0-d tensors.
    path = os.path.join(directory, "state_dict.safetensors")
    state = {"b.weight": np.ones((2, 3), np.float32), "a.weight": np.arange(2.0),
             "n.count": np.array(7, np.int64), "a.bias": np.zeros(1)}
    save_file_layout(path, state)
    with open(path, "rb") as f:
        head_len = struct.unpack("<Q", f.read(8))[0]
        head = f.read(head_len)
    want = ('{"n.count":{"dtype":"I64","shape":[],"data_offsets":[0,8]},'
            '"a.bias":{"dtype":"F64","shape":[1],"data_offsets":[8,16]},'
            '"a.weight":{"dtype":"F64","shape":[2],"data_offsets":[16,32]},'
            '"b.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[32,56]}}')
    _check(head.rstrip(b" ").decode() == want and head_len % 8 == 0,
           f"save_file layout: header {head!r}", failures)
    _, got = read_safetensors(path)
    _check(all(np.array_equal(got[k], v) and got[k].dtype == v.dtype for k, v in state.items()),
           "save_file layout: tensors do not round-trip", failures)
    # Malformed files are refused with a message, never read past their end.
    bad = os.path.join(directory, "bad.safetensors")
    for blob, what in ((b"\x01\x02", "short"), (struct.pack("<Q", 999) + b"{}", "long header"),
                       (struct.pack("<Q", 2) + b"{}" + b"", "empty")):
        with open(bad, "wb") as f:
            f.write(blob)
        try:
            _, t = read_safetensors(bad)
            _check(what == "empty" and t == {}, f"malformed file ({what}) was accepted", failures)
        except UsageError:
            _check(what != "empty", f"an empty file ({what}) was refused", failures)
    header = json.dumps({"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 12]}}).encode()
    with open(bad, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header + b"\0" * 12)
    try:
        read_safetensors(bad)
        failures.append("a tensor whose offsets do not match its shape was accepted")
    except UsageError:
        pass
    # Dropout above 0 is refused: its masks are not in the file.
    config, tensors = _random_run(rng, "float64", "probe")
    config["layers"][5] = {"dropout": 0.5}
    try:
        load_run(tensors, expand_ops(config), config)
        failures.append("dropout 0.5 was accepted")
    except UsageError as e:
        _check("dropout" in str(e), f"dropout refusal says {e}", failures)


def self_test(out):
    failures = []
    _self_test_activations(failures)
    _self_test_expansion(failures)
    _self_test_sequence_ops(failures)
    with tempfile.TemporaryDirectory() as d:
        _self_test_files(failures, d)
    for f in failures:
        out.write(f"self-test FAIL: {f}\n")
    if failures:
        return 1
    out.write("self-test ok: activations match gradscope's formulas and their slopes autograd's "
              "(and the tails), the op expansion mirrors expand_ops, safetensors files round-trip "
              "bit for bit in float32 and float64 with every loss's drive and with sequences; "
              "attention and GLU match loops written from their definitions, the token, "
              "attention and update statistics their closed forms\n")
    return 0


def main(argv):
    torch.set_num_threads(1)
    try:
        if argv == ["--self-test"]:
            return self_test(sys.stdout)
        if not argv or len(argv) % 2 or any(a.startswith("-") for a in argv):
            sys.stderr.write(__doc__)
            return 2
    except UsageError as e:
        sys.stderr.write(f"torch_crosscheck: {e}\n")
        return 2
    codes = []
    for run_path, report_path in zip(argv[0::2], argv[1::2]):
        if codes:
            sys.stdout.write("\n")
        try:
            codes.append(crosscheck(run_path, report_path, sys.stdout))
        except (UsageError, OSError) as e:
            sys.stdout.flush()
            sys.stderr.write(f"torch_crosscheck: {run_path}: {e}\n")
            codes.append(2)
    if len(codes) > 1:
        sys.stdout.write(f"\n{codes.count(0)} of {len(codes)} runs agree with PyTorch within "
                         "tolerance\n")
    return max(codes)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
