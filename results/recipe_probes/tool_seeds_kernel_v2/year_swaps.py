"""How many of a tool run's misses on held-out people's birth dates are the year's last two digits swapped (1968 ->
1986): the one way the low seeds at 4,000 trained people fail. From the repository root, with run directories that
hold a checkpoint:
    python results/recipe_probes/tool_seeds_kernel_v2/year_swaps.py RUN_DIR ...
"""
import json
import os
import re
import sys

sys.path.insert(0, os.getcwd())
import data     # noqa: E402  (the repository root's modules)
import sample   # noqa: E402
from db import DB_FILE   # noqa: E402

N_QUESTIONS = 300   # held-out birth-date questions asked per run


def swapped(gold, answer):
    """The gold date's year with its last two (different) digits exchanged, found in the answer."""
    y = re.search(r'\b(\d\d)(\d)(\d)$', gold)
    return bool(y) and y[2] != y[3] and (gold[:y.start()] + y[1] + y[3] + y[2]) in answer


def main(runs):
    print(f"{'run':58s} {'recall (trained / held out / unseen)':>38s} {'birth-date misses':>18s} {'year swapped':>13s}")
    for run in runs:
        model, cfg = sample.load(run)
        data_dir = data.dir_of(cfg)
        docs = [d for d in sample.eval_docs(data_dir, True)['held_out'] if d['attribute'] == 'birth_date'][:N_QUESTIONS]
        answers = sample.answer(model, [d['messages'][0]['content'] for d in docs], tool=True,
                                db_path=os.path.join(data_dir, DB_FILE))
        misses = [(d['answer'], a['answer']) for d, a in zip(docs, answers) if not sample.is_right(a['answer'], d['answer'])]
        rec = json.load(open(os.path.join(run, 'results.json')))['recall']
        print(f"{run[-58:]:58s} {' / '.join(f'{100 * rec[k]:.2f}' for k in ('trained', 'held_out', 'unseen')):>38s} "
              f"{len(misses):>8d} of {len(docs):<7d} {sum(swapped(g, a) for g, a in misses):>13d}")


if __name__ == '__main__':
    main(sys.argv[1:])
