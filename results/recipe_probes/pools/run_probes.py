# Is it the data? Width 32 (49,824 params) at the same load in bits (0.8 bits/param if all recalled) and the same
# exposures per fact (390; 800 in the third pair), on the default pools and on pools shaped like the reference
# study's (200 cities, 100 occupations, en_US names from 432 first x 500 last), then with only one of the two halves
# small. From the repository root, two runs at once, one thread each (~25 min a pair at 390 exposures):
#     python results/recipe_probes/pools/run_probes.py default_pools small_pools
#     python results/recipe_probes/pools/run_probes.py small_values small_names
#     python results/recipe_probes/pools/run_probes.py default_pools_800 small_pools_800
#     python results/recipe_probes/pools/run_probes.py default_pools_ref small_pools_ref
# and the widths on the default pools, same load and exposures (does a larger model pay the pools' cost off?):
#     python results/recipe_probes/pools/run_probes.py w48_default_pools w24_default_pools   (then w40_default_pools)
#     python results/recipe_probes/pools/run_probes.py w48_small_pools w40_small_pools
# and width 64 alone on both cores, compiled (torch.compile: ~1.4x here at this width, floats not bit-equal to eager):
#     python results/recipe_probes/pools/run_probes.py w64_default_pools
# and at width 64, is lr 1e-2 (tuned at width 24) still the faster filler, or half of it? A 100-exposure horizon:
#     python results/recipe_probes/pools/run_probes.py w64_h100_lr0.01 w64_h100_lr0.005
#     python results/recipe_probes/pools/run_probes.py w64_h100_lr0.0025 w64_h100_lr0.00125
# and the best of those at the full 390 exposures, alone on both cores, compiled (beside w64_default_pools's 1e-2):
#     python results/recipe_probes/pools/run_probes.py w64_default_pools_lr0.0025
# and, since that fills toward its load, the test of 1 bit/param: a load of 1.25 bits/param at 280 exposures, alone:
#     python results/recipe_probes/pools/run_probes.py w64_load1.25_lr0.0025
# and that run continued from its last checkpoint by ~90 exposures (its cosine stretched to 58,000 steps: the lr steps
# back up from 0 to 3.4e-4 and falls to 0 again), in a directory of its own:
#     python results/recipe_probes/pools/run_probes.py w64_load1.25_lr0.0025_more
# and that one continued again from its last checkpoint to 100,000 steps (~636 exposures; the lr steps from 0 to 9.4e-4
# on the stretched cosine and falls to 0 again), in a directory of its own:
#     python results/recipe_probes/pools/run_probes.py w64_load1.25_lr0.0025_more2
# and does width 48 also fill faster at a lower lr? 1e-2 against 1e-2 x 24 / 48, the 100-exposure horizon:
#     python results/recipe_probes/pools/run_probes.py w48_h100_lr0.01 w48_h100_lr0.005
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.getcwd())
import data                               # noqa: E402  (run from the repository root)
import sample                             # noqa: E402
from model import ModelConfig, build_model  # noqa: E402

HERE, ROWS, EXPOSURES, LOAD = 'results/recipe_probes/pools', 128, 390, 0.8
VALUES, NAMES = 'n_cities=200,n_occupations=100', 'name_locales=en_US,n_first_names=480,n_last_names=500'
SMALL = VALUES + ',' + NAMES
DEFAULT_BITS, SMALL_VALUE_BITS = 10.263477501796558, 9.022031430631037   # bits per fact (meta.json) of those pools
W64_LRS = (0.01, 0.005, 0.0025, 0.00125)
W48_LRS = (0.01, 0.005)
RUNS = {   # name: (people_options, bits per fact of those pools, exposures per fact, width)
    'default_pools': ('', DEFAULT_BITS, EXPOSURES, 32),
    'small_pools': (SMALL, SMALL_VALUE_BITS, EXPOSURES, 32),
    'small_values': (VALUES, SMALL_VALUE_BITS, EXPOSURES, 32),   # the second pair: which of the two halves costs
    'small_names': (NAMES, DEFAULT_BITS, EXPOSURES, 32),
    'default_pools_800': ('', DEFAULT_BITS, 800, 32),            # the third: twice the exposures
    'small_pools_800': (SMALL, SMALL_VALUE_BITS, 800, 32),
    'default_pools_ref': ('', DEFAULT_BITS, EXPOSURES, 32),      # the fourth: the reference's recipe (fill_recipe/)
    'small_pools_ref': (SMALL, SMALL_VALUE_BITS, EXPOSURES, 32),
    'w24_default_pools': ('', DEFAULT_BITS, EXPOSURES, 24),      # the fifth: widths 24 / 40 / 48
    'w40_default_pools': ('', DEFAULT_BITS, EXPOSURES, 40),
    'w48_default_pools': ('', DEFAULT_BITS, EXPOSURES, 48),
    'w40_small_pools': (SMALL, SMALL_VALUE_BITS, EXPOSURES, 40),  # the sixth: the same on small pools
    'w48_small_pools': (SMALL, SMALL_VALUE_BITS, EXPOSURES, 48),
    'w64_default_pools': ('', DEFAULT_BITS, EXPOSURES, 64),       # the seventh: width 64, alone
    **{f'w64_h100_lr{lr}': ('', DEFAULT_BITS, 100, 64) for lr in W64_LRS},   # the eighth: width 64's learning rate
    'w64_default_pools_lr0.0025': ('', DEFAULT_BITS, EXPOSURES, 64),   # the ninth: the best of them at 390
    'w64_load1.25_lr0.0025': ('', DEFAULT_BITS, 280, 64),               # the tenth: a load above 1
    **{f'w48_h100_lr{lr}': ('', DEFAULT_BITS, 100, 48) for lr in W48_LRS},   # the eleventh: width 48's learning rate
}
CONTINUED = {'w64_load1.25_lr0.0025_more': ('w64_load1.25_lr0.0025', 58000),   # name: (run it resumes, its max_iters)
             'w64_load1.25_lr0.0025_more2': ('w64_load1.25_lr0.0025_more', 100000)}
LOADS = {'w64_load1.25_lr0.0025': 1.25}   # bits/param if every fact were recalled, where not LOAD
REFERENCE_RECIPE = dict(learning_rate=1e-3, warmup_iters=50, weight_decay=0.1, beta2=0.95, init='fan_in')
ALONE = dict(threads=2, compile=True)   # a run on both cores
OVERRIDES = {   # name: what a run changes of our recipe
    'default_pools_ref': REFERENCE_RECIPE, 'small_pools_ref': REFERENCE_RECIPE,
    'w64_default_pools': ALONE,
    **{f'w64_h100_lr{lr}': dict(compile=True, learning_rate=lr) for lr in W64_LRS},
    **{f'w48_h100_lr{lr}': dict(compile=True, learning_rate=lr) for lr in W48_LRS},
    **{name: dict(ALONE, learning_rate=2.5e-3) for name in ('w64_default_pools_lr0.0025', 'w64_load1.25_lr0.0025')},
}


def launch(names):
    """Start the named runs side by side (a continuation first copies its parent's last checkpoint and log into a
    directory of its own, then train.py resumes it); the worst exit status."""
    procs = []
    for name in names:
        resumed, max_iters = CONTINUED.get(name, (name, 0))
        source = resumed
        while source in CONTINUED:   # a continuation of a continuation trains the first run's setting
            source = CONTINUED[source][0]
        options, bits, exposures, width = RUNS[source]
        params = build_model(ModelConfig(n_layer=2, n_head=2, n_embd=width, vocab_size=data.VOCAB_SIZE)).num_params()
        n_people = round(LOADS.get(source, LOAD) * params / bits / 4)
        steps, per_exposure = exposures * 4 * n_people // ROWS, 4 * n_people / ROWS
        cfg = dict(tool=False, mix_qa=1.0, mix_qa_tool=0.0, n_people=n_people, held_out=0.0, n_unseen=10,
                   people_options=options, one_per_row=True, n_layer=2, n_head=2, n_embd=width, block_size=256,
                   batch_size=ROWS, max_iters=steps, warmup_iters=100, weight_decay=0.0, learning_rate=1e-2,
                   min_lr=0.0, eval_interval=round(30 * per_exposure), stop_recall=0.99, eval_max=300,
                   ckpt_interval=2000, threads=1, out_dir=os.path.join(HERE, name))
        cfg.update(OVERRIDES.get(source, {}))
        if resumed != name:   # a continuation: from its parent's last checkpoint and log
            cfg['max_iters'] = max_iters
            if not os.path.exists(cfg['out_dir']):
                os.makedirs(cfg['out_dir'])
                shutil.copy(sample.list_checkpoints(os.path.join(HERE, resumed))[0], cfg['out_dir'])
                shutil.copy(os.path.join(HERE, resumed, 'metrics.jsonl'), cfg['out_dir'])
        procs.append(subprocess.Popen([sys.executable, 'train.py', *[f'--{k}={v}' for k, v in cfg.items()]],
                                      stdout=subprocess.DEVNULL, stderr=open(os.path.join(HERE, f'{name}.log'), 'a')))
    return max(p.wait() for p in procs)


if __name__ == '__main__':   # plot.py imports the tables above
    sys.exit(launch(sys.argv[1:]))
