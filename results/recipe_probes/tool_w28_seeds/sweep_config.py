# How often width 28 (40,012 params) learns the copying skill at 4,000 trained people, with two heads of 14 (the
# grid's; seeds 0-2: one of three, ../tool_w28) and with one head of 28 (seeds 0 and 1: both, ../tool_w28_1head):
# two more seeds each. configs/sweep_cpu.py's tool recipe otherwise (8,000 steps of 32 dialogs, lr 3e-3 cosine to
# 3e-4, weight decay 0.3). From the repository root:
#   python sweep.py results/recipe_probes/tool_w28_seeds/sweep_config.py
exec(open('configs/sweep_cpu.py').read())   # with_tool, base, options
out_root = 'results/recipe_probes/tool_w28_seeds'
grid = [dict(arch=['transformer'], n_people=[5000], n_embd=[28], n_head=[1, 2], **with_tool, seed=[3, 4])]
