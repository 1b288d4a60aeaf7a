"""Where a tool run's training loss sits: the mean loss of each part of the text the model writes, on trained
dialogs, from the run's last checkpoint. Parts: the SQL's fixed words, the name copied into the SQL, the name
copied into the answer, the value copied from the result, the answer's fixed words, and the end tokens; for the
copied parts also the first byte apart from the rest (a model can find where a span starts long before it can copy
it on). A model on the plateau that has not learned to copy shows it on the copied parts. From the repository root:
    python results/recipe_probes/tool_plateau/loss_parts.py run_dir [run_dir ...] [--n=400]
"""
import functools
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.getcwd())
import data     # noqa: E402  (the repository root's modules)
import sample   # noqa: E402

PARTS = ('sql words', 'sql name', 'answer name', 'answer value', 'answer words', 'end tokens')


def labelled(doc):
    """-> (token ids, part index per token or -1 where the model does not write)."""
    name, value = doc['name'], doc['answer']
    ids, part = [], []
    for m in doc['messages']:
        toks, _ = data.render([m])
        ids += toks
        if m['role'] in ('user', 'result'):
            part += [-1] * len(toks)
            continue
        text = m['content'].encode()
        lab = [0 if m['role'] == 'sql' else 4] * len(text)
        copies = [(name.encode(), 1 if m['role'] == 'sql' else 2)] + ([(value.encode(), 3)] if m['role'] != 'sql' else [])
        for s, k in copies:
            i = text.find(s)
            if i >= 0:
                lab[i:i + len(s)] = [k] * len(s)
        if m['role'] == 'sql':
            part += [0] + lab + [5]     # <|sql|> is the model's first token; <|/sql|> ends it
        else:
            part += lab + [5]           # ... and <|eot|>
    return ids, part


@functools.lru_cache
def trained_sample(data_dir, n):
    """-> n trained tool dialogs of a data folder (a fixed shuffle), each with its person's name; read once for all
    the runs that share the folder."""
    people = {p['id']: p['name'] for p in data.read_jsonl(os.path.join(data_dir, data.FILES['people']))}
    docs = [d for d in data.read_jsonl(os.path.join(data_dir, data.FILES['qa_tool'])) if d['split'] == 'train']
    return [{**docs[i], 'name': people[docs[i]['id']]} for i in np.random.default_rng(0).permutation(len(docs))[:n]]


def main(run_dirs, n=400):
    for run_dir in run_dirs:
        model, cfg = sample.load(run_dir)
        docs = trained_sample(data.dir_of(cfg), n)
        total, count = np.zeros(len(PARTS)), np.zeros(len(PARTS))
        first = np.zeros((len(PARTS), 2, 2))   # [part, first byte or the rest, (loss sum, count)]
        with torch.no_grad():
            for d in docs:
                ids, part = labelled(d)
                x = torch.tensor(ids)[None]
                loss = F.cross_entropy(model(x[:, :-1])[0], x[0, 1:], reduction='none').numpy()
                for j, (k, l) in enumerate(zip(part[1:], loss)):
                    if k >= 0:
                        total[k] += l
                        count[k] += 1
                        first[k, int(part[j] == k)] += (l, 1)   # part[j]: the part of the token before
        mean = total / np.maximum(count, 1)
        print(f"{run_dir.rstrip('/')}: loss over written tokens {total.sum() / count.sum():.3f}")
        for k, p in enumerate(PARTS):
            print(f"  {p:13s} {count[k] / len(docs):5.1f} tokens/dialog  mean loss {mean[k]:.3f}  "
                  f"share {total[k] / total.sum():5.1%}" +
                  (f"  (first byte {first[k, 0, 0] / first[k, 0, 1]:.3f}, the rest {first[k, 1, 0] / first[k, 1, 1]:.3f})"
                   if k in (1, 2, 3) else ''))


if __name__ == '__main__':
    args = [a for a in sys.argv[1:] if not a.startswith('--n=')]
    n = [int(a[4:]) for a in sys.argv[1:] if a.startswith('--n=')]
    if not args:
        sys.exit(__doc__)
    main(args, *n)
