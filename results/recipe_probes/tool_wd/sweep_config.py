# The tool line's 1,000-trained-people point of configs/sweep_cpu.py (width 32, 8,000 steps of 32 dialogs, lr 3e-3,
# weight decay 0.3) with weight decay 1.0, seeds 0 / 1 / 2: its held-out misses are names and values copied wrong
# (results/recipe_probes/tool_seeds), so does a stronger pull against memorizing help? From the repository root:
#   python sweep.py results/recipe_probes/tool_wd/sweep_config.py
exec(open('configs/sweep_cpu.py').read())   # with_tool, base, options
out_root = 'results/recipe_probes/tool_wd'
grid = dict(arch=['transformer'], n_people=[1250], n_embd=[32], **with_tool | dict(weight_decay=[1.0]), seed=[0, 1, 2])
