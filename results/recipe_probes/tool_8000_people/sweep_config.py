# configs/sweep_cpu.py's tool recipe (width 32, 49,824 params) at 8,000 trained people (10,000 in the database, 32,000
# facts) with 16,000 steps of 32 dialogs instead of 8,000: 16 exposures per fact, as 4,000 trained people get in 8,000
# steps. With 8,000 steps (8 exposures) the mean of three seeds missed 95% (results/sweep_cpu_seeds: unseen 93.7%, seed 1
# at 93.3% even on trained people). Seeds 0 / 1 / 2. From the repository root:
#   python sweep.py results/recipe_probes/tool_8000_people/sweep_config.py
exec(open('configs/sweep_cpu.py').read())   # with_tool, base, options
out_root = 'results/recipe_probes/tool_8000_people'
grid = dict(arch=['transformer'], n_people=[10000], n_embd=[32], **with_tool | dict(max_iters=[16000]), seed=[0, 1, 2])
