"""Per-update cost of sequence backbones on CPU at the sizes of the small sequence panels (one thread).

Run by hand: OMP_NUM_THREADS=1 flock /work/heavy.lock .venv/bin/python bench/sequence_backbones.py
A GRU (sequence_ar's), a 2-layer causal transformer (d 64, 4 heads) and a 3-layer dilated causal convolution (64
channels), each forward + backward + Adam on a (batch, steps, inputs) block shaped like fertility's, BasicMotions' and
MIT-BIH's training batches: whether another backbone could bring sequence_ar to 10x PAR's speed on small panels.
"""

import time, torch
from torch import nn
torch.set_num_threads(1); torch.manual_seed(0)
def bench(mod, x, fn, reps=30):
    opt = torch.optim.Adam(mod.parameters(), 1e-3, foreach=True)
    for _ in range(3): fn(mod, x).square().mean().backward(); opt.step(); opt.zero_grad()
    t = time.perf_counter()
    for _ in range(reps): fn(mod, x).square().mean().backward(); opt.step(); opt.zero_grad()
    return (time.perf_counter() - t) / reps * 1000
for B, T, D in ((32, 53, 88), (26, 101, 128), (32, 61, 40)):
    x = torch.randn(B, T, D)
    g = nn.GRU(D, 64, batch_first=True)
    tg = bench(g, x, lambda m, x: m(x)[0])
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(64, 4, 128, dropout=0.0, batch_first=True), 2)
    proj = nn.Linear(D, 64); mask = nn.Transformer.generate_square_subsequent_mask(T)
    mod = nn.ModuleList([proj, enc])
    tt = bench(mod, x, lambda m, x: m[1](m[0](x), mask=mask, is_causal=True))
    conv = nn.Sequential(nn.ConstantPad1d((2, 0), 0), nn.Conv1d(D, 64, 3), nn.ReLU(), nn.ConstantPad1d((4, 0), 0), nn.Conv1d(64, 64, 3, dilation=2), nn.ReLU(), nn.ConstantPad1d((8, 0), 0), nn.Conv1d(64, 64, 3, dilation=4))
    tc = bench(conv, x, lambda m, x: m(x.transpose(1, 2)))
    print(f"B={B} T={T} D={D}: GRU {tg:.1f} ms, causal transformer 2x64 {tt:.1f} ms, dilated causal conv 3x64 {tc:.1f} ms per fwd+bwd+Adam")
