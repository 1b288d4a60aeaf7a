# Which recipe fills a small model fastest per exposure: width 24 (31,224 params) on 600 people (2,400 facts,
# 0.79 bits/param if all recalled), a 300-exposure cosine horizon (30,000 steps of 24 dialogs), the grid's recipe
# otherwise, one knob changed per run. From the repository root, two runs at once, one thread each:
#     python results/recipe_probes/fill_recipe/run_probes.py NAME [NAME]
import os
import subprocess
import sys

HERE = 'results/recipe_probes/fill_recipe'
N_PEOPLE, ROWS, EXPOSURES = 600, 24, 300
STEPS = EXPOSURES * 4 * N_PEOPLE // ROWS
BASE = dict(tool=False, mix_qa=1.0, mix_qa_tool=0.0, n_people=N_PEOPLE, held_out=0.0, n_unseen=10, one_per_row=True,
            n_layer=2, n_head=2, n_embd=24, block_size=256, batch_size=ROWS, max_iters=STEPS, warmup_iters=100,
            weight_decay=0.0, learning_rate=1e-2, min_lr=1e-3, eval_interval=STEPS // 10, stop_recall=0.98,
            eval_max=300, ckpt_interval=5000, threads=1)
B128 = dict(batch_size=128, max_iters=STEPS * ROWS // 128, eval_interval=STEPS * ROWS // 1280)   # same exposures
VARIANTS = {
    'lr0.01': {},
    'lr0.02': dict(learning_rate=2e-2, min_lr=2e-3),
    'wd0.1': dict(weight_decay=0.1),
    'min_lr0': dict(min_lr=0.0),
    'fan_in': dict(init='fan_in'),
    # the reference study's recipe (ambroiseodt/itl, apps/memory/config/fine_grid.yaml): 128 dialogs a step,
    # AdamW lr 1e-3 cosine to 0 after 50 warmup steps, weight decay 0.1, betas (0.9, 0.95), init N(0, 1/fan_in)
    'reference': B128 | dict(learning_rate=1e-3, min_lr=0.0, warmup_iters=50, weight_decay=0.1, beta2=0.95, init='fan_in'),
    # 128 dialogs a step, as configs/sweep_gpu.py: which peak learning rate (cosine to 0)
    'b128_lr0.01': B128 | dict(learning_rate=1e-2, min_lr=0.0),
    'b128_lr0.003': B128 | dict(learning_rate=3e-3, min_lr=0.0),
}
names = sys.argv[1:] or sys.exit(f"usage: run_probes.py NAME [NAME] (names: {', '.join(VARIANTS)})")
procs = []
for name in names:
    cfg = BASE | VARIANTS[name] | dict(out_dir=os.path.join(HERE, name))
    procs.append(subprocess.Popen([sys.executable, 'train.py', *[f'--{k}={v}' for k, v in cfg.items()]],
                                  stdout=subprocess.DEVNULL, stderr=open(os.path.join(HERE, f'{name}.log'), 'w')))
sys.exit(max(p.wait() for p in procs))
