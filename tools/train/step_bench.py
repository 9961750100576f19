#!/usr/bin/python3
"""step_bench.py - training-step throughput of the default model's config for a thread setting.

  [OPENBLAS_NUM_THREADS=1] step_bench.py TORCH_THREADS
"""
import os, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch, numpy as np, train
torch.set_num_threads(int(sys.argv[1]))
cfg = dict(layers=4, hidden=256, heads=8, kv_heads=2, intermediate=640, vocab=4096, seq=256, dropout=0.0)
m = train.build_model(torch, cfg)
opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
x = torch.randint(0, 4096, (8, 256)); y = torch.randint(0, 4096, (8, 256))
F = torch.nn.functional
def step():
    l = F.cross_entropy(m(x).reshape(-1, 4096), y.reshape(-1)); opt.zero_grad(); l.backward(); opt.step()
step()
t0 = time.time(); c0 = time.process_time()
for _ in range(3): step()
dt = (time.time() - t0) / 3
print(sys.argv[1:], os.environ.get("OPENBLAS_NUM_THREADS"), "s/step %.2f" % dt, "tok/s %.0f" % (2048 / dt), "cpu %.2f" % ((time.process_time() - c0) / 3 / dt))
