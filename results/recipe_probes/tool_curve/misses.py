"""Where the held-out and unseen misses of the tool runs fall: on people whose name holds a byte pair that no
trained dialog holds, on names of three words or more (the rest: two words, known pairs), and whether the name was
copied wrong into the SQL or the result copied wrong into the answer. From the repository root, after the sweep (it
reads each run's last checkpoint):
    python results/recipe_probes/tool_curve/misses.py [run_dir ...]
"""
import functools
import glob
import os
import sys

sys.path.insert(0, os.getcwd())
import data     # noqa: E402  (the repository root's modules)
import sample   # noqa: E402
from db import DB_FILE   # noqa: E402


def pairs(text):
    b = text.encode()
    return set(zip(b, b[1:]))


@functools.lru_cache
def read_data(data_dir):
    """-> ({id: person}, the byte pairs of every trained dialog, {split: QA documents}) of one data directory."""
    people = {p['id']: p for p in data.read_jsonl(os.path.join(data_dir, data.FILES['people']))}
    trained = set()
    for d in data.read_jsonl(os.path.join(data_dir, data.FILES['qa_tool'])):
        if d['split'] == 'train':
            for m in d['messages']:
                trained |= pairs(m['content'])
    return people, trained, sample.eval_docs(data_dir, True)


def main(run_dirs):
    print(f"{'seed':<5} {'split':<9} {'new pair':>14} {'3+ words':>14} {'the rest':>14} {'name in SQL':>12} {'value copy':>11}")
    for run in run_dirs:
        model, cfg = sample.load(run)
        data_dir = data.dir_of(cfg)
        people, trained, docs = read_data(data_dir)
        for split in ('held_out', 'unseen'):
            qs = docs[split]
            answers = sample.answer(model, [d['messages'][0]['content'] for d in qs], tool=True,
                                    db_path=os.path.join(data_dir, DB_FILE))
            tally = {kind: [0, 0] for kind in ('new pair', '3+ words', 'the rest')}   # -> [questions, misses]
            wrong_sql = wrong_value = 0
            for d, a in zip(qs, answers):
                name = people[d['id']]['name']
                kind = 'new pair' if pairs(name) - trained else '3+ words' if len(name.split()) > 2 else 'the rest'
                miss = not sample.is_right(a['answer'], d['answer'])
                tally[kind][0] += 1
                tally[kind][1] += miss
                if miss and a['sql'] != data.sql_for(d['attribute'], name):
                    wrong_sql += 1
                elif miss:
                    wrong_value += 1
            cells = [f"{m}/{n} ({100 * m / max(1, n):.0f}%)" for n, m in tally.values()]
            print(f"{cfg['seed']:<5} {split:<9} " + ' '.join(f"{c:>14}" for c in cells) + f" {wrong_sql:>12} {wrong_value:>11}")


if __name__ == '__main__':
    main(sys.argv[1:] or sorted(glob.glob('results/recipe_probes/tool_curve/arch*')))
