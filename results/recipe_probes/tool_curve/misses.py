"""Where the held-out and unseen misses of the tool runs fall: on people whose name holds a byte pair that no
trained dialog holds, on names of three words or more (the rest: two words, known pairs), and whether the name was
copied wrong into the SQL or the result copied wrong into the answer. From the repository root, after the sweep (it
reads each run's last checkpoint):
    python results/recipe_probes/tool_curve/misses.py [run_dir ...]
"""
import glob
import os
import sys

sys.path.insert(0, os.getcwd())
import data     # noqa: E402  (the repository root's modules)
import sample   # noqa: E402

DATA_DIR = 'data/p1250_h0.2_u100_b1_s0'   # what train.py makes for n_people=1250, held_out=0.2, n_unseen=100


def pairs(text):
    b = text.encode()
    return set(zip(b, b[1:]))


def main(run_dirs):
    people = {p['id']: p for p in data.read_jsonl(os.path.join(DATA_DIR, 'people.jsonl'))}
    trained = set()
    for d in data.read_jsonl(os.path.join(DATA_DIR, data.FILES['qa_tool'])):
        if d['split'] == 'train':
            for m in d['messages']:
                trained |= pairs(m['content'])
    print(f"{'seed':<5} {'split':<9} {'new pair':>14} {'3+ words':>14} {'the rest':>14} {'name in SQL':>12} {'value copy':>11}")
    for run in run_dirs:
        model, cfg = sample.load(run)
        docs = sample.eval_docs(DATA_DIR, True)
        for split in ('held_out', 'unseen'):
            qs = docs[split]
            answers = sample.answer(model, [d['messages'][0]['content'] for d in qs], tool=True,
                                    db_path=os.path.join(DATA_DIR, 'people.db'))
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
