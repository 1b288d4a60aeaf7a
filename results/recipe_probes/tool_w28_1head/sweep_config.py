# Width 28 (40,012 params) at 4,000 trained people with one head of 28 instead of two of 14: configs/sweep_cpu.py's
# tool recipe otherwise (8,000 steps of 32 dialogs, lr 3e-3 cosine to 3e-4, weight decay 0.3), the two seeds that
# never learn the skill with two heads (../tool_w28). From the repository root:
#   python sweep.py results/recipe_probes/tool_w28_1head/sweep_config.py
exec(open('configs/sweep_cpu.py').read())   # with_tool, base, options
out_root = 'results/recipe_probes/tool_w28_1head'
grid = [dict(arch=['transformer'], n_people=[5000], n_embd=[28], n_head=[1], **with_tool, seed=[0, 1])]
