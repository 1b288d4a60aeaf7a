# The tool line's 1,000-trained-people point of configs/sweep_cpu.py (width 32, 8,000 steps of 32 dialogs, lr 3e-3
# cosine to 3e-4) at a peak lr of 5e-3 (to 5e-4), seeds 0 / 1 / 2; at 3e-3 its held-out people were 94.3% on the mean
# (results/sweep_cpu_seeds), and for Mamba 5e-3 lifted unseen names (results/mamba_trials). From the repository root:
#   python sweep.py results/recipe_probes/tool_lr/sweep_config.py
exec(open('configs/sweep_cpu.py').read())   # with_tool, base, options
out_root = 'results/recipe_probes/tool_lr'
grid = dict(arch=['transformer'], n_people=[1250], n_embd=[32], **with_tool | dict(learning_rate=[5e-3], min_lr=[5e-4]),
            seed=[0, 1, 2])
