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
        ref = sweep.mean_of_seed_minima(sweep.smallest_by_seed(rows, threshold, trained_only=True), rows, 'transformer', tool)
        ours = dict(sweep.threshold_points(sweep.smallest_reaching(rows, threshold, trained_only=True), 'transformer', tool))
        theirs = {f: f"{p:>9,.0f} ({k} of {n})" for f, p, k, n in
                  zip(ref['facts'], ref['mean_params'], ref['seeds_reaching'], ref['seeds_run'])}
        print(f"  {name}, facts: reference's reading (seeds that have one) | ours")
        for facts in sorted(theirs.keys() | ours.keys()):
            print(f"    {facts:>7,}  {theirs.get(facts, '-'):>18} | {f'{ours[facts]:,}' if facts in ours else '-'}")
        if not tool:
            for reading, facts, params in (("the reference's reading", ref['facts'], ref['mean_params']),
                                           ("ours", sorted(ours), [ours[f] for f in sorted(ours)])):
                (a, b), (k, r2, _) = sweep.fit_with_intercept(facts, params), sweep.fit_params_per_fact(facts, params)
                print(f"  in weights, {reading}: with an intercept {a:.2f} x facts {b:+,.0f}; through the origin "
                      f"{k:.2f} params/fact (R^2 {r2:.3f}), {len(facts)} fact counts")
