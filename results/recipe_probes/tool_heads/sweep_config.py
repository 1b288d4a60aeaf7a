# The tool line's 1,000-trained-people point of configs/sweep_cpu.py (width 32, 2 heads of 16, 8,000 steps of 32
# dialogs) with 1 head of 32 and 4 heads of 8, seeds 0 / 1 / 2: its held-out misses are names and values copied wrong
# (results/recipe_probes/tool_seeds), and copying is attention's work; the head count does not change the parameters.
# From the repository root:
#   python sweep.py results/recipe_probes/tool_heads/sweep_config.py
exec(open('configs/sweep_cpu.py').read())   # with_tool, base, options
out_root = 'results/recipe_probes/tool_heads'
grid = dict(arch=['transformer'], n_people=[1250], n_embd=[32], n_head=[4, 1], **with_tool, seed=[0, 1, 2])
