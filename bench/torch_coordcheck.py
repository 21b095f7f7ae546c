"""The coordinate check of bench/run.sh written in PyTorch for CPU, as a practitioner would with
hooks: the 12-block pre-norm residual MLP of bench/coordcheck.json under muP (Adam: the hidden
matrices' learning rate over the width multiplier), widths 128..2048 at depth 12 and depths
3, 6, 12, 24 at width 128, 4 seeds each, 3 Adam steps on one batch with a fixed output gradient;
at every step each module's output size (mean |x|, rms) and its change since init, and every
parameter's update size. The same runs as `gradscope coordcheck bench/coordcheck.json --widths
128,256,512,1024,2048 --depths 3,6,12,24 --param mup`; the slopes are left out (they cost nothing).

usage: python3 bench/torch_coordcheck.py THREADS
"""
import sys

import torch

threads = int(sys.argv[1])
torch.set_num_threads(threads)
BASE, BATCH, LR, STEPS, SEEDS = 128, 32, 1e-3, 3, 4


class Block(torch.nn.Module):
    def __init__(self, d):
        super().__init__()
        self.norm = torch.nn.LayerNorm(d)
        self.up = torch.nn.Linear(d, d)
        self.down = torch.nn.Linear(d, d)
        for lin in (self.up, self.down):
            torch.nn.init.kaiming_normal_(lin.weight, nonlinearity="relu")
            torch.nn.init.zeros_(lin.bias)
        self.act = torch.nn.ReLU()
        self.sum = torch.nn.Identity()  # the residual sum, as a module for its hook

    def forward(self, x):
        return self.sum(x + self.down(self.act(self.up(self.norm(x)))))


def run(width, depth, seed):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(*[Block(width) for _ in range(depth)])
    m = width / BASE
    hidden = [p for n, p in model.named_parameters() if p.dim() == 2]
    vectors = [p for n, p in model.named_parameters() if p.dim() == 1]
    opt = torch.optim.Adam([{"params": hidden, "lr": LR / m}, {"params": vectors, "lr": LR}])
    x = torch.randn(BATCH, width)
    probe = torch.randn(BATCH, width)
    init, sizes = {}, []

    def hook(module, inputs, out):
        y = out.detach()
        sizes.append((y.abs().mean().item(), y.square().mean().sqrt().item()))
        if module not in init:
            init[module] = y.clone()
        else:
            d = y - init[module]
            sizes.append((d.abs().mean().item(), d.square().mean().sqrt().item()))

    for mod in model.modules():
        if isinstance(mod, (torch.nn.LayerNorm, torch.nn.ReLU, torch.nn.Linear, torch.nn.Identity)):
            mod.register_forward_hook(hook)
    for t in range(STEPS + 1):
        y = model(x)
        if t == STEPS:
            break
        opt.zero_grad()
        (probe * y).sum().backward()
        before = [p.detach().clone() for p in model.parameters()]
        opt.step()
        for p, b in zip(model.parameters(), before):
            d = p.detach() - b
            sizes.append((d.abs().mean().item(), d.square().mean().sqrt().item()))
    return len(sizes)


total = 0
for w in (128, 256, 512, 1024, 2048):
    for s in range(SEEDS):
        total += run(w, 12, s)
for d in (3, 6, 12, 24):
    for s in range(SEEDS):
        total += run(BASE, d, s)
print(total)
