# The CPU grid's learning rate: four points of configs/sweep_cpu.py's grid (lr 5e-3 cosine to 5e-4, 24 dialogs a step,
# 150 exposures) re-run at other peaks (the floor peak / 10), then width 48 at 2.22e-3 with other seeds; nothing else
# changed. From the repository root, two runs at once, one thread each (NOTES.md has the results):
#   python results/recipe_probes/grid_lr/run_probes.py [NAME ...]
import json
import os
import subprocess
import sys

HERE = 'results/recipe_probes/grid_lr'
GRID = {'w48_p1000': 'archtransformer_toolFalse_n_people1000_n_embd48',   # 4,000 facts, grid: 20.9%
        'w32_p500': 'archtransformer_toolFalse_n_people500_n_embd32',     # 2,000 facts, grid: 9.6%
        'w28_p250': 'archtransformer_toolFalse_n_people250_n_embd28',     # 1,000 facts, grid: 48.8%
        'w24_p125': 'archtransformer_toolFalse_n_people125_n_embd24',     # 500 facts, grid: 86.0%
        'w32_p250': 'archtransformer_toolFalse_n_people250_n_embd32',     # 1,000 facts, grid: 96.2% (at 95%)
        'w48_p500': 'archtransformer_toolFalse_n_people500_n_embd48'}     # 2,000 facts, grid: 97.4% (at 95%)
# in the order run: width 48 first (the first pair said lower), then whether the narrow ones want higher
LRS = {'w48_p1000': (1e-2, 2.5e-3, 1.25e-3), 'w32_p500': (2.5e-3, 1.25e-3, 1e-2), 'w28_p250': (1e-2,), 'w24_p125': (1e-2,)}
RUNS = {f'{point}_lr{lr:g}': (point, lr, 0) for point in GRID for lr in LRS.get(point, ())}
# then the grid's own rule at width 48 (2.22e-3: 44% of 4,000 facts) with two other seeds (init and data order)
RUNS |= {f'w48_p1000_lr0.00222_seed{seed}': ('w48_p1000', 2.22e-3, seed) for seed in (1, 2)}
# and the grid's 5e-3 with the same two seeds: two points below the threshold, then two of the smallest at 95%
RUNS |= {f'{point}_lr0.005_seed{seed}': (point, 5e-3, seed)
         for point in ('w28_p250', 'w24_p125', 'w32_p250', 'w48_p500') for seed in (1, 2)}


def config(name):
    point, lr, seed = RUNS[name]
    cfg = json.load(open(f'results/sweep_cpu/{GRID[point]}/config.json'))
    cfg.update(learning_rate=lr, min_lr=lr / 10, seed=seed, out_dir=os.path.join(HERE, name))
    return cfg


def start(cfg):   # two runs may make one data folder at once: data.prepare is safe for that
    return subprocess.Popen([sys.executable, 'train.py', *[f'--{k}={v}' for k, v in cfg.items()]],
                            stdout=subprocess.DEVNULL)


if __name__ == '__main__':
    names = sys.argv[1:] or list(RUNS)
    for name in names:
        if name not in RUNS:
            sys.exit(f'unknown run {name!r}; known: {", ".join(RUNS)}')
    for i in range(0, len(names), 2):   # two at a time: one per core
        procs = [start(config(n)) for n in names[i:i + 2]]
        if max(p.wait() for p in procs):
            sys.exit(f'a run of {names[i:i + 2]} failed')
