# The capacity grid sized for 2 CPU cores: 2-layer Transformers of width 16..64, 50..400 people,
# in weights vs with the tool. `python sweep.py configs/sweep_cpu.py` (runs are skipped once done).
out_root = 'results/sweep_cpu'
grid = dict(
    tool=[False, True],
    n_people=[50, 100, 200, 400],
    n_embd=[16, 32, 64],
)
base = dict(
    arch='transformer', n_layer=2, n_head=2, held_out=0.2, n_unseen=50, seed=0,
    block_size=512, batch_size=8, learning_rate=5e-3, min_lr=5e-4, weight_decay=0.0, warmup_iters=100,
    max_iters=1500, eval_interval=100000, eval_max=200, ckpt_interval=500,
)
