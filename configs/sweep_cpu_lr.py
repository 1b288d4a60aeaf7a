# configs/sweep_cpu.py with the in-weight learning rate falling with width (`python sweep.py configs/sweep_cpu_lr.py`,
# ~64 min on 2 cores): peak 5e-3 up to width 32 and 5e-3 x (32 / width)^2 above (width 40: 3.2e-3, 48: 2.2e-3,
# 56: 1.6e-3, 64: 1.25e-3), chosen from results/recipe_probes/grid_lr (width 48 held 85-90% of 4,000 facts at
# 1.25e-3-2.5e-3, 25% at 5e-3), and widths 40 and 56 added. Everything else, tool and Mamba runs included, is
# configs/sweep_cpu.py's. Measured: the smallest models at 95% and the fit are the same as that grid's
# (results/sweep_cpu_lr/NOTES.md), so the main grid keeps one learning rate.
import os

exec(open(os.path.join(os.path.dirname(__file__), 'sweep_cpu.py')).read())   # its tool runs, base, options, helpers
out_root = 'results/sweep_cpu_lr'
peak_lr = lambda width: round(5e-3 * min(1.0, (32 / width) ** 2), 5)
by_width = lambda n, widths, arch='transformer': [   # a sub-grid per width, each its own lr (the run names unchanged)
    in_weights(n, [w], arch) | (dict(learning_rate=[peak_lr(w)], min_lr=[peak_lr(w) / 10]) if arch == 'transformer' else {})
    for w in widths]
grid = [*grid[:2],   # the tool runs, Mamba's and the Transformer's, as they are
        *by_width(1000, [64, 56, 48]), *by_width(500, [64], 'mamba'), *by_width(500, [48, 40, 32]),
        *by_width(250, [48], 'mamba'), *by_width(250, [32, 28]), *by_width(125, [32, 28, 24, 16])]
