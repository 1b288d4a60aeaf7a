# Would torch.compile (inductor's fused C++ kernels) lift the small widths' useful FLOP/s on this CPU? One thread,
# 64 one-dialog rows of the no-tool QA (bench.py train's setting), the same model eager and compiled (dynamic
# shapes: every batch has its own length), interleaved; the matmul rate of one thread measured in the same run.
#     python results/bench/compile_probe.py > results/bench/compile_2026-12-06.txt
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.getcwd())
import bench   # noqa: E402  (run from the repository root)
import data    # noqa: E402
import train   # noqa: E402

torch.set_num_threads(1)
cfg = train.get_config(['configs/no_tool.py'])
d = data.dir_of(cfg)
data.prepare(d, **data.options_of(cfg))
peak = bench.matmul_flops()
print(f"float32 matmul (1024^3), 1 thread: {peak / 1e9:.1f} GFLOP/s; {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
for width in (16, 32, 64):
    model, batches = bench.ours(cfg, d, 64, n_embd=width, n_head=2, one_per_row=True)
    flops = statistics.mean(bench.useful_flops(model, b) for b in batches)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def loss_of(idx, tgt, mask, at):
        return (F.cross_entropy(model(idx, at=at), tgt[at], reduction='none') * mask[at]).sum().div(mask.sum())
    compiled = torch.compile(loss_of, dynamic=True)

    def compiled_step(i):
        idx, tgt, mask, _, _ = batches[i % len(batches)]
        compiled(idx, tgt, mask, mask > 0).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    for i in range(len(batches)):
        compiled_step(i)
    compile_s = time.perf_counter() - t0
    sec = bench.interleaved({'eager': bench.stepper(model, batches, True), 'compiled': compiled_step}, rounds=5)
    print(f"width {width} ({model.num_params():,} params), compile {compile_s:.0f} s: " + ', '.join(
        f"{k} {s * 1e3:.1f} ms/step, {flops / s / peak:.1%} of matmul" for k, s in sec.items())
        + f"; compiled / eager speed {sec['eager'] / sec['compiled']:.2f}x")
