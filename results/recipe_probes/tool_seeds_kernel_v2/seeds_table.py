# Sixteen seeds of the grid's tool run at 4,000 trained people (width 32, 8,000 steps) with the evening's C++ step
# (b7677d0, as 7fb8798) and the afternoon's (cc88be9): recall per seed, means, spreads. From the repository root:
#   python results/recipe_probes/tool_seeds_kernel_v2/seeds_table.py
import json, math, statistics as st
R = 'results/recipe_probes/tool_seeds_kernel_v2'
RUN = 'archtransformer_n_people5000_n_embd32_toolTrue'

def path(code, s):
    if code == 'evening':
        return f'{R}/{RUN}_seed{s}/results.json' if s <= 2 else f'{R}/evening_step/seed{s}/results.json'
    return f'results/sweep_cpu_kernel/{RUN}/results.json' if s == 0 else f'{R}/afternoon_step/seed{s}/results.json'

def recall(code, s):
    r = json.load(open(path(code, s)))['recall']
    return [100 * r[k] for k in ('trained', 'held_out', 'unseen')]


def fisher_two_sided(a, n1, b, n2):
    """Fisher's exact test: a of n1 against b of n2 -> the two-sided p-value (tables as likely or less)."""
    k, n = a + b, n1 + n2
    prob = lambda x: math.comb(n1, x) * math.comb(n2, k - x) / math.comb(n, k)
    return sum(prob(x) for x in range(max(0, k - n2), min(k, n1) + 1) if prob(x) <= prob(a) * (1 + 1e-9))


codes = ('evening', 'afternoon')
SEEDS = range(16)
rows = {c: [recall(c, s) for s in SEEDS] for c in codes}
fmt = lambda xs: ' / '.join(f'{v:.2f}' for v in xs)
print('| seed | evening step (b7677d0) | afternoon step (cc88be9) |\n| ---: | --- | --- |')
for s in SEEDS:
    print(f'| {s} | ' + ' | '.join(fmt(rows[c][s]) for c in codes) + ' |')
for label, part in (('mean, seeds 0-2', slice(0, 3)), ('mean, seeds 3-15', slice(3, None)), ('**mean, seeds 0-15**', slice(0, None))):
    print(f'| {label} | ' + ' | '.join(fmt([st.mean(x[i] for x in rows[c][part]) for i in range(3)]) for c in codes) + ' |')
print('| standard deviation | ' + ' | '.join(fmt([st.stdev(x[i] for x in rows[c]) for i in range(3)]) for c in codes) + ' |')
passed = [sum(min(x) >= 95 for x in rows[c]) for c in codes]   # seeds >= 95% on every split
print('| seeds >= 95% on every split | ' + ' | '.join(f'{k} of {len(SEEDS)}' for k in passed) + ' |')
for i, split in enumerate(('trained', 'held out', 'unseen')):
    a, b = ([x[i] for x in rows[c]] for c in codes)
    t = (st.mean(b) - st.mean(a)) / math.sqrt(st.variance(a) / len(a) + st.variance(b) / len(b))
    print(f'{split}: afternoon - evening {st.mean(b) - st.mean(a):+.2f} points (Welch t {t:.2f})')


low = [len(SEEDS) - k for k in passed]
print(f'seeds under 95% on some split: {low[0]} of {len(SEEDS)} (evening) against {low[1]} of {len(SEEDS)} (afternoon), '
      f'Fisher exact p {fisher_two_sided(low[0], len(SEEDS), low[1], len(SEEDS)):.2f}')
