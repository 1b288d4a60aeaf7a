"""
The capacity experiment: a grid of training runs (width x people x tool x arch x seed), collected into
one CSV and three plots.

    python sweep.py configs/sweep_cpu.py                         # runs the grid, then plots
    python sweep.py configs/sweep_gpu.py --launcher=slurm --partition=gpu --gpus=1 --timeout_min=120
    python sweep.py configs/sweep_cpu.py --plot_only=True        # only collect + plot

A sweep config is a Python file defining `grid` (dict of lists of train.py keys, or a list of such
dicts whose union is run; a `tool` axis also switches the training mix between mix_qa and
mix_qa_tool), `base` (dict of train.py keys common to all runs) and `out_root`, and optionally `options`
(its defaults of the sweep options below, e.g. its launcher); --key=value overrides those.
Runs whose results.json exists are skipped, so a killed sweep resumes. Launchers: 'inprocess'
(train.train in this process), 'local' (submitit's local executor: a process per run) and
'slurm' (a SLURM job per run through submitit). The 95% thresholds average a size's recall over its seeds,
never over runs that differ in another training option (results.csv's `variant` column names it); fits.json also
holds the reference's reading of seeds (each seed's smallest model at 95%, averaged: 'reference_rule').
"""
import ast
import csv
import itertools
import json
import math
import os
import sys
import time

import matplotlib
matplotlib.use('Agg')  # files only, no screen
import matplotlib.pyplot as plt
import submitit
from tqdm import tqdm

import data
import train

SWEEP_DEFAULTS = dict(launcher='inprocess', partition='', gpus=1, cpus=2, timeout_min=60, max_parallel=1,
                      plot_only=False)
COLUMNS = ['arch', 'tool', 'n_people', 'n_facts', 'params', 'n_layer', 'n_embd', 'seed', 'variant', 'recall_trained',
           'recall_held_out', 'recall_unseen', 'facts_recalled', 'bits_per_fact', 'bits_per_param',
           'bits_held_per_param', 'exposures_per_fact', 'steps', 'stop_reason', 'tokens_seen', 'wall_seconds', 'eval_seconds',
           'out_dir']
# The reference study (ambroiseodt/itl, results/grid4.csv, its own 95% analysis): in weights, 8.14 parameters
# per fact at 95% recall; with the tool, the smallest model at 95% is 22-32K parameters for every N >= 512.
REFERENCE_PARAMS_PER_FACT = 8.14
REFERENCE_TOOL_PARAMS = (22_000, 32_000)


def load_sweep(argv):
    if not argv or not argv[0].endswith('.py'):
        sys.exit("usage: python sweep.py configs/sweep_cpu.py [--key=value ...]")
    if not os.path.exists(argv[0]):
        sys.exit(f"error: sweep config {argv[0]!r} not found")
    scope = {'__file__': argv[0]}   # a sweep config may build on a sibling (configs/sweep_cpu_lr.py)
    exec(open(argv[0]).read(), scope)
    for key in ('grid', 'base', 'out_root'):
        if key not in scope:
            sys.exit(f"error: {argv[0]} must define {key!r}")
    opts = dict(SWEEP_DEFAULTS)
    for key, value in scope.get('options', {}).items():   # a sweep config's own defaults, e.g. its launcher
        if key not in opts or type(value) is not type(SWEEP_DEFAULTS[key]):
            sys.exit(f"error: sweep option {key!r} in {argv[0]}'s options is unknown or not a "
                     f"{type(SWEEP_DEFAULTS.get(key)).__name__}")
        opts[key] = value
    for arg in argv[1:]:
        key, eq, text = arg.lstrip('-').partition('=')
        if key not in opts or not eq:
            sys.exit(f"error: unknown sweep option {arg!r} (known: {', '.join(opts)})")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        if type(SWEEP_DEFAULTS[key]) is str:
            value = text
        if type(value) is not type(SWEEP_DEFAULTS[key]):
            sys.exit(f"error: sweep option {key!r} must be {type(SWEEP_DEFAULTS[key]).__name__}, got {text!r}")
        opts[key] = value
    check_sweep(argv[0], scope['grid'], scope['base'], scope['out_root'], opts)
    return scope['grid'], scope['base'], scope['out_root'], opts


LAUNCHERS = ('inprocess', 'local', 'slurm')


def check_sweep(path, grid, base, out_root, opts):
    """Exit with a one-line error naming the first option or config value that cannot work, before anything
    runs or is written: every grid point's config goes through train.py's checks (get_config)."""
    for key, ok, allowed in [('launcher', lambda v: v in LAUNCHERS, f"one of {LAUNCHERS}"),
                             ('gpus', lambda v: v >= 0, ">= 0"), ('cpus', lambda v: v > 0, "> 0"),
                             ('timeout_min', lambda v: v > 0, "> 0"), ('max_parallel', lambda v: v > 0, "> 0")]:
        if not ok(opts[key]):
            sys.exit(f"error: sweep option {key!r} must be {allowed}, got {opts[key]!r}")
    subs = [grid] if isinstance(grid, dict) else grid
    if not isinstance(subs, list) or not subs or not all(
            isinstance(g, dict) and all(isinstance(v, list) and v for v in g.values()) for g in subs):
        sys.exit(f"error: 'grid' in {path} must be a dict of non-empty lists (or a list of such dicts)")
    if not isinstance(base, dict):
        sys.exit(f"error: 'base' in {path} must be a dict of train.py keys, got {type(base).__name__}")
    if 'out_dir' in base or any('out_dir' in g for g in subs):
        sys.exit(f"error: 'out_dir' in {path}'s grid or base: each run's is out_root/<run name>")
    problem = data.dir_problem(out_root) if isinstance(out_root, str) else "must be a str"
    if problem:
        sys.exit(f"error: 'out_root' in {path} ({out_root!r}) {problem}")
    for name, argv in runs(grid, base, out_root):   # a SLURM job's GPU is checked on its node, not here
        try:
            train.get_config(argv, now=opts['launcher'] != 'slurm')
        except SystemExit as e:
            sys.exit(f"{e.code} (sweep run {name!r} of {path})")


NAMING = ('arch', 'tool', 'n_people', 'n_embd', 'seed')   # keys that always name a run


def runs(grid, base, out_root):
    """Every combination of the grid (a dict of lists, or a list of such dicts: their union)
    -> (name, train.py argv)."""
    seen = set()
    for sub in [grid] if isinstance(grid, dict) else grid:
        for name, argv in _runs(sub, base, out_root):
            if name in seen:
                sys.exit(f"error: two runs of the grid would share the out_dir name {name!r}: give them an axis of "
                         f"their own ({', '.join(NAMING)} always name a run)")
            seen.add(name)
            yield name, argv


def _runs(grid, base, out_root):
    keys = list(grid)
    for values in itertools.product(*(grid[k] for k in keys)):
        point = dict(zip(keys, values))
        # a run is named by the axes that vary in this sub-grid (or its whole point if none does)
        name = '_'.join(f'{k}{v}' for k, v in point.items() if len(grid[k]) > 1 or k in NAMING) or 'run'
        cfg = {**base, **point, 'out_dir': os.path.join(out_root, name)}
        if 'tool' in point:  # the tool axis also sets what is trained on: QA through SQL, or from the weights
            cfg.update(mix_qa=0.0 if point['tool'] else 1.0, mix_qa_tool=1.0 if point['tool'] else 0.0)
        yield name, [f'--{k}={v}' for k, v in cfg.items()]


def run_one(argv):
    """One training run (in this process, a submitit worker or a SLURM job)."""
    return train.train(train.get_config(argv))


def collect(out_root):
    """Every finished run under out_root -> rows of COLUMNS, also written to out_root/results.csv."""
    rows, configs = [], []
    for name in sorted(os.listdir(out_root)) if os.path.isdir(out_root) else []:
        path = os.path.join(out_root, name, 'results.json')
        if not os.path.exists(path):
            continue
        r = json.load(open(path))
        cfg = json.load(open(os.path.join(out_root, name, 'config.json')))
        configs.append({**train.DEFAULTS, **cfg})
        rows.append({'arch': r['arch'], 'tool': r['tool'], 'n_people': r['n_people'], 'n_facts': r['n_facts'],
                     'params': r['params'], 'n_layer': cfg['n_layer'], 'n_embd': cfg['n_embd'], 'seed': r['seed'],
                     'recall_trained': r['recall']['trained'], 'recall_held_out': r['recall']['held_out'],
                     'recall_unseen': r['recall']['unseen'], 'facts_recalled': r['facts_recalled'],
                     'bits_per_fact': r['bits_per_fact'], 'bits_per_param': r['bits_per_param'],
                     'bits_held_per_param': r.get('bits_held_per_param'),   # None: a run older than the count
                     'exposures_per_fact': r.get('exposures_per_fact'), 'steps': r.get('steps'),
                     'stop_reason': r.get('stop_reason'), 'tokens_seen': r['tokens_seen'], 'wall_seconds': round(r['wall_seconds'], 1),
                     'eval_seconds': round(r['eval_seconds'], 1) if 'eval_seconds' in r else None,
                     'out_dir': os.path.join(out_root, name)})
    mark_variants(rows, configs)
    with open(os.path.join(out_root, 'results.csv'), 'w', newline='') as f:
        w = csv.DictWriter(f, COLUMNS)
        w.writeheader()
        w.writerows(rows)
    return rows


def read_results(path):
    """A results.csv that collect wrote -> its rows, the values typed again (True, 4000, 0.95; an empty cell: None)."""
    def typed(text):
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text or None
    return [{k: typed(v) for k, v in row.items()} for row in csv.DictReader(open(path))]


def model_size(row):
    """The point of the grid a run stands for, seeds and recipes aside: (arch, tool, n_facts, params)."""
    return row['arch'], row['tool'], row['n_facts'], row['params']


BOOKKEEPING = {'out_dir', 'seed', 'threads', 'device', 'ckpt_interval', 'log_interval', 'eval_batch'}  # not the recipe


def mark_variants(rows, configs):
    """Set each row's 'variant' to the training options (train.DEFAULTS' keys, seed and bookkeeping aside) in which
    runs of the same (arch, tool, n_facts, params) differ, e.g. 'n_head=4' ('' where they differ in nothing), so
    that smallest_reaching averages seeds of one recipe only, never two recipes as if they were seeds."""
    groups = {}
    for row, cfg in zip(rows, configs):
        groups.setdefault(model_size(row), []).append((row, cfg))
    for members in groups.values():
        keys = [k for k in train.DEFAULTS if k not in BOOKKEEPING and len({repr(c[k]) for _, c in members}) > 1]
        for row, cfg in members:
            row['variant'] = ' '.join(f'{k}={cfg[k]}' for k in keys)


FRACTION_EPS = 1e-6   # below one question in 10,000; above float32's rounding of a fraction near 0.95 (6e-8)


def smallest_reaching(rows, threshold=0.95, trained_only=False):
    """{(arch, tool, n_facts): smallest params whose recall, averaged over the seeds of one variant (a recipe, see
    mark_variants), reaches the threshold}: on the trained people in weights; with the tool on each of trained,
    held-out and unseen people (each split's mean over seeds; the worst of the three counts), or with trained_only
    on the trained people alone, as the reference's grid counts. Results written before 2026-12-07 hold float32
    fractions (380/400 as 0.94999999), hence the tolerance FRACTION_EPS."""
    groups = {}
    for r in rows:
        every = r['tool'] and not trained_only
        splits = ('recall_trained', 'recall_held_out', 'recall_unseen') if every else ('recall_trained',)
        groups.setdefault(model_size(r) + (r.get('variant', ''),), []).append([r.get(s) or 0 for s in splits])
    best = {}
    for (arch, tool, facts, params, _), recalls in groups.items():
        if min(sum(split) / len(split) for split in zip(*recalls)) >= threshold - FRACTION_EPS:
            key = (arch, tool, facts)
            best[key] = min(best.get(key, math.inf), params)
    return best


def fit_params_per_fact(facts, params):
    """Least-squares line through the origin, params = k * facts (k: parameters per fact), its R^2
    (1 - residual / total sum of squares about the mean), and the log-log slope (1 = linear growth,
    0 = constant)."""
    k = sum(f * p for f, p in zip(facts, params)) / sum(f * f for f in facts)
    mp = sum(params) / len(params)
    total = sum((p - mp) ** 2 for p in params)
    r2 = 1 - sum((p - k * f) ** 2 for f, p in zip(facts, params)) / total if total else float('nan')
    lx, ly = [math.log(f) for f in facts], [math.log(p) for p in params]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    var = sum((x - mx) ** 2 for x in lx)
    slope = sum((x - mx) * (y - my) for x, y in zip(lx, ly)) / var if var else float('nan')
    return k, r2, slope


def fit_with_intercept(facts, params):
    """The reference's line (ambroiseodt/itl, apps/memory/plots/analysis.py): least squares params = a * facts + b
    over the points and the point (0, 0) -> (a, b)."""
    x, y = [0, *facts], [0, *params]
    mx, my = sum(x) / len(x), sum(y) / len(y)
    a = sum((u - mx) * (v - my) for u, v in zip(x, y)) / sum((u - mx) ** 2 for u in x)
    return a, my - a * mx


def smallest_by_seed(rows, threshold=0.95, trained_only=False):
    """{seed: smallest_reaching over that seed's runs alone}."""
    return {seed: smallest_reaching([r for r in rows if r.get('seed', 0) == seed], threshold, trained_only)
            for seed in sorted({r.get('seed', 0) for r in rows})}


def mean_of_seed_minima(by_seed, rows, arch, tool):
    """The reference's reading of several seeds (its data orders): per fact count, each seed's smallest model at
    the threshold (by_seed: smallest_by_seed's dict), averaged over the seeds that have one; a seed with none is
    left out -> {'facts', 'mean_params', 'seeds_reaching', 'seeds_run' (seeds with a run at these facts)}: lists."""
    per_facts = {}
    for best in by_seed.values():
        for facts, params in threshold_points(best, arch, tool):
            per_facts.setdefault(facts, []).append(params)
    facts = sorted(per_facts)
    run = [len({r.get('seed', 0) for r in rows if (r['arch'], r['tool'], r['n_facts']) == (arch, tool, f)})
           for f in facts]
    return {'facts': facts, 'mean_params': [sum(per_facts[f]) / len(per_facts[f]) for f in facts],
            'seeds_reaching': [len(per_facts[f]) for f in facts], 'seeds_run': run}


def describe_reading(ref):
    """One line of a mean_of_seed_minima reading: '8,000 facts 31,224 (4 of 5 seeds), ...'."""
    return ', '.join(f"{f:,} facts {p:,.0f} ({k} of {n} seeds)" for f, p, k, n in
                     zip(ref['facts'], ref['mean_params'], ref['seeds_reaching'], ref['seeds_run']))


def threshold_points(best, arch, tool):
    """[(facts, smallest params at 95%)] of one (arch, tool) from smallest_reaching's dict, by facts."""
    return sorted((f, p) for (a, t, f), p in best.items() if a == arch and t == tool)


def line_label(arch, tool):
    return f"{arch}, {'tool' if tool else 'no tool'}"


def fit_lines(rows):
    """{'<arch>, no tool' / '<arch>, tool': fit} over the smallest models at 95% (>= 2 fact counts): in weights the
    params per fact through the origin, on the mean recall over seeds and, when there are several, for each seed
    alone ('by_seed'; a seed that reaches 95% at fewer fact counts fits fewer points); with the tool the log-log
    slope (its claim is a flat line). With several seeds also 'reference_rule': the reference's reading, each
    seed's smallest model averaged over the seeds that have one (mean_of_seed_minima), with its fit (through
    (0, 0) as an extra point, with an intercept) and ours (through the origin) on those means."""
    fits, bits = {}, sum(r['bits_per_fact'] for r in rows) / max(1, len(rows))
    best = smallest_reaching(rows)
    several = len({r.get('seed', 0) for r in rows}) > 1
    best_of_seed = smallest_by_seed(rows) if several else {}
    trained_of_seed = smallest_by_seed(rows, trained_only=True) if several else {}
    for arch in sorted({r['arch'] for r in rows}):
        for tool in (False, True):
            pts, entry = threshold_points(best, arch, tool), {}
            if len(pts) >= 2:
                facts, params = zip(*pts)
                k, r2, slope = fit_params_per_fact(facts, params)
                entry = {'loglog_slope': slope, 'facts': list(facts), 'params': list(params)}
            if len(pts) >= 2 and not tool:
                entry |= {'params_per_fact': k, 'r2': r2, 'bits_per_param_of_fit': bits / k}
                if best_of_seed:
                    entry['by_seed'] = {}
                for seed, seed_best in best_of_seed.items():
                    one = threshold_points(seed_best, arch, tool)
                    if len(one) >= 2:
                        seed_k, seed_r2, _ = fit_params_per_fact(*zip(*one))
                        entry['by_seed'][seed] = {'params_per_fact': seed_k, 'r2': seed_r2,
                                                  'facts': [f for f, _ in one], 'params': [p for _, p in one]}
            ref = mean_of_seed_minima(best_of_seed, rows, arch, tool)
            if ref['facts']:
                if tool:   # the reference's grid counts the trained people alone
                    ref['trained_only'] = mean_of_seed_minima(trained_of_seed, rows, arch, tool)
                elif len(ref['facts']) >= 2:
                    a, b = fit_with_intercept(ref['facts'], ref['mean_params'])
                    k, r2, _ = fit_params_per_fact(ref['facts'], ref['mean_params'])
                    ref |= {'slope_with_intercept': a, 'intercept': b, 'params_per_fact': k, 'r2': r2}
                entry['reference_rule'] = ref
            if entry:
                fits[line_label(arch, tool)] = entry
    return fits


def exposure_curve(out_dir, results, held=False):
    """(exposures per fact, bits stored per parameter) at each evaluation of one in-weight run, from its
    metrics.jsonl: recall on (a sample of) the trained facts x facts x bits per fact / parameters; held: the
    bits counted from the loss instead (train.py's bits_held_per_param; runs before 2026-12-06 lack it)."""
    pts = []
    for line in open(os.path.join(out_dir, 'metrics.jsonl')):
        row = json.loads(line)
        if held and 'bits_held_per_param' in row:
            pts.append((row['exposures_per_fact'], row['bits_held_per_param']))
        elif not held and 'exposures_per_fact' in row and row.get('recall', {}).get('train') is not None:
            bits = row['recall']['train'] * results['n_facts'] * results['bits_per_fact'] / results['params']
            pts.append((row['exposures_per_fact'], bits))
    return pts


def plot(rows, out_root):
    archs = sorted({r['arch'] for r in rows})
    # (1) recall against parameters, one curve per number of facts; tool and no tool side by side
    fig, axes = plt.subplots(len(archs), 2, figsize=(11, 4 * len(archs)), squeeze=False)
    for i, arch in enumerate(archs):
        for j, tool in enumerate((False, True)):
            ax = axes[i][j]
            for facts in sorted({r['n_facts'] for r in rows}):
                pts = {}
                for r in rows:
                    if r['arch'] == arch and r['tool'] == tool and r['n_facts'] == facts:
                        pts.setdefault(r['params'], []).append(r['recall_trained'] or 0)
                if pts:
                    xs = sorted(pts)
                    ax.plot(xs, [sum(pts[x]) / len(pts[x]) for x in xs], marker='o', label=f'{facts} facts')
            title = f"{arch}, {'with the SQL tool' if tool else 'in weights (no tool)'}"
            if not ax.lines:  # this (arch, tool) pair is not in the grid
                ax.set_title(title + ': not in this grid')
                ax.axis('off')
                continue
            ax.set(xscale='log', xlabel='parameters', ylabel='recall (trained people)', ylim=(-0.02, 1.02), title=title)
            ax.axhline(0.95, color='gray', lw=0.5, ls='--')
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out_root, 'recall_vs_params.png'), dpi=100)
    plt.close(fig)
    # (2) the smallest model reaching 95% against the number of facts, log-log, with the linear fit
    best, fits = smallest_reaching(rows), fit_lines(rows)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for arch in archs:
        for tool in (False, True):
            pts = threshold_points(best, arch, tool)
            if not pts:
                continue
            line = ax.plot(*zip(*pts), marker='o', label=line_label(arch, tool))[0]
            fit = fits.get(line_label(arch, tool), {})
            if 'params_per_fact' in fit:
                k, f = fit['params_per_fact'], [x for x, _ in pts]
                ax.plot(f, [k * x for x in f], ls=':', color=line.get_color(),
                        label=f"  fit: {k:.1f} params/fact (R$^2$ {fit['r2']:.2f}), log-log slope {fit['loglog_slope']:.2f}")
    if best:
        f = sorted({facts for (_, _, facts) in best})
        ax.plot(f, [REFERENCE_PARAMS_PER_FACT * x for x in f], color='gray', ls='--', lw=0.8,
                label=f'reference, in weights: {REFERENCE_PARAMS_PER_FACT} params/fact')
        ax.axhspan(*REFERENCE_TOOL_PARAMS, color='gray', alpha=0.15, label='reference, tool: 22-32K params')
    ax.set(xscale='log', yscale='log', xlabel='facts', ylabel='smallest model at >= 95% recall (params)')
    if fits or best:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out_root, 'params_for_95.png'), dpi=100)
    plt.close(fig)
    # (3) bits stored per parameter against exposures per fact, one curve per in-weight run (its evaluations)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for r in rows:
        if r['tool']:
            continue
        results = json.load(open(os.path.join(r['out_dir'], 'results.json')))
        pts = exposure_curve(r['out_dir'], results)
        if pts:
            line = ax.plot(*zip(*pts), marker='.', lw=0.8, label=f"{r['arch']} {r['params'] / 1e3:.1f}K, {r['n_facts']} facts")[0]
            held = exposure_curve(r['out_dir'], results, held=True)
            if held:   # dashed: the same run's bits counted from the loss
                ax.plot(*zip(*held), ls='--', lw=0.8, color=line.get_color())
        elif r['exposures_per_fact']:
            ax.scatter([r['exposures_per_fact']], [r['bits_per_param']], s=12)
    for bits in (1.0, 2.0):
        ax.axhline(bits, color='gray', ls='--', lw=0.8)
    ax.text(0.01, 2.0, '2 bits/param (Allen-Zhu & Li 2024)', fontsize=7, va='bottom', transform=ax.get_yaxis_transform())
    ax.set(xscale='log', xlabel='exposures per fact',
           ylabel='bits per parameter (in weights): recalled, -- held (loss)')
    ax.set_ylim(bottom=-0.05)
    if ax.get_legend_handles_labels()[0]:   # the 1- and 2-bit marks are lines without labels
        ax.legend(fontsize=6, loc='center left')
    fig.tight_layout()
    fig.savefig(os.path.join(out_root, 'bits_per_param.png'), dpi=100)
    plt.close(fig)
    with open(os.path.join(out_root, 'fits.json'), 'w') as f:
        json.dump(fits, f, indent=1)
    return fits


def launch(todo, opts, out_root):
    """Run the missing runs with the chosen launcher; -> number run."""
    if opts['launcher'] == 'inprocess':
        for name, argv in tqdm(todo, desc='sweep', unit='run'):
            run_one(argv)
        return len(todo)
    if opts['launcher'] == 'local':
        ex = submitit.LocalExecutor(folder=os.path.join(out_root, 'submitit'))
    elif opts['launcher'] == 'slurm':
        ex = submitit.AutoExecutor(folder=os.path.join(out_root, 'submitit'))
        ex.update_parameters(slurm_partition=opts['partition'] or None, gpus_per_node=opts['gpus'],
                             tasks_per_node=1, cpus_per_task=opts['cpus'])
    else:
        sys.exit(f"error: unknown launcher {opts['launcher']!r} (inprocess, local, slurm)")
    ex.update_parameters(timeout_min=opts['timeout_min'])
    pending, running = [argv for _, argv in todo], []
    with tqdm(total=len(todo), desc='sweep', unit='run') as bar:
        while pending or running:
            while pending and len(running) < opts['max_parallel']:   # keep max_parallel runs going, no more
                running.append(ex.submit(run_one, pending.pop(0)))
            for job in [j for j in running if j.done()]:
                job.result()  # raises if the run failed, with its log
                running.remove(job)
                bar.update(1)
            time.sleep(1)
    return len(todo)


# a finished run may differ from the grid's in where it wrote and how fast it ran, not in how long it trained
FINISHED_MAY_DIFFER = train.RESUMABLE - {'max_iters', 'max_exposures'}


def stale(out_root, name, argv):
    """(key, finished value, asked value) where a finished run's config.json differs from what the grid now asks
    for it, or None: a skipped run must be the run the grid names, not an older recipe under the same name."""
    saved = json.load(open(os.path.join(out_root, name, 'config.json')))
    want = train.get_config(argv, now=False)
    k = train.resume_mismatch(saved, want, FINISHED_MAY_DIFFER)
    return None if k is None else (k, saved.get(k, train.KEYS.get(k)), want.get(k, train.KEYS.get(k)))


def main(argv):
    grid, base, out_root, opts = load_sweep(argv)
    every = list(runs(grid, base, out_root))
    finished = {n for n, _ in every if os.path.exists(os.path.join(out_root, n, 'results.json'))}
    todo = [(n, a) for n, a in every if n not in finished]
    for name, argv_run in every:
        old = name in finished and stale(out_root, name, argv_run)
        if old:
            sys.exit(f"error: {os.path.join(out_root, name)} finished with {old[0]}={old[1]!r} but {argv[0]} now asks "
                     f"{old[2]!r}: move that run away or give the new one an axis of its own")
    if opts['plot_only'] and len(todo) == len(every):
        sys.exit(f"error: sweep option 'plot_only' is True but no run under {out_root} has finished (nothing to plot)")
    os.makedirs(out_root, exist_ok=True)
    print(f"{len(every)} runs in the grid, {len(every) - len(todo)} done, {len(todo)} to run ({opts['launcher']})")
    if not opts['plot_only'] and todo:
        launch(todo, opts, out_root)
    rows = collect(out_root)
    fits = plot(rows, out_root)
    print(f"{len(rows)} runs -> {out_root}/results.csv, recall_vs_params.png, params_for_95.png, bits_per_param.png")
    for label, f in fits.items():
        if 'params_per_fact' in f:
            print(f"  {label}: {f['params_per_fact']:.1f} params per fact (R^2 {f['r2']:.2f}, "
                  f"{f['bits_per_param_of_fit']:.2f} bits/param), log-log slope {f['loglog_slope']:.2f}")
            for seed, s in f.get('by_seed', {}).items():
                print(f"    seed {seed} alone: {s['params_per_fact']:.1f} params per fact (R^2 {s['r2']:.2f}) over "
                      f"{len(s['facts'])} fact counts")
        elif 'params' in f:
            print(f"  {label}: smallest at 95% {min(f['params']):,}-{max(f['params']):,} params over "
                  f"{f['facts'][0]:,}-{f['facts'][-1]:,} facts, log-log slope {f['loglog_slope']:.2f} (0: flat)")
        else:
            print(f"  {label}: no model reaches 95% on the seeds' mean at two fact counts")
        ref = f.get('reference_rule')
        if ref:
            print("    the reference's reading (each seed's smallest at 95%, averaged over the seeds that have one): " +
                  describe_reading(ref))
            if ref.get('trained_only', {}).get('facts'):
                print("      on the trained people alone (the reference's count): " + describe_reading(ref['trained_only']))
            if 'slope_with_intercept' in ref:
                print(f"      {ref['params_per_fact']:.1f} params per fact (R^2 {ref['r2']:.2f}); the reference's fit "
                      f"{ref['slope_with_intercept']:.1f} x facts {ref['intercept']:+,.0f}")

if __name__ == '__main__':
    main(sys.argv[1:])
