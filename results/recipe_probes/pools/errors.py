# What a run's wrong answers are, and how many bits of the facts it holds. For each run directory given (its newest
# checkpoint): greedy answers to 1,000 trained questions (a fixed sample), each right; wrong but another value of the
# attribute's pool (confused); a value no pool holds (garbled); or wrong before the value (prefix). Then, over every
# trained fact, sample.value_bits: the bits of the gold value the model lacks (teacher-forced) against the
# log2(pool size) bits the fact carries, and the bits held per parameter.
#     python results/recipe_probes/pools/errors.py results/recipe_probes/pools/NAME ... >> results/recipe_probes/pools/errors.txt
import os
import sys

import numpy as np

sys.path.insert(0, os.getcwd())
import data     # noqa: E402  (run from the repository root)
import sample   # noqa: E402

for out_dir in sys.argv[1:]:
    model, cfg = sample.load(out_dir)
    d = data.dir_of(cfg)
    meta = data.load_meta(d)
    pools = data.build_pools(meta['options'])
    docs = sample.eval_docs(d, False, 1000)['train']
    kinds = dict.fromkeys(('right', 'confused', 'garbled', 'prefix'), 0)
    for x, a in zip(docs, sample.answer(model, [x['messages'][0]['content'] for x in docs])):
        gold, said = x['answer'], a['answer'].rstrip()
        prefix = x['messages'][1]['content'][:-len(gold)]
        kinds['right' if sample.is_right(said, gold) else 'prefix' if not said.startswith(prefix) else
              'confused' if said[len(prefix):] in set(pools[data.attribute_pool(x['attribute'])]) else 'garbled'] += 1
    bits = sample.value_bits(model, sample.eval_docs(d, False)['train'], meta['bits_per_fact'])
    n_facts = meta['splits']['train'] * len(meta['attributes'])
    carried = float(np.mean(list(meta['bits_per_fact'].values())))
    print(f"{os.path.normpath(out_dir)}: {model.num_params():,} params, {n_facts:,} facts of {carried:.2f} bits "
          f"({n_facts * carried / model.num_params():.2f} bits/param if all held)")
    print('  1,000 trained questions: ' + ', '.join(f"{k} {v / len(docs):.1%}" for k, v in kinds.items()))
    print(f"  all trained facts, teacher-forced: {bits['lacking']:.2f} bits lacking per fact, {bits['held']:.2f} held; "
          f"{bits['held'] * n_facts / model.num_params():.3f} bits held per parameter")
