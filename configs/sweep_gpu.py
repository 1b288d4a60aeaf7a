# The reference study's scale on GPUs, sized from what the CPU grid taught: rows of one dialog each, a learning
# rate decayed (cosine) over a horizon of exposures per fact, a stop once 95% of the trained questions are right
# (small models fill only after hundreds to thousands of exposures: the horizon is 1,000, capped at the
# reference's 100K steps), widths 8..256, 2..32768 people, tool vs no tool, Transformer and Mamba, 3 seeds.
#     python sweep.py configs/sweep_gpu.py --launcher=slurm --partition=gpu --timeout_min=240
out_root = 'results/sweep_gpu'
options = dict(launcher='slurm', max_parallel=64)
ROWS = 128
steps = lambda n_people, exposures: min(100_000, max(1, exposures * 4 * n_people // ROWS))
# with the tool the run goes to the horizon: a stop on trained recall could come before copying generalizes.
# At widths 24-28 the copying skill forms on some seeds only (width 28, two heads: 3 CPU seeds of 5, one head: 4 of 4;
# width 24, one head: 3 of 5; results/recipe_probes/tool_plateau): compare n_head=1 there, and read a tool point
# per seed as well as on the mean (fits.json's reference_rule: the reference's reading), before reading it as a size
# limit. Which seeds copy is a property of (initialization, order), not of either alone (tool_w24_order).
# the peak learning rate falls as 1/width from 1e-2 at width 24 (measured on Transformers: results/recipe_probes/
# fill_recipe at width 24, pools at 64; Mamba takes the same). At 24 rows a step the CPU grid's best peak falls
# faster, from 5e-3 at width 32 to 1.25e-3-2.5e-3 at 48 (results/recipe_probes/grid_lr): not measured at 128 rows.
peak_lr = lambda width: min(1e-2, 1e-2 * 24 / width)
# with the tool a model needs a copying circuit, not memory: at width 32 a SwiGLU of hidden 32 instead of 128 (31,392
# params instead of 49,824) holds the CPU line (results/recipe_probes/tool_small_mlp): tool runs take both shapes.
grid = [dict(arch=[arch], tool=[tool], n_people=[n], n_embd=[width], learning_rate=[peak_lr(width)],
             mlp_hidden=[0, width] if tool and arch == 'transformer' else [0],
             seed=[0, 1, 2], max_iters=[steps(n, 1000)], eval_interval=[max(100, steps(n, 25))],
             stop_recall=[0.0 if tool else 0.95])
        for n in [2 ** k for k in range(1, 16, 2)] for tool in (False, True) for width in (8, 16, 32, 64, 128, 256)
        for arch in ('transformer', 'mamba')]
base = dict(
    n_layer=2, n_head=2, held_out=0.2, n_unseen=100, one_per_row=True, block_size=512, batch_size=ROWS,
    min_lr=0.0, weight_decay=0.0, warmup_iters=1000, eval_max=1000,   # fill_recipe probes
    ckpt_interval=2000, device='cuda',
)
