# The capacity grid sized for 2 CPU cores (~50 min): 2-layer Transformers of width 16..64 on 50..400
# people, in weights vs with the tool, plus 2-layer Mambas in weights. Every run has the same budget of
# 1500 steps of 4 x 512 tokens.  `python sweep.py configs/sweep_cpu.py` (finished runs are skipped).
out_root = 'results/sweep_cpu'
grid = [
    dict(arch=['transformer'], tool=[False, True], n_people=[50, 100, 200, 400], n_embd=[16, 32, 64]),
    dict(arch=['mamba'], tool=[False], n_people=[50, 200], n_embd=[16, 32, 64]),
]
base = dict(
    n_layer=2, n_head=2, held_out=0.2, n_unseen=50, seed=0,
    block_size=512, batch_size=4, learning_rate=5e-3, min_lr=5e-4, weight_decay=0.0, warmup_iters=100,
    max_iters=1500, eval_interval=100000, eval_max=200, ckpt_interval=500,
)
