# configs/sweep_cpu.py's tool recipe (8,000 steps of 32 dialogs) at width 28 (40,012 params), between width 24 (31,224:
# 67-94% at 1,000-4,000 trained people, ../tool_widths) and the grid's 32 (49,824): does the tool line come down toward
# the reference's 22-32K at 2,000 and 4,000 trained people? Seed 0, then seeds 1 and 2 at 4,000. From the repository root:
#   python sweep.py results/recipe_probes/tool_w28/sweep_config.py
exec(open('configs/sweep_cpu.py').read())   # with_tool, base, options
out_root = 'results/recipe_probes/tool_w28'
grid = [dict(arch=['transformer'], n_people=[5000, 2500], n_embd=[28], **with_tool, seed=[0]),
        dict(arch=['transformer'], n_people=[5000], n_embd=[28], **with_tool, seed=[1, 2])]   # 4,000 stalled with seed 0
