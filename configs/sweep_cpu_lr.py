# configs/sweep_cpu.py with the in-weight learning rate falling with width (`python sweep.py configs/sweep_cpu_lr.py`,
# ~64 min on 2 cores): peak 5e-3 up to width 32 and 5e-3 x (32 / width)^2 above (width 40: 3.2e-3, 48: 2.2e-3,
# 56: 1.6e-3, 64: 1.25e-3), chosen from results/recipe_probes/grid_lr (width 48 held 85-90% of 4,000 facts at
# 1.25e-3-2.5e-3, 25% at 5e-3), and widths 40 and 56 added. Everything else, tool and Mamba runs included, is
# configs/sweep_cpu.py's. Measured: the smallest models at 95% and the fit are the same as that grid's
# (results/sweep_cpu_lr/NOTES.md), so the main grid keeps one learning rate.
out_root = 'results/sweep_cpu_lr'
options = dict(launcher='local', max_parallel=2)
EXPOSURES, ROWS = 150, 24
steps = lambda n_people, exposures: max(1, exposures * 4 * n_people // ROWS)   # 4 facts a person
peak_lr = lambda width, arch: round(5e-3 * min(1.0, (32 / width) ** 2), 5) if arch == 'transformer' else 5e-3
in_weights = lambda n, widths, arch='transformer': [   # a sub-grid per width: each its own learning rate
    dict(arch=[arch], tool=[False], n_people=[n], n_embd=[w], held_out=[0.0], n_unseen=[10],
         max_iters=[steps(n, EXPOSURES)], eval_interval=[steps(n, 10)], stop_recall=[0.95],
         learning_rate=[peak_lr(w, arch)], min_lr=[peak_lr(w, arch) / 10]) for w in widths]
with_tool = dict(tool=[True], held_out=[0.2], n_unseen=[100], max_iters=[8000], batch_size=[32], learning_rate=[3e-3],
                 min_lr=[3e-4], weight_decay=[0.3], eval_interval=[100000])
grid = [   # longest runs first, so that the two slots end about together (the order does not name runs)
    dict(arch=['mamba'], n_people=[5000, 2500], n_embd=[88],   # Mamba with the tool: configs/mamba_tool.py's recipe
         **with_tool | dict(max_iters=[5500], learning_rate=[5e-3], min_lr=[5e-4])),
    dict(arch=['transformer'], n_people=[5000, 2500, 1250], n_embd=[32], **with_tool),
    *in_weights(1000, [64, 56, 48]), *in_weights(500, [64], 'mamba'), *in_weights(500, [48, 40, 32]),
    *in_weights(250, [48], 'mamba'), *in_weights(250, [32, 28]), *in_weights(125, [32, 28, 24, 16]),
]
base = dict(
    n_layer=2, n_head=2, seed=0, one_per_row=True, batch_size=ROWS, block_size=256, learning_rate=5e-3, min_lr=5e-4,
    warmup_iters=100, weight_decay=0.0, eval_max=300, ckpt_interval=2000, threads=1,
)
