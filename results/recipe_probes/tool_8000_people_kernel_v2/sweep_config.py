# ../tool_8000_people (width 32, 8,000 trained people, 16,000 steps, seeds 0 / 1 / 2; run with torch ops on 2026-12-06)
# again with the evening's C++ step of 2026-12-07 (the default training step since): the tool line's largest size on
# today's code. From the repository root (~15 min on 2 cores):
#   python sweep.py results/recipe_probes/tool_8000_people_kernel_v2/sweep_config.py
exec(open('configs/sweep_cpu.py').read())   # with_tool, base, options
out_root = 'results/recipe_probes/tool_8000_people_kernel_v2'
grid = dict(arch=['transformer'], n_people=[10000], n_embd=[32], **with_tool | dict(max_iters=[16000]), seed=[0, 1, 2])
