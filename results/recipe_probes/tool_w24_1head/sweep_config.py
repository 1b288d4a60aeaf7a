# The tool line at width 24 (31,224 params) with one head of 24: with two heads of 14, width 28 never learned the
# copying skill at 4,000 trained people on two seeds of three, with one head of 28 both did (../tool_w28_1head).
# configs/sweep_cpu.py's tool recipe otherwise (8,000 steps of 32 dialogs, lr 3e-3 cosine to 3e-4, weight decay 0.3),
# at the grid's three sizes (1,000 / 2,000 / 4,000 trained people), seed 0, and seed 1 at 4,000. From the repository root:
#   python sweep.py results/recipe_probes/tool_w24_1head/sweep_config.py
exec(open('configs/sweep_cpu.py').read())   # with_tool, base, options
out_root = 'results/recipe_probes/tool_w24_1head'
grid = [dict(arch=['transformer'], n_people=[5000], n_embd=[24], n_head=[1], **with_tool, seed=[0, 1]),
        dict(arch=['transformer'], n_people=[2500, 1250], n_embd=[24], n_head=[1], **with_tool, seed=[0])]
