# The tool line below width 32: the CPU grid's tool recipe (its config.json: 8,000 steps of 32 dialogs, lr 3e-3
# cosine to 3e-4, weight decay 0.3) at widths 24 and 16. From the repository root, two runs at once, one thread
# each: python results/recipe_probes/tool_widths/run_probes.py [n_people ...] [--widths=24,16] [--steps=8000]
# (default: 1250 people, 1,000 trained; this directory's runs: the default, then 2500 5000 --widths=24, then
# 1250 2500 --widths=24 --steps=16000, then 5000 --widths=24 --steps=16000)
import json
import os
import subprocess
import sys

HERE = 'results/recipe_probes/tool_widths'
procs = []
opts = dict(a[2:].split('=', 1) for a in sys.argv[1:] if a.startswith('--'))
args = [a for a in sys.argv[1:] if not a.startswith('--')]
widths, steps = opts.get('widths', '24,16'), int(opts.get('steps', 8000))
for n_people in [int(a) for a in args] or [1250]:
    for width in map(int, widths.split(',')):
        cfg = json.load(open(f'results/sweep_cpu/archtransformer_n_people{n_people}_n_embd32_toolTrue/config.json'))
        name = f'w{width}_p{n_people}' + (f'_s{steps}' if steps != 8000 else '')
        cfg.update(n_embd=width, max_iters=steps, out_dir=os.path.join(HERE, name))
        procs.append(subprocess.Popen([sys.executable, 'train.py', *[f'--{k}={v}' for k, v in cfg.items()]],
                                      stdout=subprocess.DEVNULL))
sys.exit(max(p.wait() for p in procs))
