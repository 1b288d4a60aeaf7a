"""The reference study's grid read by this repository's sweep.py, two ways: its own reading (each seed's smallest
model at 95%, averaged over the seeds that have one; the in-weight line fitted with an intercept through the extra
point (0, 0), as its apps/memory/plots/analysis.py does) and ours (the smallest model whose recall averaged over the
seeds reaches 95%; the line through the origin). Its grid evaluates the trained people only (accuracy_best: the best
of its evaluations), so both readings count the trained people here.
The data: results/grid4.csv of github.com/ambroiseodt/itl (2-layer models, widths 4-128, 10 data orders), not
copied into this repository. From the repository root:
    python results/reference/grid4_readings.py path/to/grid4.csv
"""
import csv
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
import sweep  # noqa: E402

if len(sys.argv) != 2 or not os.path.isfile(sys.argv[1]):
    sys.exit("usage: python results/reference/grid4_readings.py path/to/grid4.csv (ambroiseodt/itl, results/grid4.csv)")
rows = [dict(arch='transformer', tool=r['data.key'] == 'qatool', n_facts=4 * int(r['data.nb_data']),
             params=int(r['nb_params']), seed=int(r['data.seed']), recall_trained=float(r['accuracy_best']))
        for r in csv.DictReader(open(sys.argv[1]))]
print(f"{len(rows)} runs, {len({r['seed'] for r in rows})} seeds, {len({r['params'] for r in rows})} sizes, "
      f"{len({r['n_facts'] for r in rows})} fact counts")
for threshold in (0.95, 0.90):
    print(f"\nat {threshold:.0%} recall of the trained people")
    for tool in (False, True):
        name = 'with the tool' if tool else 'in weights'
        ref = sweep.mean_of_seed_minima(rows, 'transformer', tool, threshold, trained_only=True)
        ours = sweep.threshold_points(sweep.smallest_reaching(rows, threshold, trained_only=True), 'transformer', tool)
        print(f"  {name}, facts: reference's reading (seeds that have one) | ours")
        for facts in sorted({f for f, *_ in ref} | {f for f, _ in ours}):
            r = next((f"{p:>9,.0f} ({k} of {n})" for f, p, k, n in ref if f == facts), '-')
            o = next((f"{p:,}" for f, p in ours if f == facts), '-')
            print(f"    {facts:>7,}  {r:>18} | {o}")
        if not tool:
            (a, b), (k, r2, _) = sweep.fit_with_intercept(*zip(*[(f, p) for f, p, *_ in ref])), \
                sweep.fit_params_per_fact(*zip(*[(f, p) for f, p, *_ in ref]))
            print(f"  in weights, the reference's reading: its fit {a:.2f} x facts {b:+,.0f}; through the origin "
                  f"{k:.2f} params/fact (R^2 {r2:.3f}), {len(ref)} fact counts")
            (a, b), (k, r2, _) = sweep.fit_with_intercept(*zip(*ours)), sweep.fit_params_per_fact(*zip(*ours))
            print(f"  in weights, ours: through the origin {k:.2f} params/fact (R^2 {r2:.3f}); with an intercept "
                  f"{a:.2f} x facts {b:+,.0f}, {len(ours)} fact counts")
