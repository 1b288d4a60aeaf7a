# Bits per parameter against exposures per fact for the pair at 800 exposures (run_probes.py): recalled (recall on the
# 300 sampled trained questions x facts x bits per fact / params, solid) and held by the loss (sample.value_bits on
# the same questions, dashed), with the 1- and 2-bit marks:
#     python results/recipe_probes/pools/plot.py
import json
import os

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt

HERE = 'results/recipe_probes/pools'
fig, ax = plt.subplots(figsize=(6.5, 4.2))
for name in ('default_pools_800', 'small_pools_800'):
    res = json.load(open(os.path.join(HERE, name, 'results.json')))
    load = res['n_facts'] * res['bits_per_fact'] / res['params']
    rows = [json.loads(line) for line in open(os.path.join(HERE, name, 'metrics.jsonl'))]
    evals = [r for r in rows if 'bits_held_per_param' in r]
    x = [r['exposures_per_fact'] for r in evals]
    line = ax.plot(x, [r['recall']['train'] * load for r in evals], marker='.',
                   label=f"{name}: {res['n_facts']:,} facts of {res['bits_per_fact']:.2f} bits, recalled")[0]
    ax.plot(x, [r['bits_held_per_param'] for r in evals], ls='--', color=line.get_color(), label='  held (loss)')
ax.axhline(0.8, color='gray', ls=':', lw=1)
ax.axhline(0, color='black', lw=0.5)
ax.text(10, 0.81, 'the load: every fact held', fontsize=7, color='gray')
for bits in (1, 2):
    ax.axhline(bits, color='gray', ls='--', lw=0.6)
ax.set(xlabel='exposures per fact', ylabel='bits per parameter', ylim=(-1, 2.1),
       title='width 32 (49,824 params), 0.8 bits/param of load')
ax.legend(fontsize=7, loc='upper left')
fig.tight_layout()
fig.savefig(os.path.join(HERE, 'bits_vs_exposures.png'), dpi=120)
print('wrote', os.path.join(HERE, 'bits_vs_exposures.png'))
