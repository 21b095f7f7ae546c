#!/usr/bin/env python3
# Writes the ONNX corpus that tests/test_onnx.cpp reads: small MLPs exported with torch.onnx.export
# (Debian's python3-torch) and hostile graphs edited with Debian's python3-onnx. Run once by hand;
# the tests never call Python.
#
# Every dense layer's parameters follow formulas the C++ test computes again (exact in float32):
#   layer L (1-based among the model's dense layers), W (n_out, n_in):
#     W[i, j] = ((i * n_in + j + L) % 11 - 5) / 16,   b[i] = ((i + 2 L) % 5 - 2) / 8
import os

import onnx
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))


def fill(layer_index, weight, bias):
    n_out, n_in = weight.shape
    with torch.no_grad():
        for i in range(n_out):
            for j in range(n_in):
                weight[i, j] = ((i * n_in + j + layer_index) % 11 - 5) / 16.0
        if bias is not None:
            for i in range(n_out):
                bias[i] = ((i + 2 * layer_index) % 5 - 2) / 8.0


def linear(layer_index, n_in, n_out):
    m = nn.Linear(n_in, n_out)
    fill(layer_index, m.weight, m.bias)
    return m


class MatMulLinear(nn.Module):
    """x @ W^T + b written out, so the export is MatMul + Add with W^T stored (n_in, n_out)."""

    def __init__(self, layer_index, n_in, n_out):
        super().__init__()
        w = torch.zeros(n_out, n_in)
        b = torch.zeros(n_out)
        fill(layer_index, w, b)
        self.wt = nn.Parameter(w.t().contiguous())
        self.b = nn.Parameter(b)

    def forward(self, x):
        return x @ self.wt + self.b


class GemmNoTrans(nn.Module):
    """torch.addmm(b, x, W^T): a Gemm with transB = 0 and W^T stored (n_in, n_out)."""

    def __init__(self, layer_index, n_in, n_out):
        super().__init__()
        w = torch.zeros(n_out, n_in)
        b = torch.zeros(n_out)
        fill(layer_index, w, b)
        self.wt = nn.Parameter(w.t().contiguous())
        self.b = nn.Parameter(b)

    def forward(self, x):
        return torch.addmm(self.b, x, self.wt)


class Residual(nn.Module):
    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x):
        return x + self.body(x)


def export(name, model, n_in, opset=17, fold=True):
    model.eval()
    path = os.path.join(HERE, name)
    torch.onnx.export(model, torch.zeros(3, n_in), path, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=opset,
                      do_constant_folding=fold)
    assert os.path.getsize(path) < 64 * 1024, name
    return path


def batch(n_in, examples=5):
    """The batch the C++ test feeds the imported model, exact in float32: x[a, j] = ((a n_in + j)
    % 7 - 3) / 4."""
    return torch.tensor([[((a * n_in + j) % 7 - 3) / 4.0 for j in range(n_in)]
                         for a in range(examples)], dtype=torch.float64)


def tap_rms(path, model, n_in, taps):
    """Stores in the file's metadata (gradscope.act_rms) the rms of the model's outputs after the
    modules listed in `taps`, one per gradscope op (a Linear and the activation after it are one
    op), computed in float64 on batch(n_in)."""
    model = model.double().eval()
    values = []
    h = batch(n_in)
    with torch.no_grad():
        for k, module in enumerate(model):
            h = module(h)
            if k in taps:
                values.append(repr(h.pow(2).mean().sqrt().item()))
    m = onnx.load(path)
    onnx.helper.set_model_props(m, {"gradscope.act_rms": ",".join(values)})
    onnx.save(m, path)


def save(name, model_proto):
    path = os.path.join(HERE, name)
    onnx.save(model_proto, path)
    assert os.path.getsize(path) < 64 * 1024, name


# ---- valid models

# Every activation after a Gemm (transB = 1, as nn.Linear exports), softmax last.
export("activations.onnx", nn.Sequential(
    linear(1, 6, 8), nn.ReLU(),
    linear(2, 8, 8), nn.LeakyReLU(0.2),
    linear(3, 8, 8), nn.ELU(0.5),
    linear(4, 8, 8), nn.SELU(),
    linear(5, 8, 8), nn.Sigmoid(),
    linear(6, 8, 8), nn.Tanh(),
    linear(7, 8, 8), nn.Softplus(),
    linear(8, 8, 8), nn.Hardtanh(),
    linear(9, 8, 8), nn.GELU(),
    linear(10, 8, 8),
    linear(11, 8, 4), nn.Softmax(dim=-1)), 6)

# MatMul + Add and Gemm with transB = 0.
export("matmul_gemm.onnx", nn.Sequential(
    MatMulLinear(1, 5, 7), nn.Tanh(), GemmNoTrans(2, 7, 3)), 5)

# Norms: batch norm and layer norm (identity affine), then activations as ops of their own.
export("norms.onnx", nn.Sequential(
    linear(1, 4, 6), nn.BatchNorm1d(6), nn.ReLU(),
    linear(2, 6, 6), nn.LayerNorm(6), nn.Tanh(),
    linear(3, 6, 2)), 4)

# A residual MLP: a stem, two pre-activation residual blocks, a head.
export("residual_mlp.onnx", nn.Sequential(
    linear(1, 4, 8), nn.ReLU(),
    Residual(nn.Sequential(linear(2, 8, 8), nn.ReLU(), linear(3, 8, 8))),
    Residual(nn.Sequential(nn.LayerNorm(8), linear(4, 8, 8), nn.GELU(), linear(5, 8, 8))),
    linear(6, 8, 3)), 4)

# Dropout and Identity: torch drops eval-mode dropout, so they are put in by hand.
m = onnx.load(export("dropout.onnx", nn.Sequential(linear(1, 4, 5), nn.ReLU(), linear(2, 5, 2)), 4))
g = m.graph
relu = next(n for n in g.node if n.op_type == "Relu")
gemm2 = [n for n in g.node if n.op_type == "Gemm"][1]
g.initializer.append(onnx.helper.make_tensor("drop_ratio", onnx.TensorProto.FLOAT, [], [0.25]))
drop = onnx.helper.make_node("Dropout", [relu.output[0], "drop_ratio"], ["dropped"], name="Drop_7")
ident = onnx.helper.make_node("Identity", ["dropped"], ["ident_out"], name="Identity_8")
gemm2.input[0] = "ident_out"
index = list(g.node).index(gemm2)
g.node.insert(index, ident)
g.node.insert(index, drop)
onnx.checker.check_model(m)
save("dropout.onnx", m)

# ---- hostile models

export("unsupported_op.onnx", nn.Sequential(linear(1, 4, 4), nn.Hardswish(), linear(2, 4, 2)), 4)

base = onnx.load(export("cycle.onnx", nn.Sequential(linear(1, 4, 4), nn.ReLU(), nn.Tanh()), 4))
g = base.graph
relu = next(n for n in g.node if n.op_type == "Relu")
tanh = next(n for n in g.node if n.op_type == "Tanh")
gemm = next(n for n in g.node if n.op_type == "Gemm")
# Relu reads Tanh's output, Tanh reads Relu's: a loop that no order can evaluate.
relu.input[0] = tanh.output[0]
tanh.output[0] = "loop"
relu.input[0] = "loop"
tanh.input[0] = relu.output[0]
g.output[0].name = gemm.output[0]
save("cycle.onnx", base)

m = onnx.load(export("missing_initializer.onnx", nn.Sequential(linear(1, 4, 4), nn.ReLU()), 4))
gemm = next(n for n in m.graph.node if n.op_type == "Gemm")
kept = [t for t in m.graph.initializer if t.name != gemm.input[1]]
del m.graph.initializer[:]
m.graph.initializer.extend(kept)
save("missing_initializer.onnx", m)

nan_model = nn.Sequential(linear(1, 4, 4), nn.ReLU(), linear(2, 4, 2))
with torch.no_grad():
    nan_model[2].weight[1, 3] = float("nan")
export("nan_weight.onnx", nan_model, 4)


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = linear(1, 4, 3)

    def forward(self, x, z):
        return self.a(x) + z


p = os.path.join(HERE, "two_inputs.onnx")
torch.onnx.export(TwoInputs().eval(), (torch.zeros(2, 4), torch.zeros(2, 3)), p,
                  input_names=["x", "z"], output_names=["y"], opset_version=17)

# A norm with a learned affine part gradscope cannot represent.
ln = nn.LayerNorm(4)
with torch.no_grad():
    ln.weight.fill_(2.0)
export("layernorm_affine.onnx", nn.Sequential(linear(1, 4, 4), ln), 4)

# Softmax before the last op, and a Clip that is not hard_tanh's.
export("softmax_hidden.onnx", nn.Sequential(linear(1, 4, 4), nn.Softmax(dim=-1), linear(2, 4, 2)), 4)
export("clip_range.onnx", nn.Sequential(linear(1, 4, 4), nn.Hardtanh(-2.0, 2.0)), 4)

# nn.Linear without a bias exports as a bare MatMul; GELU after a norm is an op of its own;
# residual blocks nest.
inner = Residual(nn.Sequential(linear(3, 6, 6), nn.Tanh()))
no_bias = nn.Linear(4, 6, bias=False)
fill(1, no_bias.weight, None)
export("nested_no_bias.onnx", nn.Sequential(
    no_bias, nn.LayerNorm(6), nn.GELU(),
    Residual(nn.Sequential(linear(2, 6, 6), nn.ReLU(), inner, linear(4, 6, 6))),
    linear(5, 6, 2)), 4)

# Gated activations as torch 1.13 writes them at opset 17 (opsets 13 to 16 give the same graph):
# SiLU as Sigmoid and Mul, Mish as Softplus, Tanh and Mul, GELU's tanh form as nine Mul, Add and
# Tanh nodes with Constant nodes for its coefficients (constant folding changes nothing in it).
# Each is fused into the Linear before it, and an op of its own after a LayerNorm.
for name, act, fold in [("silu.onnx", nn.SiLU, True), ("mish.onnx", nn.Mish, True),
                        ("gelu_tanh.onnx", lambda: nn.GELU(approximate="tanh"), True),
                        ("gelu_tanh_unfolded.onnx", lambda: nn.GELU(approximate="tanh"), False)]:
    model = nn.Sequential(linear(1, 4, 6), act(), nn.LayerNorm(6), act(), linear(2, 6, 2))
    tap_rms(export(name, model, 4, fold=fold), model, 4, taps=[1, 2, 3, 4])


class Embedded(nn.Module):
    """nn.Embedding then a Linear: the export starts with a Gather from the embedding table."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        fill(1, self.emb.weight, None)
        self.fc = linear(2, 4, 2)

    def forward(self, ids):
        return self.fc(self.emb(ids))


p = os.path.join(HERE, "embedding.onnx")
torch.onnx.export(Embedded().eval(), torch.zeros(3, dtype=torch.long), p, input_names=["ids"],
                  output_names=["y"], dynamic_axes={"ids": {0: "batch"}, "y": {0: "batch"}},
                  opset_version=17)


# ---- a GPT-style decoder (nanoGPT's blocks, without the embeddings): the attention import.
# Inputs are embeddings [batch, tokens, width]; two pre-norm blocks, then a final LayerNorm.
# Shapes are fixed (batch 2, tokens 8, width 16, 2 heads). The metadata holds PyTorch's float64
# gradient norm of every parameter for gpt_batch() and gpt_targets() under gradscope's mse,
# L = sum((y - t)^2) / 2 / (batch * tokens), in the order of gradscope's parameter list
# (c_attn's weight and bias split into their query, key and value rows).
import math  # noqa: E402

from torch.nn import functional as F  # noqa: E402

GPT_B, GPT_T, GPT_D, GPT_H = 2, 8, 16, 2


class CausalSelfAttention(nn.Module):
    def __init__(self, d, heads, tokens, additive=False):
        super().__init__()
        self.c_attn = nn.Linear(d, 3 * d)
        self.c_proj = nn.Linear(d, d)
        self.n_head = heads
        self.n_embd = d
        self.additive = additive
        self.register_buffer("bias", torch.tril(torch.ones(tokens, tokens)).view(1, 1, tokens, tokens))
        self.register_buffer("add_mask", torch.triu(torch.full((tokens, tokens), float("-inf")), 1))

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        if self.additive:
            att = att + self.add_mask
        else:
            att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
        att = F.softmax(att, dim=-1)
        y = att @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class GptMlp(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.c_fc = nn.Linear(d, 4 * d)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * d, d)

    def forward(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))


class GptBlock(nn.Module):
    def __init__(self, d, heads, tokens, additive):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.attn = CausalSelfAttention(d, heads, tokens, additive)
        self.ln_2 = nn.LayerNorm(d)
        self.mlp = GptMlp(d)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Gpt(nn.Module):
    def __init__(self, additive=False, blocks=2):
        super().__init__()
        self.h = nn.ModuleList([GptBlock(GPT_D, GPT_H, GPT_T, additive) for _ in range(blocks)])
        self.ln_f = nn.LayerNorm(GPT_D)

    def forward(self, x):
        for block in self.h:
            x = block(x)
        return self.ln_f(x)


def gpt_batch():
    """x[b, t, j] = ((b T d + t d + j) % 13 - 6) / 4, exact in float32."""
    n = GPT_B * GPT_T * GPT_D
    return torch.tensor([((i % 13) - 6) / 4.0 for i in range(n)],
                        dtype=torch.float64).view(GPT_B, GPT_T, GPT_D)


def gpt_targets():
    """t[b, t, j] = ((b T d + t d + j) % 7 - 3) / 8, exact in float32."""
    n = GPT_B * GPT_T * GPT_D
    return torch.tensor([((i % 7) - 3) / 8.0 for i in range(n)],
                        dtype=torch.float64).view(GPT_B, GPT_T, GPT_D)


def gpt_grad_norms(model):
    """PyTorch's gradient norms in gradscope's parameter order, float64."""
    model = model.double()
    model.zero_grad()
    y = model(gpt_batch())
    loss = (y - gpt_targets()).pow(2).sum() / 2 / (GPT_B * GPT_T)
    loss.backward()
    d = GPT_D
    out = []

    def add(name, grad):
        out.append(f"{name}={grad.norm().item()!r}")

    def norm(prefix, ln):
        add(prefix + ".weight", ln.weight.grad)
        add(prefix + ".bias", ln.bias.grad)

    for i, blk in enumerate(model.h):
        p = f"h.{i}"
        norm(p + ".ln_1", blk.ln_1)
        a = blk.attn
        for part, role in enumerate(["query", "key", "value"]):
            rows = slice(part * d, (part + 1) * d)
            add(f"{p}.attn.c_attn.weight[{role}]", a.c_attn.weight.grad[rows])
            add(f"{p}.attn.c_attn.bias[{role}]", a.c_attn.bias.grad[rows])
        add(p + ".attn.c_proj.weight", a.c_proj.weight.grad)
        add(p + ".attn.c_proj.bias", a.c_proj.bias.grad)
        norm(p + ".ln_2", blk.ln_2)
        for lin in ["c_fc", "c_proj"]:
            m = getattr(blk.mlp, lin)
            add(f"{p}.mlp.{lin}.weight", m.weight.grad)
            add(f"{p}.mlp.{lin}.bias", m.bias.grad)
    norm("ln_f", model.ln_f)
    return ",".join(out)


def export_gpt(name, fold, additive=False):
    torch.manual_seed(5)
    model = Gpt(additive).eval()
    with torch.no_grad():
        # Trained-like norms: gamma and beta away from 1 and 0.
        for mod in model.modules():
            if isinstance(mod, nn.LayerNorm):
                mod.weight.copy_(1.0 + 0.3 * torch.randn(GPT_D))
                mod.bias.copy_(0.2 * torch.randn(GPT_D))
    path = os.path.join(HERE, name)
    torch.onnx.export(model, gpt_batch().float(), path, input_names=["x"], output_names=["y"],
                      opset_version=17, do_constant_folding=fold)
    assert os.path.getsize(path) < 64 * 1024, name
    m = onnx.load(path)
    onnx.helper.set_model_props(m, {"gradscope.grad_norms": gpt_grad_norms(model)})
    onnx.save(m, path)


export_gpt("gpt.onnx", fold=True)
export_gpt("gpt_unfolded.onnx", fold=False)
export_gpt("gpt_additive_mask.onnx", fold=True, additive=True)
