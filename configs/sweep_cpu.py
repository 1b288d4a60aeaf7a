# The capacity grid for 2 CPU cores: `python sweep.py configs/sweep_cpu.py` (finished runs are skipped, so a
# killed sweep resumes). Two runs at a time, one thread each (tiny models use a core better alone). 2-layer models.
#  - in weights: every trained person's QA (held_out 0), rows of one dialog each, 16 a step (more updates per
#    exposure fill a small model faster than 64: results/recipe_probes/); each run trains until recall on its
#    trained facts reaches 95%, or has not risen for 10 evaluations (one every ~25 exposures per fact), or each
#    fact was seen max_exposures times (1,000; 600 from 256 facts on, for the hour). Width 8 never learned (0%
#    at 64 and 128 facts): not run beyond;
#  - with the tool: three sizes of trained people (1000, 2000, 4000), a fixed budget, 95% asked on trained,
#    held-out and unseen people;
#  - Mamba at two points each way (the compiled CPU scan).
out_root = 'results/sweep_cpu'
options = dict(launcher='local', max_parallel=2)
in_weights = dict(tool=[False], held_out=[0.0], n_unseen=[10], batch_size=[16], lr_decay=['constant'],
                  learning_rate=[3e-3], stop_recall=[0.95], stop_patience=[10], max_exposures=[1000.0])
with_tool = dict(tool=[True], held_out=[0.2], n_unseen=[100], max_iters=[3000], batch_size=[32], learning_rate=[3e-3],
                 min_lr=[3e-4], weight_decay=[0.3], eval_interval=[100000])
every_25_exposures = lambda n_people: [max(1, 25 * 4 * n_people // 16)]   # steps: 4 facts a person, 16 rows a step
grid = [
    *[dict(arch=['transformer'], n_people=[n], n_embd=widths, eval_interval=every_25_exposures(n),
           **{**in_weights, 'max_exposures': [cap]})
      for n, widths, cap in ((16, [8, 16, 32], 1000.0), (32, [8, 16, 32], 1000.0), (64, [16, 32], 600.0), (128, [32], 600.0))],
    dict(arch=['transformer'], n_people=[1250, 2500, 5000], n_embd=[16, 32], **with_tool),
    *[dict(arch=['mamba'], n_people=[n], n_embd=[16], eval_interval=every_25_exposures(n),
           **{**in_weights, 'max_exposures': [600.0]}) for n in (16, 32)],
    dict(arch=['mamba'], n_people=[1250, 2500], n_embd=[32], **with_tool),
]
base = dict(
    n_layer=2, n_head=2, seed=0, one_per_row=True, block_size=256, warmup_iters=100, weight_decay=0.0,
    max_iters=1_000_000, eval_max=300, ckpt_interval=2000, threads=1,
)
