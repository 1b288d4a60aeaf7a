# The tool line at width 24 (31,224 params, inside the reference's 22-32K) with one head of 24 and twice the grid's
# steps: 16,000 steps of 32 dialogs (the cosine, lr 3e-3 to 3e-4, stretched over them; weight decay 0.3), seed 0, at
# the grid's three sizes (1,000 / 2,000 / 4,000 trained people). In 8,000 steps one head gave 99.3 / 93.4 / 93.3% at
# 1,000, 96.1 / 89.9 / 90.8% at 2,000 and 69.8 / 66.3 / 59.5% at 4,000 (../tool_w24_1head). From the repository root:
#   python sweep.py results/recipe_probes/tool_w24_1head_16k/sweep_config.py
exec(open('configs/sweep_cpu.py').read())   # with_tool, base, options
out_root = 'results/recipe_probes/tool_w24_1head_16k'
grid = [dict(arch=['transformer'], n_people=[5000, 2500, 1250], n_embd=[24], n_head=[1],
             **with_tool | dict(max_iters=[16000]), seed=[0])]
