# Width 24 (31,224 params) with one head of 24 at 8,000 trained people (32,000 facts), 32,000 steps of 32 dialogs (32
# exposures per fact; the cosine, lr 3e-3 to 3e-4, stretched over them; weight decay 0.3), seed 0: the third size of
# the line that 2,000 (16,000 steps) and 4,000 trained people (24,000 steps) reach (../tool_plateau). From the
# repository root:
#   python sweep.py results/recipe_probes/tool_w24_1head_32k/sweep_config.py
exec(open('configs/sweep_cpu.py').read())   # with_tool, base, options
out_root = 'results/recipe_probes/tool_w24_1head_32k'
grid = [dict(arch=['transformer'], n_people=[10000], n_embd=[24], n_head=[1], **with_tool | dict(max_iters=[32000]),
             seed=[0])]
