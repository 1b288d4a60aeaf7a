# Towards 1 bit/param, second try (2026-12-04): width 32 (49,824 params) at 1.03 and 1.24 bits/param of load, with
# 1,100 and 900 exposures per fact (the reference's own points near 1 bit/param had 1,562-3,125), the grid's
# in-weight recipe with the learning rate 1e-2 decayed to 0 (the best of results/recipe_probes/fill_recipe/).
# From the repository root, two runs at once, one thread each (~90 min each on 2026-12-04's VM):
#     python results/recipe_probes/one_bit/run_long.py
import os
import subprocess
import sys

HERE, ROWS = 'results/recipe_probes/one_bit', 24
RUNS = {'w32_p1250': (1250, 1100), 'w32_p1500': (1500, 900)}   # name: (people, exposures per fact)
procs = []
for name, (n_people, exposures) in RUNS.items():
    steps, per_exposure = exposures * 4 * n_people // ROWS, 4 * n_people // ROWS
    cfg = dict(tool=False, mix_qa=1.0, mix_qa_tool=0.0, n_people=n_people, held_out=0.0, n_unseen=10,
               one_per_row=True, n_layer=2, n_head=2, n_embd=32, block_size=256, batch_size=ROWS, max_iters=steps,
               warmup_iters=100, weight_decay=0.0, learning_rate=1e-2, min_lr=0.0, eval_interval=50 * per_exposure,
               stop_recall=0.995, eval_max=300, ckpt_interval=5000, threads=1, out_dir=os.path.join(HERE, name))
    procs.append(subprocess.Popen([sys.executable, 'train.py', *[f'--{k}={v}' for k, v in cfg.items()]],
                                  stdout=subprocess.DEVNULL, stderr=open(os.path.join(HERE, f'{name}.log'), 'w')))
sys.exit(max(p.wait() for p in procs))
