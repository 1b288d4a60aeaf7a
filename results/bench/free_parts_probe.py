# How far could fused kernels lift the small widths' useful FLOP/s on this CPU? An upper bound: the same training
# step with parts of the model made (almost) free -- attention replaced by y = v, then rotary by the identity, then
# the RMSNorms and the SwiGLU's gate too -- the useful work still counted for the whole model (bench.useful_flops).
# A kernel that fused a part could at best remove its time, so a variant's share of the matmul rate bounds what
# fusing those parts would reach. One thread, 64 one-dialog rows of the no-tool QA (bench.py train's setting),
# interleaved, the matmul rate of one thread measured in the same run.
#     python results/bench/free_parts_probe.py > results/bench/free_parts_2026-12-06.txt
import contextlib
import os
import statistics
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.getcwd())
import bench   # noqa: E402  (run from the repository root)
import data    # noqa: E402
import model   # noqa: E402
import train   # noqa: E402

FREE = {   # what each stand-in replaces: (module, name, stand-in); each keeps the gradient path
    'attention': (F, 'scaled_dot_product_attention', lambda q, k, v, **_: v),
    'rotary': (model, 'apply_rope', lambda x, cos, sin: x),
    'norms': (F, 'rms_norm', lambda x, shape, weight, eps: x * weight),
    'gate': (F, 'silu', lambda x: x),
}
VARIANTS = {'as is': (), 'attention free': ('attention',), '+ rotary free': ('attention', 'rotary'),
            '+ norms and gate free': ('attention', 'rotary', 'norms', 'gate')}


@contextlib.contextmanager
def free(parts):
    saved = [(FREE[p][0], FREE[p][1], getattr(FREE[p][0], FREE[p][1])) for p in parts]
    for p in parts:
        setattr(FREE[p][0], FREE[p][1], FREE[p][2])
    try:
        yield
    finally:
        for owner, name, fn in saved:
            setattr(owner, name, fn)


def with_free(step, parts):
    def run(i):
        with free(parts):
            step(i)
    return run


torch.set_num_threads(1)
cfg = train.get_config(['configs/no_tool.py'])
d = data.dir_of(cfg)
data.prepare(d, **data.options_of(cfg))
peak = bench.matmul_flops()
print(f"float32 matmul (1024^3), 1 thread: {peak / 1e9:.1f} GFLOP/s; {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; "
      f"medians of 5 interleaved rounds; useful work counted for the whole model in every variant")
for width in (16, 32, 64):
    settings = {}
    for name, parts in VARIANTS.items():   # a model each, the same init and rows
        m, batches = bench.ours(cfg, d, 64, n_embd=width, n_head=2, one_per_row=True)
        settings[name] = with_free(bench.stepper(m, batches, True), parts)
    flops = statistics.mean(bench.useful_flops(m, b) for b in batches)   # the same for every variant
    sec = bench.interleaved(settings, rounds=5)
    print(f"width {width} ({m.num_params():,} params): " + '; '.join(
        f"{k} {s * 1e3:.1f} ms/step {flops / s / peak:.1%}" for k, s in sec.items()))
