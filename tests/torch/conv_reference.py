#!/usr/bin/env python3
"""PyTorch float64 references for the convolution and pooling kernels (src/core/ops/conv_kernels):
for each case of CASES, seeded inputs, F.conv2d / max_pool2d / avg_pool2d / adaptive_avg_pool2d
outputs and the autograd gradients of L = sum(y * dy), written to one small binary file that
tests/core/test_conv_kernels.cpp reads (so the unit test needs no Python).

Regenerate (Debian's python3-torch, torch 1.13):
    /usr/bin/python3 tests/torch/conv_reference.py --seed 7 --out tests/data/conv_reference.bin

Every input is a float32 value held in float64 (so a float32 run sees the very same inputs), and the
max-pool inputs are multiples of 1/4 in [-1, 1] (so windows hold ties: the first maximum must win).

Format, little-endian: the magic b"GSCONV01", then records until the end of the file:
    u16 name length, name (ASCII, "case/tensor"), i64 rows, i64 cols, rows * cols f64 column-major.
A tensor of activations is (C H W, batch): column b is example b's CHW tensor flattened as PyTorch's
contiguous memory. A conv weight is (C_out, C_in / groups * kh * kw), PyTorch's tensor flattened
row-major. "case/shape" holds the case's integers (see CONV_FIELDS and POOL_FIELDS).
"""
import argparse
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

MAGIC = b"GSCONV01"
CONV_FIELDS = ["batch", "C_in", "H", "W", "C_out", "kernel_h", "kernel_w", "stride_h", "stride_w",
               "pad_h", "pad_w", "dilation_h", "dilation_w", "groups", "bias"]
POOL_FIELDS = ["batch", "C", "H", "W", "kernel_h", "kernel_w", "stride_h", "stride_w", "pad_h",
               "pad_w"]

# Small shapes that still exercise every index path: strides 2, padding, dilation 2, groups 2,
# depthwise with a channel multiplier, a non-square kernel, a 1 x 1 (pointwise) convolution.
CASES = [
    ("conv_general", "conv", dict(batch=2, C_in=4, H=6, W=5, C_out=4, kernel_h=3, kernel_w=2,
                                  stride_h=2, stride_w=1, pad_h=1, pad_w=1, dilation_h=2,
                                  dilation_w=1, groups=2, bias=1)),
    ("conv_depthwise", "conv", dict(batch=2, C_in=3, H=5, W=5, C_out=6, kernel_h=3, kernel_w=3,
                                    stride_h=2, stride_w=2, pad_h=1, pad_w=1, dilation_h=1,
                                    dilation_w=1, groups=3, bias=0)),
    ("conv_plain", "conv", dict(batch=2, C_in=2, H=4, W=4, C_out=3, kernel_h=3, kernel_w=3,
                                stride_h=1, stride_w=1, pad_h=0, pad_w=0, dilation_h=1,
                                dilation_w=1, groups=1, bias=1)),
    ("conv_pointwise", "conv", dict(batch=2, C_in=3, H=3, W=4, C_out=2, kernel_h=1, kernel_w=1,
                                    stride_h=1, stride_w=1, pad_h=0, pad_w=0, dilation_h=1,
                                    dilation_w=1, groups=1, bias=1)),
    ("max_pool", "max_pool", dict(batch=2, C=2, H=7, W=6, kernel_h=3, kernel_w=2, stride_h=2,
                                  stride_w=2, pad_h=1, pad_w=1)),
    ("avg_pool", "avg_pool", dict(batch=2, C=2, H=7, W=6, kernel_h=3, kernel_w=3, stride_h=2,
                                  stride_w=2, pad_h=1, pad_w=1)),
    ("global_avg_pool", "global_avg_pool", dict(batch=2, C=3, H=4, W=5, kernel_h=1, kernel_w=1,
                                                stride_h=1, stride_w=1, pad_h=0, pad_w=0)),
]


def activations(t):
    """(N, C, H, W) -> (C H W, N): one column per example."""
    return t.detach().reshape(t.shape[0], -1).numpy().T


def record(name, matrix):
    m = np.asarray(matrix, dtype="<f8")
    if m.ndim == 1:
        m = m.reshape(-1, 1)
    rows, cols = m.shape
    data = np.asfortranarray(m).tobytes(order="F")
    return (struct.pack("<H", len(name)) + name.encode("ascii") + struct.pack("<qq", rows, cols) +
            data)


def randn32(gen, *shape):
    return torch.randn(*shape, generator=gen, dtype=torch.float32).double()


def conv_case(name, s, gen):
    x = randn32(gen, s["batch"], s["C_in"], s["H"], s["W"]).requires_grad_()
    w = randn32(gen, s["C_out"], s["C_in"] // s["groups"], s["kernel_h"], s["kernel_w"])
    w.requires_grad_()
    b = randn32(gen, s["C_out"]).requires_grad_() if s["bias"] else None
    y = F.conv2d(x, w, b, stride=(s["stride_h"], s["stride_w"]), padding=(s["pad_h"], s["pad_w"]),
                 dilation=(s["dilation_h"], s["dilation_w"]), groups=s["groups"])
    dy = randn32(gen, *y.shape)
    (y * dy).sum().backward()
    out = [record(f"{name}/shape", [float(s[k]) for k in CONV_FIELDS]),
           record(f"{name}/x", activations(x)),
           record(f"{name}/weight", w.detach().reshape(s["C_out"], -1).numpy()),
           record(f"{name}/y", activations(y)),
           record(f"{name}/dy", activations(dy)),
           record(f"{name}/dx", activations(x.grad)),
           record(f"{name}/dweight", w.grad.reshape(s["C_out"], -1).numpy())]
    if b is not None:
        out += [record(f"{name}/bias", b.detach().numpy()), record(f"{name}/dbias", b.grad.numpy())]
    return out


def pool_case(name, kind, s, gen):
    shape = (s["batch"], s["C"], s["H"], s["W"])
    if kind == "max_pool":
        x = (torch.randint(-4, 5, shape, generator=gen).double() / 4).requires_grad_()
    else:
        x = randn32(gen, *shape).requires_grad_()
    k, st, p = (s["kernel_h"], s["kernel_w"]), (s["stride_h"], s["stride_w"]), (s["pad_h"], s["pad_w"])
    if kind == "max_pool":
        y = F.max_pool2d(x, k, st, p)
    elif kind == "avg_pool":
        y = F.avg_pool2d(x, k, st, p)  # count_include_pad=True, PyTorch's default
    else:
        y = F.adaptive_avg_pool2d(x, 1)
    dy = randn32(gen, *y.shape)
    (y * dy).sum().backward()
    return [record(f"{name}/shape", [float(s[k]) for k in POOL_FIELDS]),
            record(f"{name}/x", activations(x)),
            record(f"{name}/y", activations(y)),
            record(f"{name}/dy", activations(dy)),
            record(f"{name}/dx", activations(x.grad))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(args.seed)
    blob = [MAGIC]
    for name, kind, shape in CASES:
        blob += conv_case(name, shape, gen) if kind == "conv" else pool_case(name, kind, shape, gen)
    with open(args.out, "wb") as f:
        f.write(b"".join(blob))
    print(f"{args.out}: {len(CASES)} cases, torch {torch.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
