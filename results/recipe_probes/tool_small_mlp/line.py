"""The tool line of width 32 with a SwiGLU of hidden 32 (31,392 params) and 16,000 steps at every size, over the two
probes that hold its runs (this one: 8,000 trained people; ../tool_small_mlp_16k: 1,000-4,000), read two ways: ours
(sweep.smallest_reaching: each split's recall averaged over the seeds reaches 95%) and the reference's
(sweep.mean_of_seed_minima: each seed's smallest model at 95%, averaged over the seeds that have one). Reads the
committed results.csv files only. From the repository root:
    python results/recipe_probes/tool_small_mlp/line.py
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', '..'))
import sweep  # noqa: E402

STEPS = 16000   # the recipe: the same steps at every size


def load(probe):
    return [r for r in sweep.read_results(os.path.join(HERE, '..', probe, 'results.csv')) if r['steps'] == STEPS]


rows = load('tool_small_mlp') + load('tool_small_mlp_16k')
print(f"{len(rows)} runs of {STEPS:,} steps, seeds {sorted({r['seed'] for r in rows})}")
for facts in sorted({r['n_facts'] for r in rows}):
    seeds = sorted((r['seed'], r) for r in rows if r['n_facts'] == facts)
    mean = [sum(r[k] for _, r in seeds) / len(seeds) for k in ('recall_trained', 'recall_held_out', 'recall_unseen')]
    print(f"  {facts:,} facts: " + ', '.join(f"seed {s} {r['recall_trained']:.2%} / {r['recall_held_out']:.2%} / "
                                           f"{r['recall_unseen']:.2%}" for s, r in seeds) +
          f"; mean {mean[0]:.2%} / {mean[1]:.2%} / {mean[2]:.2%}")
print("ours (each split's mean over seeds >= 95%):",
      sweep.threshold_points(sweep.smallest_reaching(rows), 'transformer', True) or 'no fact count')
for name, trained_only in (("every split", False), ("the trained people alone", True)):
    ref = sweep.mean_of_seed_minima(sweep.smallest_by_seed(rows, trained_only=trained_only), rows, 'transformer', True)
    print(f"the reference's reading, {name}: " + sweep.describe_reading(ref))
