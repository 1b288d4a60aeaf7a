# Long-horizon in-weight probes: a CPU grid point's recipe (its config.json) with the cosine horizon and the cap at
# 450 exposures per fact instead of 150, the stop at 95% kept. From the repository root, two runs at once, one
# thread each: python results/recipe_probes/long_horizon/run_probes.py
import json
import os
import subprocess
import sys

HERE = 'results/recipe_probes/long_horizon'
RUNS = {'w48_p1000': ('archtransformer_toolFalse_n_people1000_n_embd48', 1000),   # 4,000 facts
        'w32_p500': ('archtransformer_toolFalse_n_people500_n_embd32', 500)}      # 2,000 facts
ROWS, EXPOSURES = 24, 450

procs = []
for name, (grid_run, n_people) in RUNS.items():
    cfg = json.load(open(f'results/sweep_cpu/{grid_run}/config.json'))
    cfg.update(max_iters=EXPOSURES * 4 * n_people // ROWS, eval_interval=10 * 4 * n_people // ROWS,
               out_dir=os.path.join(HERE, name))
    procs.append(subprocess.Popen([sys.executable, 'train.py', *[f'--{k}={v}' for k, v in cfg.items()]],
                                  stdout=subprocess.DEVNULL))
sys.exit(max(p.wait() for p in procs))
