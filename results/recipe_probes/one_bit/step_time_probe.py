# Why did the long runs slow down (~90K to ~60K tokens/s)? Time a trained run's training step against a fresh model's,
# and the trained one with flush-to-zero off and on, interleaved in one process, one thread, on the run's own batches
# (lr 0: the weights stay as they are); count the denormal floats in its softmax outputs, gradients and Adam states.
#     python results/recipe_probes/one_bit/step_time_probe.py results/recipe_probes/pools/default_pools
# (checkpoints are not committed: run results/recipe_probes/pools/run_probes.py default_pools small_pools first)
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.getcwd())
import data      # noqa: E402  (run from the repository root)
import packing   # noqa: E402
import sample    # noqa: E402
import train     # noqa: E402

torch.set_num_threads(1)
path, ckpt = sample.load_checkpoint(sys.argv[1])
cfg = ckpt['config']
TINY = torch.finfo(torch.float32).tiny


def denormals(t):
    return int(((t != 0) & (t.abs() < TINY)).sum())


def setup(trained):
    torch.manual_seed(0)
    model, _ = sample.build(cfg)
    opt = train.make_optimizer(model, cfg, torch.device('cpu'))
    if trained:
        model.load_state_dict(ckpt['model'])
        opt.load_state_dict(ckpt['optimizer'])
    for group in opt.param_groups:
        group['lr'] = 0.0
    return model, opt


packer = packing.make_packer(cfg, data.dir_of(cfg), 1)
packer.load_state_dict(ckpt['packer'])
batches = [tuple(torch.from_numpy(a) for a in packer.next_rows(cfg['batch_size'])) for _ in range(6)]
runs = {name: setup(name != 'fresh') for name in ('fresh', 'trained', 'trained, flush to zero')}


def step(model, opt, i):
    idx, tgt, mask, _, _ = batches[i % len(batches)]
    at = mask > 0
    (F.cross_entropy(model(idx, at=at), tgt[at], reduction='none') * mask[at]).sum().div(mask.sum()).backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


model, opt = runs['trained']
idx, tgt, mask, _, _ = batches[0]
with torch.no_grad():
    probs = F.softmax(model(idx, at=mask > 0), -1)
step(model, opt, 0)
print(f"{path}: denormal floats: softmax outputs {denormals(probs):,} of {probs.numel():,}; Adam states "
      f"{sum(denormals(s[k]) for s in opt.state.values() for k in ('exp_avg', 'exp_avg_sq')):,}; weights "
      f"{sum(denormals(p.data) for p in model.parameters()):,}")
times = {name: [] for name in runs}
for r in range(8):
    for name, (model, opt) in runs.items():
        torch.set_flush_denormal(name.endswith('flush to zero'))
        t0 = time.perf_counter()
        for i in range(5):
            step(model, opt, i)
        times[name].append((time.perf_counter() - t0) / 5)
torch.set_flush_denormal(False)
print('median ms per step of', cfg['batch_size'], 'rows:', ', '.join(f"{k} {statistics.median(v) * 1e3:.1f}" for k, v in times.items()))
