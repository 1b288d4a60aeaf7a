"""
The CALM key-value experiment: can a frozen anchor that learned to answer questions (about other people)
answer them about people only a frozen augment knows, through a trained composition (calm.py)?

    python calm_experiment.py                                   # every stage (finished ones skipped), then the table
    python calm_experiment.py --arch=mamba --out=out/calm_mamba

Stages (each a train.py run from configs/calm_*.py with the overrides below): the augment memorizes the
biographies of people P; the anchor learns QA about other people Q; the composition trains on the QA of
20% of P and is evaluated on the other 80% (and so are the paper's connection and a fine-tuned anchor).
Results: out/calm_experiment/results.json (the committed copy: results/calm_experiment/).
"""
import json
import os
import sys
import time

import torch.nn as nn

import data
import sample
import train
from model import generate

HERE = os.path.dirname(os.path.abspath(__file__))

# Options of `python calm_experiment.py --key=value`. The stages are configs/calm_*.py with these overrides.
EXPERIMENT = dict(
    out='out/calm_experiment',  # one out_dir per stage, the data (data_P, data_Q) and results.json
    arch='transformer',         # of the anchor and the augment
    n_people=200,               # |P|: the augment's people (the QA of 20% of them trains the composition)
    anchor_people=2000,         # |Q|: the anchor's people (many, so that it copies names instead of memorizing them)
    bios_per_person=16,         # paraphrased biographies per person of P
    augment_iters=6000,         # steps of each stage
    anchor_iters=1500,
    calm_iters=600,             # also the fine-tuned anchor's budget
    connect_every=4,
    calm_prompt_mode=False,     # True: the augment reads only the question, non-causally
    calm_read_output=True,      # the composition reads the augment's next-token distribution ('calm_hidden': never)
    calm_position_bias=True,    # ... through a learned distance penalty ('calm_hidden': never)
    calm_null_slot=True,        # ... and may read nothing ('calm_hidden': never)
    calm_position_keys=True,    # ... with keys that carry only position ('calm_hidden': never)
    calm_gate=True,             # ... scaled by a per-token gate ('calm_hidden': never)
    calm_gate_reads=True,       # ... that also sees what was read ('calm_hidden': never)
    calm_answer_mode=True,      # ... the augment reading only the answer, as a text of its own ('calm_hidden': never)
    threads=0,                  # torch CPU threads; 0 -> torch's default
)
STAGES = [('augment', 'configs/calm_augment.py'), ('anchor', 'configs/calm_anchor.py'),
          ('calm', 'configs/calm.py'), ('calm_hidden', 'configs/calm.py'), ('finetuned_anchor', 'configs/calm_finetune.py')]
RUNTIME_KEYS = ('threads', 'device', 'eval_batch', 'compile')  # may differ between a finished stage and now
# the composition options not in the paper: the 'calm' stage takes them from EXPERIMENT, 'calm_hidden' turns them off
OUR_OPTIONS = [k for k in EXPERIMENT if k.startswith('calm_') and k not in ('calm_iters', 'calm_prompt_mode')]


def stage_configs(o):
    data_P, data_Q = f"{o['out']}/data_P", f"{o['out']}/data_Q"
    common = [f"--threads={o['threads']}"]
    P = [f'--data_dir={data_P}', f"--n_people={o['n_people']}", f"--bios_per_person={o['bios_per_person']}"]
    compose = [f"--anchor_dir={o['out']}/anchor", f"--augment_dirs={o['out']}/augment", f"--connect_every={o['connect_every']}",
               f"--calm_prompt_mode={o['calm_prompt_mode']}", f"--max_iters={o['calm_iters']}"]
    over = {'augment': P + [f"--arch={o['arch']}", f"--max_iters={o['augment_iters']}"],
            'anchor': [f'--data_dir={data_Q}', f"--n_people={o['anchor_people']}", f"--arch={o['arch']}",
                       f"--max_iters={o['anchor_iters']}"],
            'calm': P + compose + [f"--{k}={o[k]}" for k in OUR_OPTIONS],
            'calm_hidden': P + compose + [f"--{k}=False" for k in OUR_OPTIONS],   # as in the paper
            'finetuned_anchor': P + [f"--arch={o['arch']}", f"--init_from={o['out']}/anchor",
                                     f"--max_iters={o['calm_iters']}"]}
    cfgs = {}
    for name, path in STAGES:   # the stages' inputs (anchor_dir, init_from) exist once earlier stages ran
        try:
            cfgs[name] = train.get_config([os.path.join(HERE, path), f"--out_dir={o['out']}/{name}", *common,
                                           *over[name]], now=False)
        except SystemExit as e:
            sys.exit(f"{e.code} (stage {name!r} of the experiment)")
    return cfgs


class LogitEnsemble(nn.Module):
    """A reference, not CALM: no training, log p_anchor + w log p_augment at every token (a product of
    experts). It shows how much of the augment's knowledge plain decoding can reach."""

    def __init__(self, anchor, augment, w):
        super().__init__()
        self.anchor, self.augment, self.w = anchor, augment, w

    def new_cache(self, b, s):
        return self.anchor.new_cache(b, s), self.augment.new_cache(b, s)

    def forward(self, idx):
        return self.anchor(idx).log_softmax(-1) + self.w * self.augment(idx).log_softmax(-1)

    def step(self, idx, cache, pad):
        return (self.anchor.step(idx, cache[0], pad).log_softmax(-1)
                + self.w * self.augment.step(idx, cache[1], pad).log_softmax(-1))


def completion_recall(model, data_dir, split='held_out', in_dialog=False):
    """The fraction of a split's facts the model completes from the answer's own words ("Ada Quinn was born on "),
    alone or (in_dialog) after the question, as the composition's augment reads it: what the augment
    knows, so a ceiling for the composition."""
    docs = [d for d in data.read_jsonl(os.path.join(data_dir, data.FILES['qa'])) if d['split'] == split]
    items = []
    for d in docs:
        question, answer = d['messages'][0]['content'], d['messages'][1]['content']
        prefix = data.encode(answer[:answer.rindex(d['answer'])])
        items.append(((data.prompt_ids(question) if in_dialog else []) + prefix, d['answer']))
    hits = 0
    for i in range(0, len(items), 256):
        batch = items[i:i + 256]
        new = generate(model, [ids for ids, _ in batch], 48, {data.EOT, ord('.')})
        hits += sum(sample.is_right(data.decode([t for t in g if t != data.EOT]).rstrip('.'), gold)
                    for (_, gold), g in zip(batch, new))
    return hits / max(1, len(items))


def experiment(o):
    """Run the stages not finished yet, evaluate the anchor alone on P, write and print the table."""
    t0 = time.time()
    cfgs, runs = stage_configs(o), {}
    for name, cfg in cfgs.items():
        done = os.path.join(cfg['out_dir'], 'results.json')
        if os.path.exists(done):
            old = json.load(open(os.path.join(cfg['out_dir'], 'config.json')))
            diff = [k for k in cfg if k not in RUNTIME_KEYS and old.get(k) != cfg[k]]
            if diff:
                sys.exit(f"error: {cfg['out_dir']} was run with other options ({', '.join(f'{k}={old.get(k)!r}' for k in diff)}); "
                         f"use another --out or delete it")
            print(f"{name}: done ({done})")
        else:
            print(f"{name}: training {cfg['out_dir']}")
            train.check_config(cfg)   # now with the earlier stages' checkpoints in place
            train.train(cfg)
        runs[name] = json.load(open(done))
    # The anchor's own run evaluated it on Q; here it answers P's questions. (The augment's run already
    # evaluated it on P's questions: it is "the augment alone, prompted with the question".)
    anchor, _ = sample.load(cfgs['anchor']['out_dir'])
    on_P = sample.evaluate(anchor, cfgs['calm'], cfgs['calm']['data_dir'])
    augment, _ = sample.load(cfgs['augment']['out_dir'])
    # the ensemble's weight is the best on the trained 20% (the composition's training split); only that
    # weight is evaluated on the held-out 80%
    on_train = {w: sample.evaluate(LogitEnsemble(anchor, augment, w), cfgs['calm'], cfgs['calm']['data_dir'],
                                  splits=('train',))['train'] for w in (0.25, 0.5, 1.0)}
    w_best = max(on_train, key=on_train.get)
    ens = {'train': on_train[w_best], **sample.evaluate(LogitEnsemble(anchor, augment, w_best), cfgs['calm'],
                                                        cfgs['calm']['data_dir'], splits=('held_out',))}
    knows = completion_recall(augment, cfgs['calm']['data_dir'])
    knows_in_dialog = completion_recall(augment, cfgs['calm']['data_dir'], in_dialog=True)
    recall = {name: r['recall'] for name, r in runs.items()}
    recall['anchor'] = {'trained': on_P['train'], 'held_out': on_P['held_out']}
    results = {**{name: recall[name]['held_out'] for name, _ in STAGES},
               'trained_20pct': {name: recall[name]['trained'] for name, _ in STAGES},
               'logit_ensemble': {'weight': w_best, 'held_out': ens['held_out'], 'trained_20pct': ens['train']},
               'augment_completes_held_out': knows,   # a ceiling for what the composition can read
               'augment_completes_held_out_in_dialog': knows_in_dialog,  # ... after the question, as CALM reads it
               'anchor_on_its_own_people': runs['anchor']['recall']['trained'],
               'calm_params': runs['calm']['params'], 'frozen_params': {n: runs[n]['params'] for n in ('anchor', 'augment')},
               'train_seconds': {name: round(r['wall_seconds']) for name, r in runs.items()},
               'options': o}
    with open(os.path.join(o['out'], 'results.json'), 'w') as f:
        json.dump(results, f, indent=1)
    rows = [('anchor alone', 'anchor'), ('augment alone (asked the question)', 'augment'),
            ('anchor fine-tuned on the 20%', 'finetuned_anchor'),
            ('CALM reading hidden states (paper)', 'calm_hidden'), ('CALM reading output distributions', 'calm')]
    print(f"\n{'':36s} {'held-out 80% of P':>18s} {'trained 20% of P':>17s}")
    for label, name in rows:
        print(f"{label:36s} {results[name]:>18.3f} {results['trained_20pct'][name]:>17.3f}")
    print(f"{'log p_anchor + ' + str(w_best) + ' log p_augment':36s} {ens['held_out']:>18.3f} "
          f"{ens['train']:>17.3f}  (a reference: untrained product of experts, not CALM)")
    print(f"(the augment completes {knows:.3f} of the held-out facts from the answer's own words, "
          f"{knows_in_dialog:.3f} after the question; "
          f"anchor on its own people Q: {results['anchor_on_its_own_people']:.3f}; "
          f"{time.time() - t0:.0f} s in this call) -> {o['out']}/results.json")
    return results


BOOLS = {'True': True, 'true': True, '1': True, 'False': False, 'false': False, '0': False}


def check_options(o):
    """Exit with a one-line error naming the first option whose value cannot work (each stage's config then
    goes through train.py's checks, in stage_configs), before anything runs."""
    def bad(key, allowed):
        sys.exit(f"error: --{key} must be {allowed}, got {o[key]!r}")
    for key in ('n_people', 'anchor_people', 'bios_per_person', 'augment_iters', 'anchor_iters', 'calm_iters',
                'connect_every'):
        if o[key] <= 0:
            bad(key, "> 0")
    if o['threads'] < 0:
        bad('threads', ">= 0 (0: torch's default)")
    if o['arch'] not in ('transformer', 'mamba'):
        bad('arch', "'transformer' or 'mamba' (of the anchor and the augment)")
    problem = data.dir_problem(o['out'])
    if problem:
        sys.exit(f"error: --out ({o['out']!r}) {problem}")


def main(argv):
    o = dict(EXPERIMENT)
    for arg in argv:
        key, eq, text = arg[2:].partition('=') if arg.startswith('--') else ('', '', '')
        if key not in o or not eq:
            sys.exit(f"error: expected --key=value with key in {list(o)}, got {arg!r}")
        want = type(o[key])
        if want is bool and text not in BOOLS:
            sys.exit(f"error: --{key} must be True or False, got {text!r}")
        try:
            o[key] = text if want is str else BOOLS[text] if want is bool else want(text)
        except ValueError:
            sys.exit(f"error: --{key} must be {want.__name__}, got {text!r}")
    check_options(o)
    return experiment(o)


if __name__ == '__main__':
    main(sys.argv[1:])
