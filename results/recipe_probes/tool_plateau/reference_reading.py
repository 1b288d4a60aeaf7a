"""The tool line of width 24 with one head (31,224 params) read two ways, over the five seeds of
../tool_w24_1head_16k, ../tool_w24_1head_24k and ../tool_w24_1head_seeds (steps grown with the people: 16,000 /
24,000 / 48,000 at 2,000 / 4,000 / 8,000 trained people): ours (sweep.smallest_reaching: each split's recall averaged
over the seeds reaches 95%) and the reference's (sweep.mean_of_seed_minima: each seed's smallest model at 95%,
averaged over the seeds that have one; on every split, and on the trained people alone as its grid counts).
Then the reference's reading again with the smallest models found elsewhere for the seeds added (other recipes:
width 28 with one head and width 32 with two, 8,000 steps; ../tool_w28_1head, ../tool_w28_seeds, ../../sweep_cpu_seeds;
width 28 with one head at 16,000 steps, ../tool_w28_1head_grown).
Reads the committed results.csv files only. From the repository root:
    python results/recipe_probes/tool_plateau/reference_reading.py
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', '..'))
import sweep  # noqa: E402

RECIPE = {2500: 16000, 5000: 24000, 10000: 48000}   # n_people -> steps of this recipe


def load(probe, keep, variant=''):   # variant: another recipe, never averaged with this one's seeds
    return [r | {'variant': variant} for r in sweep.read_results(os.path.join(HERE, '..', probe, 'results.csv')) if keep(r)]


rows = [r for probe in ('tool_w24_1head_16k', 'tool_w24_1head_24k', 'tool_w24_1head_seeds')   # the same width at
        for r in load(probe, lambda r: RECIPE.get(r['n_people']) == r['steps'])]   # other steps: left out
elsewhere = (load('tool_w28_1head', lambda r: True, 'w28') + load('tool_w28_seeds', lambda r: r['variant'] == 'n_head=1', 'w28') +
             load('../sweep_cpu_seeds', lambda r: r['tool'], 'grid') +
             load('tool_w28_1head_grown', lambda r: True, 'w28 grown'))
print(f"{len(rows)} runs, seeds {sorted({r['seed'] for r in rows})}")
for facts in sorted({r['n_facts'] for r in rows}):
    seeds = {r['seed']: r for r in rows if r['n_facts'] == facts}
    print(f"  {facts:,} facts: " + ', '.join(f"seed {s} {r['recall_trained']:.1%} / {r['recall_held_out']:.1%} / "
                                           f"{r['recall_unseen']:.1%}" for s, r in sorted(seeds.items())))
print("ours (each split's mean over seeds >= 95%):",
      sweep.threshold_points(sweep.smallest_reaching(rows), 'transformer', True) or 'no fact count')
for found, runs in (("", rows), (", with the smallest found elsewhere", rows + elsewhere)):
    for name, trained_only in (("every split", False), ("the trained people alone", True)):
        ref = sweep.mean_of_seed_minima(sweep.smallest_by_seed(runs, trained_only=trained_only), runs, 'transformer', True)
        mine = [i for i, f in enumerate(ref['facts']) if f in (8000, 16000, 32000)]   # the grid's 4,000 facts aside
        print(f"the reference's reading{found}, {name}: " +
              sweep.describe_reading({k: [v[i] for i in mine] for k, v in ref.items()}))
