"""The tool line of width 24 with one head (31,224 params) read two ways, over the five seeds of
../tool_w24_1head_16k, ../tool_w24_1head_24k and ../tool_w24_1head_seeds (steps grown with the people: 16,000 /
24,000 / 48,000 at 2,000 / 4,000 / 8,000 trained people): ours (sweep.smallest_reaching: each split's recall averaged
over the seeds reaches 95%) and the reference's (sweep.mean_of_seed_minima: each seed's smallest model at 95%,
averaged over the seeds that have one; on every split, and on the trained people alone as its grid counts).
Reads the committed results.csv files only. From the repository root:
    python results/recipe_probes/tool_plateau/reference_reading.py
"""
import csv
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', '..'))
import sweep  # noqa: E402

RECIPE = {2500: 16000, 5000: 24000, 10000: 48000}   # n_people -> steps of this recipe
rows = []
for probe in ('tool_w24_1head_16k', 'tool_w24_1head_24k', 'tool_w24_1head_seeds'):
    for r in csv.DictReader(open(os.path.join(HERE, '..', probe, 'results.csv'))):
        if RECIPE.get(int(r['n_people'])) != int(r['steps']):
            continue   # the same width at other step counts
        rows.append(dict(arch=r['arch'], tool=r['tool'] == 'True', n_facts=int(r['n_facts']), params=int(r['params']),
                         seed=int(r['seed']), recall_trained=float(r['recall_trained']),
                         recall_held_out=float(r['recall_held_out']), recall_unseen=float(r['recall_unseen'])))
print(f"{len(rows)} runs, seeds {sorted({r['seed'] for r in rows})}")
for facts in sorted({r['n_facts'] for r in rows}):
    seeds = {r['seed']: r for r in rows if r['n_facts'] == facts}
    print(f"  {facts:,} facts: " + ', '.join(f"seed {s} {r['recall_trained']:.1%} / {r['recall_held_out']:.1%} / "
                                           f"{r['recall_unseen']:.1%}" for s, r in sorted(seeds.items())))
print("ours (each split's mean over seeds >= 95%):",
      sweep.threshold_points(sweep.smallest_reaching(rows), 'transformer', True) or 'no fact count')
for name, trained_only in (("every split", False), ("the trained people alone", True)):
    pts = sweep.mean_of_seed_minima(rows, 'transformer', True, trained_only=trained_only)
    print(f"the reference's reading, {name}: " +
          ', '.join(f"{f:,} facts {p:,.0f} ({k} of {n} seeds)" for f, p, k, n in pts))
