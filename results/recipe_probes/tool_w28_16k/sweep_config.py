# Width 28 (40,012 params) with the tool at 4,000 trained people: seeds 0 and 1 never learned the skill in the grid's
# 8,000 steps (../tool_w28). The same runs with 16,000 steps (the cosine stretched): a later escape, or none?
#   python sweep.py results/recipe_probes/tool_w28_16k/sweep_config.py
exec(open('configs/sweep_cpu.py').read())   # with_tool, base, options
out_root = 'results/recipe_probes/tool_w28_16k'
grid = dict(arch=['transformer'], n_people=[5000], n_embd=[28], **with_tool | dict(max_iters=[16000]), seed=[0, 1])
