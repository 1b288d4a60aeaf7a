# Width 28 with one head (40,012 params) for seed 1, which never learns to copy at width 24 with one head: its smallest
# model at 95% at 2,000 trained people under width 24's recipe (16,000 steps, ../tool_w24_1head_seeds), for the
# reference's reading of the tool line (../tool_plateau/reference_reading.py). Batch 32 dialogs, lr 3e-3 to 3e-4
# cosine over the steps, weight decay 0.3, as the grid's tool runs. From the repository root:
#   python sweep.py results/recipe_probes/tool_w28_1head_grown/sweep_config.py
exec(open('configs/sweep_cpu.py').read())   # with_tool, base, options
out_root = 'results/recipe_probes/tool_w28_1head_grown'
grid = [dict(arch=['transformer'], n_people=[2500], n_embd=[28], n_head=[1], **with_tool | dict(max_iters=[16000]),
             seed=[1])]
