# The tool line's 1,000-trained-people point of configs/sweep_cpu.py (width 32, 8,000 steps of 32 dialogs) missed 95%
# on held-out people on the mean of three seeds (results/sweep_cpu_seeds: 95.7 / 94.0 / 93.1%). The same runs with
# twice the steps (the cosine stretched with them), nothing else changed. From the repository root:
#   python sweep.py results/recipe_probes/tool_seeds/sweep_config.py
exec(open('configs/sweep_cpu.py').read())   # with_tool, base, options
out_root = 'results/recipe_probes/tool_seeds'
grid = dict(arch=['transformer'], n_people=[1250], n_embd=[32], **with_tool | dict(max_iters=[16000]), seed=[0, 1, 2])
