# The CPU grid's in-weight half with three times the horizon: 450 exposures per fact instead of 150 (the cosine and
# the cap), everything else configs/sweep_cpu.py's (rows of one dialog, 24 a step, lr 5e-3 cosine to 5e-4, stop at 95%
# of 300 trained questions, checked every 10 exposures). Widths chosen to bracket the threshold from
# ../long_horizon (width 48 holds 4,000 facts at 391 exposures, width 32 83% of 2,000 at 452). Seed 0, Transformers
# only. From the repository root (two runs at a time, one thread each):
#   python sweep.py results/recipe_probes/grid_450/sweep_config.py
exec(open('configs/sweep_cpu.py').read())   # steps, base, options
out_root = 'results/recipe_probes/grid_450'
HORIZON = 450
in_weights = lambda n, widths: dict(arch=['transformer'], tool=[False], n_people=[n], n_embd=widths, held_out=[0.0],
                                    n_unseen=[10], max_iters=[steps(n, HORIZON)], eval_interval=[steps(n, 10)],
                                    stop_recall=[0.95])
grid = [in_weights(1000, [48, 40]), in_weights(500, [40, 32]), in_weights(250, [28, 24]), in_weights(125, [24, 16])]
