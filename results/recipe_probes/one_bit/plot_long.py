# Bits/param against exposures per fact for the runs of run_long.py (recall on the 300 sampled trained questions,
# times the facts and bits a run holds, over its parameters), with the 1- and 2-bit marks:
#     python results/recipe_probes/one_bit/plot_long.py
import json
import os

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt

HERE = 'results/recipe_probes/one_bit'
fig, ax = plt.subplots(figsize=(6, 4))
for name in ('w32_p1250', 'w32_p1500', 'w24_p850_lr0.01'):
    res = json.load(open(os.path.join(HERE, name, 'results.json')))
    load = res['n_facts'] * res['bits_per_fact'] / res['params']
    pts = [(r['exposures_per_fact'], r['recall']['train'] * load)
           for r in map(json.loads, open(os.path.join(HERE, name, 'metrics.jsonl'))) if 'recall' in r]
    ax.plot(*zip(*pts), marker='.', label=f"{name}: {res['params']:,} params, {res['n_facts']:,} facts ({load:.2f} bits/param if all)")
for bits in (1, 2):
    ax.axhline(bits, color='gray', ls=':', lw=1)
ax.set(xlabel='exposures per fact', ylabel='bits per parameter (recalled facts)', ylim=(0, 2.1))
ax.legend(fontsize=7, loc='upper left')
fig.tight_layout()
fig.savefig(os.path.join(HERE, 'bits_vs_exposures.png'), dpi=120)
print('wrote', os.path.join(HERE, 'bits_vs_exposures.png'))
