# Bits per parameter against exposures per fact for the pair at 800 exposures (run_probes.py): recalled (recall on the
# 300 sampled trained questions x facts x bits per fact / params, solid) and held by the loss (sample.value_bits on
# the same questions, dashed), with the 1- and 2-bit marks; the widths at 390 exposures on the default pools
# (bits_vs_width.png); width 64 by learning rate and load (bits_vs_load.png); and the bits held by width, printed:
#     python results/recipe_probes/pools/plot.py > results/recipe_probes/pools/bits_vs_width.txt
import json
import os
import sys

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt

HERE = 'results/recipe_probes/pools'
sys.path.insert(0, HERE)
from run_probes import CONTINUED   # noqa: E402  (name: (the run it resumes, its max_iters))
BY_WIDTH = {'default': ('w24_default_pools', 'default_pools', 'w40_default_pools', 'w48_default_pools', 'w64_default_pools'),
            'small': ('small_pools', 'w40_small_pools', 'w48_small_pools')}   # 390 exposures, 0.8 bits/param of load
BY_LOAD = ('w64_default_pools', 'w64_default_pools_lr0.0025', 'w64_load1.25_lr0.0025', 'w64_load1.25_lr0.0025_more',
           'w64_load1.25_lr0.0025_more2')

# the bits held at the end of each run, from errors.txt (errors.py over every trained fact, the count results.json
# holds since the 800-exposure pair; the first runs predate it)
held = {}
for line in open(os.path.join(HERE, 'errors.txt')):
    if not line.startswith(' '):
        run = os.path.basename(line.split(':')[0])
    elif 'bits held per parameter' in line:
        held[run] = float(line.split(';')[-1].split()[0])


def draw(ax, name, label, first=0):
    """One run's recalled (solid) and held (dashed) bits per parameter at its evaluations from step `first` on; held
    at its end: a star."""
    res = json.load(open(os.path.join(HERE, name, 'results.json')))
    load = res['n_facts'] * res['bits_per_fact'] / res['params']
    rows = [json.loads(line) for line in open(os.path.join(HERE, name, 'metrics.jsonl'))]
    evals = [r for r in rows if 'recall' in r and r['step'] >= first]
    logged = [r for r in evals if 'bits_held_per_param' in r]
    line = ax.plot([r['exposures_per_fact'] for r in evals], [r['recall']['train'] * load for r in evals], marker='.',
                   label=label(res))[0]
    ax.plot([r['exposures_per_fact'] for r in logged], [r['bits_held_per_param'] for r in logged], ls='--',
            color=line.get_color(), label='  held (loss)')
    ax.plot([res['exposures_per_fact']], [held[name]], marker='*', color=line.get_color())


fig, ax = plt.subplots(figsize=(6.5, 4.2))
for name in ('default_pools_800', 'small_pools_800'):
    draw(ax, name, lambda res: f"{name}: {res['n_facts']:,} facts of {res['bits_per_fact']:.2f} bits, recalled")
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

# the widths on the default pools at 0.8 bits/param of load and 390 exposures (width 32's run logged the held bits
# only at its end: its star)
fig, ax = plt.subplots(figsize=(6.5, 4.2))
for name in BY_WIDTH['default']:
    if os.path.exists(os.path.join(HERE, name, 'results.json')):
        width = json.load(open(os.path.join(HERE, name, 'config.json')))['n_embd']
        draw(ax, name, lambda res: f"width {width} ({res['params']:,} params), {res['n_facts']:,} facts: recalled")
ax.axhline(0.8, color='gray', ls=':', lw=1)
ax.axhline(0, color='black', lw=0.5)
ax.set(xlabel='exposures per fact', ylabel='bits per parameter', ylim=(-1.5, 1.05),
       title='default pools, 0.8 bits/param of load, 390 exposures: by width')
ax.legend(fontsize=7, loc='lower right')
fig.tight_layout()
fig.savefig(os.path.join(HERE, 'bits_vs_width.png'), dpi=120)

# width 64 by learning rate and load (bits/param if every fact were recalled): recalled on the 300 sampled questions
# (solid) and held by the loss (dashed)
fig, ax = plt.subplots(figsize=(6.5, 4.2))
for name in BY_LOAD:   # a continuation drawn from its source's end on
    cfg = json.load(open(os.path.join(HERE, name, 'config.json')))
    parent = CONTINUED.get(name, (None,))[0]
    first = json.load(open(os.path.join(HERE, parent, 'config.json')))['max_iters'] if parent else 0
    draw(ax, name, lambda res: f"lr {cfg['learning_rate']:g}, load {res['n_facts'] * res['bits_per_fact'] / res['params']:.2f}, "
         f"{cfg['max_iters']:,} steps: recalled" + (' (continued)' if first else ''), first)
for bits in (0, 1, 2):
    ax.axhline(bits, color='gray', ls='--' if bits else '-', lw=0.6)
ax.set(xlabel='exposures per fact', ylabel='bits per parameter', ylim=(-0.3, 2.1),
       title='width 64 (165,184 params), default pools: by learning rate and load')
ax.legend(fontsize=7, loc='upper left')
fig.tight_layout()
fig.savefig(os.path.join(HERE, 'bits_vs_load.png'), dpi=120)

# the held bits by width, and what each step in width added: the extra bits held per extra parameter
for pools, names in BY_WIDTH.items():
    names = [n for n in names if n in held]
    params = [json.load(open(os.path.join(HERE, n, 'results.json')))['params'] for n in names]
    total = [held[n] * p for n, p in zip(names, params)]
    print(f"{pools} pools, 390 exposures, 0.8 bits/param of load: " + ', '.join(
        f"{p:,} params hold {t:,.0f} bits ({held[n]:.3f}/param)" for n, p, t in zip(names, params, total)))
    print('  each wider step: ' + ', '.join(f"{(t1 - t0) / (p1 - p0):.2f} bits per added param ({p0:,} -> {p1:,})"
                                            for p0, p1, t0, t1 in zip(params, params[1:], total, total[1:])))
