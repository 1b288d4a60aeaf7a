# The capacity grid for 2 CPU cores: `python sweep.py configs/sweep_cpu.py` (finished runs are skipped, so a
# killed sweep resumes). Two runs at a time, one thread each (tiny models use a core better alone). 2-layer models.
#  - in weights: every trained person's QA (held_out 0), rows of one dialog each, 24 a step; learning rate 5e-3
#    decayed (cosine) to 5e-4 over 150 exposures per fact; a run stops once 95% of 300 trained questions are
#    right and then 95% of all (checked every ~10 exposures). A constant learning rate filled models far more slowly
#    (results/recipe_probes/). Widths: the two around the 95% threshold at each fact count (found by the
#    first full grid, results/sweep_cpu/NOTES.md), all four at 500 facts;
#  - with the tool: three sizes of trained people (1000, 2000, 4000), width 32 (49.8K parameters), a fixed
#    8,000 steps of 32 dialogs; 95% asked on trained, held-out and unseen people. 3,000 steps left width 32 at
#    76-86% on new people and width 16 at 0% (results/recipe_probes/tool_3000_steps).
#  - Mamba (2 layers, d_state 16): in weights width 48 (64,848 params) at 1,000 facts and 64 (99,264) at 2,000;
#    with the tool width 88 (163,240) at 2,000 and 4,000 trained people.
out_root = 'results/sweep_cpu'
options = dict(launcher='local', max_parallel=2)
EXPOSURES, ROWS = 150, 24
steps = lambda n_people, exposures: max(1, exposures * 4 * n_people // ROWS)   # 4 facts a person
in_weights = lambda n, widths, arch='transformer': dict(arch=[arch], tool=[False], n_people=[n], n_embd=widths,
                                                      held_out=[0.0], n_unseen=[10], max_iters=[steps(n, EXPOSURES)],
                                                      eval_interval=[steps(n, 10)], stop_recall=[0.95])
with_tool = dict(tool=[True], held_out=[0.2], n_unseen=[100], max_iters=[8000], batch_size=[32], learning_rate=[3e-3],
                 min_lr=[3e-4], weight_decay=[0.3], eval_interval=[100000])
grid = [   # longest runs first, so that the two slots end about together (the order does not name runs)
    dict(arch=['mamba'], n_people=[5000, 2500], n_embd=[88],   # Mamba with the tool: configs/mamba_tool.py's recipe
         **with_tool | dict(max_iters=[5500], learning_rate=[5e-3], min_lr=[5e-4])),
    dict(arch=['transformer'], n_people=[5000, 2500, 1250], n_embd=[32], **with_tool),
    in_weights(1000, [64, 48]), in_weights(500, [64], 'mamba'), in_weights(500, [48, 32]),
    in_weights(250, [48], 'mamba'), in_weights(250, [32, 28]), in_weights(125, [32, 28, 24, 16]),
]
base = dict(
    n_layer=2, n_head=2, seed=0, one_per_row=True, batch_size=ROWS, block_size=256, learning_rate=5e-3, min_lr=5e-4,
    warmup_iters=100, weight_decay=0.0, eval_max=300, ckpt_interval=2000, threads=1,
)
