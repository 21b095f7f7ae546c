"""The transformer reference job written in PyTorch for CPU, as a practitioner would: 12 pre-norm
blocks (width 768, 12 heads, causal, GELU MLP of width 3072, final LayerNorm), T = 256 tokens,
batch 8, float32, with the statistics gradscope reports gathered by forward hooks and tensor
gradient hooks: every module output's moments and gradient rms, the tokens' mean cosine and
centered rms, and each attention's entropy, largest logit and peaked rows. The baseline of
bench/run.sh's transformer comparison.

usage: python3 bench/torch_transformer.py THREADS
"""
import math
import sys

import torch
import torch.nn.functional as F

threads = int(sys.argv[1])
torch.set_num_threads(threads)
torch.manual_seed(1)
D, H, T, B, N = 768, 12, 256, 8, 12
DH = D // H


class Attention(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.q, self.k, self.v, self.o = (torch.nn.Linear(D, D, bias=False) for _ in range(4))
        for lin in (self.q, self.k, self.v, self.o):
            torch.nn.init.xavier_normal_(lin.weight)
        self.mask = torch.ones(T, T, dtype=torch.bool).triu(1)
        self.stats = None

    def forward(self, x):  # (B, T, D)
        def heads(t):
            return t.view(B, T, H, DH).transpose(1, 2)

        q, k, v = heads(self.q(x)), heads(self.k(x)), heads(self.v(x))
        s = (q @ k.transpose(-1, -2)) / math.sqrt(DH)
        s = s.masked_fill(self.mask, float("-inf"))
        p = torch.softmax(s, -1)
        with torch.no_grad():
            ent = -(p * torch.log(p.clamp_min(1e-45))).sum(-1).mean().item()
            self.stats = (ent, s.masked_fill(self.mask, -1e30).max().item(),
                          (p.max(-1).values[..., 1:] > 0.99).float().mean().item())
        o = (p @ v).transpose(1, 2).reshape(B, T, D)
        return self.o(o)


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = torch.nn.LayerNorm(D), torch.nn.LayerNorm(D)
        self.attn = Attention()
        self.up, self.down = torch.nn.Linear(D, 4 * D), torch.nn.Linear(4 * D, D)
        for lin in (self.up, self.down):
            torch.nn.init.xavier_normal_(lin.weight)
            torch.nn.init.zeros_(lin.bias)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.down(F.gelu(self.up(self.ln2(x))))


model = torch.nn.Sequential(*[Block() for _ in range(N)], torch.nn.LayerNorm(D))
stats = []


def moments(t):
    t = t.detach()
    return (t.mean().item(), t.std(unbiased=False).item(), t.square().mean().sqrt().item(),
            t.min().item(), t.max().item(), (~torch.isfinite(t)).sum().item())


def token_stats(t):
    t = t.detach()
    u = F.normalize(t, dim=-1)
    s = u.sum(1).square().sum(-1) - u.square().sum((1, 2))
    centered = t - t.mean(1, keepdim=True)
    return ((s / (T * (T - 1))).mean().item(), centered.square().mean().sqrt().item())


grad_rms = {}


def hook(name):
    def fn(module, inputs, output):
        stats.append((name, moments(output), token_stats(output)))
        output.register_hook(lambda g: grad_rms.__setitem__(name, g.square().mean().sqrt().item()))
    return fn


for name, module in model.named_modules():
    if isinstance(module, (torch.nn.Linear, torch.nn.LayerNorm, Attention)):
        module.register_forward_hook(hook(name))

x = torch.randn(B, T, D)
y = model(x)
probe = torch.randn(B, T, D)
(y * probe).sum().backward()
params = [(n, p.norm().item(), p.grad.norm().item()) for n, p in model.named_parameters()]
attn = [m.stats for m in model.modules() if isinstance(m, Attention)]
print(len(stats), len(grad_rms), len(params), len(attn))
