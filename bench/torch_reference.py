"""The reference job written in PyTorch for CPU, as a practitioner would: an nn.Sequential MLP,
per-layer statistics gathered with forward hooks and tensor gradient hooks, and the same probe
cotangent. Used by bench/run.sh as the baseline for the whole-process comparison.

usage: python3 bench/torch_reference.py THREADS [DEPTH WIDTH BATCH]
"""
import sys

import torch

threads = int(sys.argv[1])
depth, width, batch = (int(v) for v in (sys.argv[2:5] if len(sys.argv) >= 5 else (100, 1024, 256)))
torch.set_num_threads(threads)
torch.manual_seed(1)

layers = []
for _ in range(depth):
    lin = torch.nn.Linear(width, width)
    torch.nn.init.kaiming_normal_(lin.weight, nonlinearity="relu")
    torch.nn.init.zeros_(lin.bias)
    layers += [lin, torch.nn.ReLU()]
model = torch.nn.Sequential(*layers)

stats = []


def moments(t):
    t = t.detach()
    return (t.mean().item(), t.std(unbiased=False).item(), t.square().mean().sqrt().item(),
            t.min().item(), t.max().item(), (~torch.isfinite(t)).sum().item())


grad_rms = {}


def linear_hook(index):
    def hook(module, inputs, output):
        stats.append(("preact", index, moments(output)))
        output.register_hook(lambda g: grad_rms.__setitem__(index, g.square().mean().sqrt().item()))
    return hook


def relu_hook(index):
    def hook(module, inputs, output):
        y = output.detach()
        d = (inputs[0].detach() > 0)
        stats.append(("act", index, moments(y), (y == 0).float().mean().item(),
                      (~d).float().mean().item(), int((~d.any(dim=0)).sum().item())))
    return hook


for i in range(depth):
    model[2 * i].register_forward_hook(linear_hook(i))
    model[2 * i + 1].register_forward_hook(relu_hook(i))

x = torch.randn(batch, width)
probe = torch.randn(batch, width)
y = model(x)
y.backward(probe)
norms = [(m.weight.grad.norm().item(), m.bias.grad.norm().item(), m.weight.norm().item())
         for m in model if isinstance(m, torch.nn.Linear)]
print(f"torch: {len(stats)} forward records, {len(grad_rms)} gradient rms, "
      f"first/last grad rms {grad_rms[0]:.3e}/{grad_rms[depth - 1]:.3e}, {len(norms)} weight norms")
