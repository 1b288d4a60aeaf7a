# Width 24 (31,224 params) with one head of 24 at 4,000 trained people, 24,000 steps of 32 dialogs (the cosine, lr
# 3e-3 to 3e-4, stretched over them; weight decay 0.3), seed 0: with 16,000 steps it reached 98.5 / 97.9% on trained and
# held-out people but 93.3% on unseen ones (../tool_w24_1head_16k). From the repository root:
#   python sweep.py results/recipe_probes/tool_w24_1head_24k/sweep_config.py
exec(open('configs/sweep_cpu.py').read())   # with_tool, base, options
out_root = 'results/recipe_probes/tool_w24_1head_24k'
grid = [dict(arch=['transformer'], n_people=[5000], n_embd=[24], n_head=[1], **with_tool | dict(max_iters=[24000]),
             seed=[0])]
