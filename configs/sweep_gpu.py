# The reference study's scale on GPUs: widths 8..256, 2..32768 people, tool vs no tool, Transformer and
# Mamba, 3 seeds.  python sweep.py configs/sweep_gpu.py --launcher=slurm --partition=gpu --timeout_min=240
out_root = 'results/sweep_gpu'
grid = dict(
    arch=['transformer', 'mamba'],
    tool=[False, True],
    n_people=[2 ** k for k in range(1, 16, 2)],
    n_embd=[8, 16, 32, 64, 128, 256],
    seed=[0, 1, 2],
)
base = dict(
    n_layer=2, n_head=2, held_out=0.2, n_unseen=100, block_size=1024, batch_size=32,
    learning_rate=3e-3, min_lr=3e-4, weight_decay=0.0, warmup_iters=1000, max_iters=100_000,
    eval_interval=10_000, eval_max=1000, ckpt_interval=2000, device='cuda',
)
