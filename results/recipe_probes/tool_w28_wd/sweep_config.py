# Does weight decay keep width 28 (40,012 params) on the plateau at 4,000 trained people? configs/sweep_cpu.py's tool
# recipe (8,000 steps of 32 dialogs, lr 3e-3 cosine to 3e-4) uses weight decay 0.3; with it seeds 0 and 1 never learn
# the skill (../tool_w28). Here weight decay 0.0 and 0.1, the same two seeds (0.1 was stopped once 0.0 stalled too). From the repository root:
#   python sweep.py results/recipe_probes/tool_w28_wd/sweep_config.py
exec(open('configs/sweep_cpu.py').read())   # with_tool, base, options
out_root = 'results/recipe_probes/tool_w28_wd'
grid = [dict(arch=['transformer'], n_people=[5000], n_embd=[28], **with_tool | dict(weight_decay=[0.0, 0.1]),
             seed=[0, 1])]
