# Does a bigger (or smaller) batch lift the small widths' useful FLOP/s? bench.py train's setting (one-dialog rows of
# the no-tool QA, one thread), widths 16 and 32, the rows a step varied, interleaved, against the matmul rate of the
# same run. If a step's time were mostly fixed per-op overhead, more rows (or several models stepped together, the
# same ops on bigger tensors) would raise the share; the output says where it peaks.
#     python results/bench/batch_rows_probe.py 8 16 32 64 >> results/bench/batch_rows_2026-12-06.txt
import os
import sys

import torch

sys.path.insert(0, os.getcwd())
import bench   # noqa: E402  (run from the repository root)
import data    # noqa: E402
import train   # noqa: E402

torch.set_num_threads(1)
cfg = train.get_config(['configs/no_tool.py'])
d = data.dir_of(cfg)
data.prepare(d, **data.options_of(cfg))
rows_list = [int(a) for a in sys.argv[1:]] or [8, 16, 32, 64]
peak = bench.matmul_flops()
print(f"float32 matmul (1024^3), 1 thread: {peak / 1e9:.1f} GFLOP/s; medians of interleaved rounds")
for width in (16, 32):
    steps, work = {}, {}
    for rows in rows_list:
        model, batches = bench.ours(cfg, d, rows, n_embd=width, one_per_row=True)
        steps[rows], work[rows] = bench.stepper(model, batches, True), bench.useful_flops(model, batches[0])
    for rows, t in bench.interleaved(steps, rounds=5, steps=4).items():
        print(f"width {width}, {rows} rows: {t * 1e3:.1f} ms/step, {work[rows] / t / peak:.1%} of the matmul rate")
