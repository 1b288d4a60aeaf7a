# Width 24 (31,224 params) with one head of 24: does the tool line at the reference's 22-32K hold on more seeds and at
# 32,000 facts? Seeds 1 and 2 at 2,000 trained people (16,000 steps) and 4,000 (24,000 steps), where seed 0 reached
# 95% on every split (../tool_plateau), and seed 0 at 8,000 trained people with 48,000 steps (32,000 steps: 92.3% on
# unseen people, ../tool_w24_1head_32k). Added after these had run: seed 2 at 8,000, seed 3, then seed 4, at 2,000 and 4,000, then seeds 3 and 4 at 8,000, then seed 1 at 8,000. Batch 32 dialogs, the cosine (lr 3e-3 to 3e-4) stretched over the
# steps, weight decay 0.3, as the grid's tool runs. From the repository root:
#   python sweep.py results/recipe_probes/tool_w24_1head_seeds/sweep_config.py
exec(open('configs/sweep_cpu.py').read())   # with_tool, base, options
out_root = 'results/recipe_probes/tool_w24_1head_seeds'
one_head = lambda n_people, steps, seeds: dict(arch=['transformer'], n_people=[n_people], n_embd=[24], n_head=[1],
                                               **with_tool | dict(max_iters=[steps]), seed=seeds)
grid = [one_head(10000, 48000, [0, 2, 3, 4, 1]), one_head(5000, 24000, [1, 2, 3, 4]), one_head(2500, 16000, [1, 2, 3, 4])]   # longest first
