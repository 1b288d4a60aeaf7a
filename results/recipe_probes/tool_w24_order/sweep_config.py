# Width 24 with one head: is a seed's stall on the plateau (never learning to copy names into SQL) set by its
# initialization or by the order of its training documents? train.py's `seed` sets both; `order_seed` the order
# alone. Seed 1 stays on the plateau at 2,000 trained people and seed 4 at 4,000, where seed 0 learns to copy
# (../tool_w24_1head_seeds, ../tool_plateau): here each stalled seed's initialization with seed 0's order, and
# seed 0's initialization with the stalled seed's order. The grid's tool recipe as in ../tool_w24_1head_seeds
# (batch 32, lr 3e-3 to 3e-4 cosine over the steps, weight decay 0.3). From the repository root:
#   python sweep.py results/recipe_probes/tool_w24_order/sweep_config.py
exec(open('configs/sweep_cpu.py').read())   # with_tool, base, options
out_root = 'results/recipe_probes/tool_w24_order'
crossed = lambda n_people, steps, seed, order_seed: dict(
    arch=['transformer'], n_people=[n_people], n_embd=[24], n_head=[1], **with_tool | dict(max_iters=[steps]),
    seed=[seed], order_seed=[order_seed])
grid = [crossed(5000, 24000, 4, 0), crossed(5000, 24000, 0, 4),    # longest first
        crossed(2500, 16000, 1, 0), crossed(2500, 16000, 0, 1)]
