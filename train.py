"""
Train a model on the people data, evaluate recall, checkpoint the full state for crash restart.

    python train.py                                  # the default experiment (configs/tool.py's recipe)
    python train.py configs/no_tool.py               # a config file overrides the defaults below
    python train.py configs/tool.py --n_people=2000  # then --key=value overrides
    torchrun --nproc-per-node 2 train.py configs/tool.py             # DDP, one node
    torchrun --nnodes 2 --node-rank 0 --nproc-per-node 8 --master-addr HOST --master-port 29500 train.py ...

Running the same command again resumes from the last checkpoint in out_dir. Data and the SQLite
database are generated on first use. As a library: `results = train(get_config([...]))`.
"""
import ast
import contextlib
import json
import math
import os
import signal
import sys
import time

import matplotlib
matplotlib.use('Agg')  # files only, no screen
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from tqdm import tqdm

import calm
import data
import packing
import sample
import ssm_triton
from model import INITS, cpu_kernel_available

# ----------------------------------------------------------------------------- default config
DEFAULTS = dict(
    # I/O
    out_dir='out/default',      # checkpoints, metrics.jsonl, results.json, curves.png
    data_dir='',                # '' -> data/<people options>, generated if missing
    seed=0,                     # model init, and data order unless order_seed says otherwise
    order_seed=-1,              # the order of the training documents alone (-1: seed's), to tell init and order apart
    device='auto',              # 'auto' (cuda if available), 'cpu', 'cuda', 'cuda:1'
    # data (see data.py; the same options always give the same people)
    n_people=1000,              # people in the train + held_out splits
    held_out=0.2,               # fraction of n_people whose QA is never trained on
    n_unseen=100,               # people with first names seen nowhere in training
    data_seed=0,                # which people
    people_options='',          # data.py's pools and names, e.g. 'n_cities=200,n_occupations=100' ('': its defaults)
    bios_per_person=1,          # biographies (paraphrases) per person
    tool=True,                  # evaluate by answering through SQL (the model was taught the tool)
    mix_qa=0.0,                 # copies per epoch of the train split's QA answered from the weights
    mix_qa_tool=1.0,            # ... of the QA answered through the tool
    mix_bios=0.0,               # ... of the biographies (of the splits in bios_splits)
    bios_splits='train',        # comma list of splits whose biographies are trained on
    doc_mask=True,              # attention stays inside each packed document; False: a row reads as one text
    one_per_row=False,          # rows of one document each, batched by similar length, instead of packed rows
    # model
    arch='transformer',         # 'transformer', 'mamba', or 'calm' (a composition of trained runs, see calm.py)
    n_layer=2,
    n_embd=64,
    n_head=2,                   # heads of width 32 copy names better than 4 of 16 (configs/tool.py)
    mlp_hidden=0,               # 0 -> 4 * n_embd
    d_state=16,                 # mamba
    expand=2,                   # mamba
    init='gpt2',                # 'gpt2' (N(0, 0.02)) or 'fan_in' (N(0, 1/fan_in)), see model.ModelConfig
    # optimization
    block_size=512,             # tokens per packed row (several dialogs: long rows pack with little padding);
                                # one_per_row: the longest a document may be
    batch_size=8,               # rows per micro-batch per process
    grad_accum=1,               # micro-batches per step; global batch = batch_size * grad_accum * world
    max_iters=4000,             # the most steps a run takes (the stop_* keys may end it sooner)
    learning_rate=3e-3,         # peak, after linear warmup
    min_lr=3e-4,                # end of the cosine decay
    warmup_iters=100,
    lr_decay='cosine',          # 'cosine' to min_lr at max_iters, or 'constant' after warmup (for runs that stop on recall)
    weight_decay=0.3,           # against memorizing names instead of learning to copy them
    beta1=0.9,
    beta2=0.99,
    grad_clip=1.0,
    dtype='auto',               # 'auto' (bfloat16 autocast on GPU, float32 on CPU), 'float32', 'bfloat16'
    compile=False,              # torch.compile: worth it on GPU, not on CPU
    cpu_kernel=True,            # one_per_row Transformers on CPU in float32, one process: forward and backward in
                                # transformer_cpu.cpp, and the fused AdamW (2-3x faster at widths 16-32); False: torch ops
    # evaluation and checkpoints
    eval_interval=1000,         # steps between recall evaluations (also at the end)
    stop_recall=0.0,            # stop once recall on eval_max trained questions reaches this (0: off) ...
    stop_patience=0,            # ... or once it has not risen for this many evaluations (0: off) ...
    max_exposures=0.0,          # ... or once each trained fact was in this many trained documents (0: no cap)
    eval_max=300,               # questions per split in the evaluations during training (all at the end)
    eval_batch=256,             # questions generated at once
    ckpt_interval=250,          # steps between checkpoints
    log_interval=10,
    threads=0,                  # torch CPU threads; 0 -> torch's default
    # initialization (arch='calm' runs also take calm.py's CONFIG keys: the anchor, augments, options)
    init_from='',               # out_dir (or checkpoint) whose weights initialize the model, e.g. to fine-tune
)
# Keys that may differ when a run resumes (where it writes and logs, how fast it runs, how long it goes on);
# every other key must match the checkpoint's, or the resumed run would silently mix two experiments.
RESUMABLE = {'out_dir', 'max_iters', 'max_exposures', 'eval_interval', 'eval_max', 'eval_batch', 'ckpt_interval', 'log_interval',
             'threads', 'device', 'dtype', 'compile', 'cpu_kernel'}
KEYS = {**DEFAULTS, **calm.CONFIG}   # every key a config may set (calm's only with arch='calm')


def get_config(argv, now=True):
    """Config files (*.py, executed in order) then --key=value; an unknown key, a wrong type or a value
    that cannot work exits (check_config; `now`: see there)."""
    cfg = dict(DEFAULTS)

    def put(key, value, where):
        if key not in KEYS:
            sys.exit(f"error: unknown config key {key!r} in {where}")
        want = type(KEYS[key])
        if want is float and type(value) is int:
            value = float(value)
        if type(value) is not want:
            sys.exit(f"error: config key {key!r} in {where} must be {want.__name__}, got {value!r}")
        cfg[key] = value

    for arg in argv:
        if arg.startswith('--'):
            key, eq, text = arg[2:].partition('=')
            if not eq:
                sys.exit(f"error: expected --key=value, got {arg!r}")
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                value = text  # a bare string, e.g. --arch=mamba
            if type(KEYS.get(key)) is str:
                value = text
            put(key, value, 'the command line')
        else:
            if not os.path.exists(arg):
                sys.exit(f"error: config file {arg!r} not found")
            scope = {'__file__': os.path.abspath(arg)}  # so a config can build on another one beside it
            exec(open(arg).read(), scope)
            for key, value in scope.items():
                if not key.startswith('_') and not callable(value) and not isinstance(value, type(sys)):
                    put(key, value, arg)
    composition = [k for k in calm.CONFIG if k in cfg]
    if cfg['arch'] == 'calm':
        cfg = {**calm.CONFIG, **cfg}
    elif composition:
        sys.exit(f"error: config key {composition[0]!r} is for arch='calm' runs only (arch is {cfg['arch']!r})")
    check_config(cfg, now)
    return cfg


ARCHS, DTYPES = ('transformer', 'mamba', 'calm'), ('auto', 'float32', 'bfloat16')
RANGES = [  # (keys, test, what is allowed); keys a config lacks (calm's without arch='calm') are skipped
    (('arch',), lambda v: v in ARCHS, f"one of {ARCHS}"),
    (('dtype',), lambda v: v in DTYPES, f"one of {DTYPES}"),
    (('lr_decay',), lambda v: v in ('cosine', 'constant'), "'cosine' or 'constant'"),
    (('init',), lambda v: v in INITS, f"one of {INITS}"),
    (('n_people', 'bios_per_person', 'n_layer', 'n_embd', 'n_head', 'd_state', 'expand', 'block_size', 'batch_size',
      'grad_accum', 'max_iters', 'eval_interval', 'eval_batch', 'ckpt_interval', 'log_interval', 'connect_every'),
     lambda v: v > 0, "> 0"),
    (('seed', 'data_seed', 'n_unseen', 'mlp_hidden', 'warmup_iters', 'eval_max', 'threads', 'mix_qa', 'mix_qa_tool',
      'mix_bios', 'learning_rate', 'min_lr', 'weight_decay', 'grad_clip', 'stop_patience', 'max_exposures'),
     lambda v: v >= 0, ">= 0"),
    (('order_seed',), lambda v: v >= -1, ">= 0, or -1 (the same as seed)"),
    (('held_out', 'beta1', 'beta2'), lambda v: 0 <= v < 1, "in [0, 1)"),
    (('stop_recall',), lambda v: 0 <= v <= 1, "in [0, 1] (0: off)"),
]


def check_config(cfg, now=True):
    """Exit with a one-line error naming the first key whose value (of the right type) cannot work, before
    anything is built or written. now: also what must hold when the run starts, here: a GPU for a cuda
    device, the checkpoints that anchor_dir, augment_dirs and init_from name (False: a sweep submitting to
    SLURM, or stages whose inputs earlier stages make, check those when each run starts)."""
    def bad(key, allowed):
        sys.exit(f"error: config key {key!r} must be {allowed}, got {cfg[key]!r}")
    for key, v in cfg.items():
        if type(v) is float and not math.isfinite(v):
            bad(key, "a finite number")
    for keys, ok, allowed in RANGES:
        for key in keys:
            if key in cfg and not ok(cfg[key]):
                bad(key, allowed)
    if cfg['min_lr'] > cfg['learning_rate']:
        bad('min_lr', f"<= learning_rate ({cfg['learning_rate']})")
    if cfg['arch'] == 'transformer' and (cfg['n_embd'] % cfg['n_head'] or cfg['n_embd'] // cfg['n_head'] % 2):
        bad('n_head', f"a divisor of n_embd ({cfg['n_embd']}) leaving an even head width n_embd / n_head")
    if int(round(cfg['held_out'] * cfg['n_people'])) >= cfg['n_people']:
        bad('held_out', f"small enough to leave people to train on (n_people={cfg['n_people']})")
    if not any(cfg[k] > 0 for k in ('mix_qa', 'mix_qa_tool', 'mix_bios')):
        sys.exit("error: config keys 'mix_qa', 'mix_qa_tool', 'mix_bios' are all 0: nothing to train on (set one > 0)")
    evaluated, other = ('mix_qa_tool', 'mix_qa') if cfg['tool'] else ('mix_qa', 'mix_qa_tool')
    if cfg[other] > 0 and cfg[evaluated] == 0:   # the evaluation would ask QA that training never shows
        sys.exit(f"error: config key {evaluated!r} is 0 but tool={cfg['tool']} asks its QA: the mix trains only "
                 f"{other}={cfg[other]} (set {evaluated} > 0, e.g. --{evaluated}=1.0 --{other}=0.0)")
    if not cfg['bios_splits'] or any(s not in data.SPLITS for s in cfg['bios_splits'].split(',')):
        bad('bios_splits', f"a comma list of {data.SPLITS}")
    given, problem = data.parse_people_options(cfg['people_options'])
    if problem:
        bad('people_options', problem)
    data.check_options({**data.DEFAULTS, **given}, name='people_options')
    problem = sample.device_problem(cfg['device'], here=now)
    if problem:
        sys.exit(f"error: config key 'device' ({cfg['device']!r}) {problem}")
    for key, path in (('out_dir', cfg['out_dir']), ('data_dir', data.dir_of(cfg))):
        problem = data.dir_problem(path)
        if problem:
            sys.exit(f"error: config key {key!r} ({path!r}) {problem}")

    def run_problem(path):  # why path names no trained run (an out_dir with checkpoints, or a checkpoint file)
        if not os.path.exists(path):
            return "not found"
        return None if os.path.isfile(path) or sample.list_checkpoints(path) else "holds no checkpoint (ckpt_*.pt)"
    inputs = [('init_from', p) for p in [cfg['init_from']] if p]
    if cfg['arch'] == 'calm':
        if cfg['init_from']:
            bad('init_from', "'' with arch='calm' (the composition starts from anchor_dir and augment_dirs)")
        if not cfg['anchor_dir']:
            bad('anchor_dir', "set with arch='calm' (the out_dir of the frozen anchor)")
        if not cfg['augment_dirs'] or not all(cfg['augment_dirs'].split(',')):
            bad('augment_dirs', "set with arch='calm' (a comma list of the frozen augments' out_dirs)")
        if cfg['calm_gate_reads'] and not cfg['calm_gate']:
            bad('calm_gate_reads', "False unless calm_gate is True")
        inputs = [('anchor_dir', cfg['anchor_dir'])] + [('augment_dirs', p) for p in cfg['augment_dirs'].split(',')]
    for key, path in inputs if now else []:
        problem = run_problem(path)
        if problem:
            sys.exit(f"error: config key {key!r} ({path!r}) {problem}")
    anchor_cfg = os.path.join(cfg['anchor_dir'], 'config.json') if cfg['arch'] == 'calm' and now else ''
    if os.path.isfile(anchor_cfg):  # the cross-attention's heads split the anchor's width
        d = json.load(open(anchor_cfg)).get('n_embd', 0)
        if d % cfg['n_head'] or d // cfg['n_head'] % 2:
            bad('n_head', f"a divisor of the anchor's width ({d}) leaving an even head width")


def resume_mismatch(old, cfg, may_differ=RESUMABLE):
    """The first key (not in may_differ) whose value differs between a checkpoint's config and cfg, or None.
    A key that one of them lacks (a run older than the key, or calm's keys of a non-calm run) counts as
    its default."""
    for k in sorted((set(old) | set(cfg)) - may_differ):
        if old.get(k, KEYS.get(k)) != cfg.get(k, KEYS.get(k)):
            return k
    return None


# ----------------------------------------------------------------------------- checkpoints
def save_checkpoint(out_dir, state, keep=2):
    """Atomic: write a temporary file, fsync, rename; then keep only the newest `keep`."""
    path = os.path.join(out_dir, f"ckpt_{state['step']:08d}.pt")
    tmp = path + '.tmp'
    with open(tmp, 'wb') as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(out_dir, os.O_RDONLY)
    try:
        os.fsync(fd)  # make the rename itself durable
    finally:
        os.close(fd)
    for old in sample.list_checkpoints(out_dir)[keep:]:
        os.remove(old)
    return path


def plot_curves(out_dir):
    rows = [json.loads(line) for line in open(os.path.join(out_dir, 'metrics.jsonl'))]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    steps = [r['step'] for r in rows if 'loss' in r]
    a.plot(steps, [r['loss'] for r in rows if 'loss' in r])
    a.set(xlabel='step', ylabel='training loss (answer tokens)', yscale='log')
    for split in data.SPLITS:
        pts = [(r['step'], r['recall'][split]) for r in rows if r.get('recall', {}).get(split) is not None]
        if pts:
            b.plot(*zip(*pts), marker='o', label=split)
    b.set(xlabel='step', ylabel='recall', ylim=(-0.02, 1.02))
    b.legend()
    fig.suptitle(out_dir)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, 'curves.png'), dpi=100)
    plt.close(fig)


# ----------------------------------------------------------------------------- training
class Stopper:
    """When a run has learned what it can: recall on the trained facts reached `target` (a sample that reaches
    it is confirmed on every trained fact first: stopped on a sample of 300 at 95%, runs often ended at 94-95%),
    or did not rise by MIN_RISE over its best for `patience` evaluations in a row once it is above zero, or the
    exposures per fact reached `cap`. Zero turns a rule off. Its state goes into checkpoints, so a
    resumed run stops alike."""
    MIN_RISE = 0.005   # half a point: with eval_max=300 questions one answer is 0.33 points

    def __init__(self, target=0.0, patience=0, cap=0.0):
        self.target, self.patience, self.cap = target, patience, cap
        self.best, self.since, self.reason = -1.0, 0, None

    @property
    def on_recall(self):
        return bool(self.target or self.patience)

    def evaluated(self, recall, confirm=None):
        """recall: on a sample of the trained facts; confirm(): recall on all of them, asked only when the sample
        reaches the target (None: the sample is all of them)."""
        if self.target and recall >= self.target and confirm is not None:
            recall = confirm()
        if self.target and recall >= self.target:
            self.reason = f'recall {recall:.3f} >= {self.target}'
        elif recall > self.best + self.MIN_RISE:
            self.best, self.since = recall, 0
        elif self.best <= 0:   # nothing recalled yet: memorization starts late, a flat zero is no plateau
            pass
        else:
            self.since += 1
            if self.patience and self.since >= self.patience:
                self.reason = f'plateau: recall {recall:.3f}, best {self.best:.3f}, {self.since} evaluations'
        return self.reason

    def exposed(self, exposures):
        if self.cap and exposures >= self.cap and self.reason is None:
            self.reason = f'exposure cap: {exposures:.1f} >= {self.cap}'
        return self.reason

    def state_dict(self):
        return {'best': self.best, 'since': self.since, 'reason': self.reason}

    def load_state_dict(self, s):
        self.best, self.since, self.reason = s['best'], s['since'], s['reason']


def lr_at(step, cfg):
    if step < cfg['warmup_iters']:
        return cfg['learning_rate'] * (step + 1) / cfg['warmup_iters']
    if cfg['lr_decay'] == 'constant':
        return cfg['learning_rate']
    frac = (step - cfg['warmup_iters']) / max(1, cfg['max_iters'] - cfg['warmup_iters'])
    return cfg['min_lr'] + 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))) * (cfg['learning_rate'] - cfg['min_lr'])


def make_optimizer(model, cfg, device, fused=False):
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2 and not getattr(p, '_no_weight_decay', False)]
    no_decay = [p for p in params if not (p.dim() >= 2 and not getattr(p, '_no_weight_decay', False))]
    groups = [{'params': decay, 'weight_decay': cfg['weight_decay']}, {'params': no_decay, 'weight_decay': 0.0}]
    return torch.optim.AdamW(groups, lr=cfg['learning_rate'], betas=(cfg['beta1'], cfg['beta2']),
                             fused=fused or device.type == 'cuda')


def setup_distributed(cfg):
    if 'RANK' not in os.environ:
        dev = cfg['device'] if cfg['device'] != 'auto' else ('cuda' if torch.cuda.is_available() else 'cpu')
        return 0, 1, 0, torch.device(dev)
    rank, world, local = int(os.environ['RANK']), int(os.environ['WORLD_SIZE']), int(os.environ['LOCAL_RANK'])
    cuda = cfg['device'] != 'cpu' and torch.cuda.is_available()
    torch.distributed.init_process_group(backend='nccl' if cuda else 'gloo')
    device = torch.device(f'cuda:{local}' if cuda else 'cpu')
    if cuda:
        torch.cuda.set_device(device)
    return rank, world, local, device


def train(cfg):
    """Train (or resume) the run described by cfg; -> the results dict written to results.json."""
    rank, world, _, device = setup_distributed(cfg)
    master = rank == 0
    if cfg['threads']:
        torch.set_num_threads(cfg['threads'])
    out_dir, data_dir = cfg['out_dir'], data.dir_of(cfg)
    path, ckpt = sample.load_checkpoint(out_dir)   # a run to resume: checked before anything is written
    if ckpt is not None:
        if ckpt.get('tokenizer') != data.TOKENIZER:
            sys.exit(f"error: {path} was trained with another tokenizer/vocabulary")
        k = resume_mismatch(ckpt['config'], cfg)
        if k is not None:
            sys.exit(f"error: cannot resume {path}: config key {k!r} is {cfg.get(k, KEYS.get(k))!r} here but "
                     f"{ckpt['config'].get(k, KEYS.get(k))!r} in the checkpoint (use another out_dir)")
    if master:
        os.makedirs(out_dir, exist_ok=True)
        data.prepare(data_dir, **data.options_of(cfg))
        for source in ('qa', 'qa_tool', 'bios'):
            packing.tokenized(data_dir, source)
    if world > 1:
        torch.distributed.barrier()
    torch.manual_seed(cfg['seed'])
    model, trainable = sample.build(cfg)
    model.to(device)
    cpu_kernel = (cfg['cpu_kernel'] and cfg['one_per_row'] and cfg['arch'] == 'transformer' and device.type == 'cpu'
                  and world == 1 and cfg['dtype'] in ('auto', 'float32') and cpu_kernel_available())
    optimizer = make_optimizer(model, cfg, device, fused=cpu_kernel)
    packer = packing.make_packer(cfg, data_dir, world)
    meta = data.load_meta(data_dir)
    n_facts = meta['splits']['train'] * len(meta['attributes'])   # trained facts
    value_docs = [] if cfg['tool'] else sample.eval_docs(data_dir, False)['train']   # for sample.value_bits
    stopper = Stopper(cfg['stop_recall'], cfg['stop_patience'], cfg['max_exposures'])
    step, tokens_seen, wall, eval_wall = 0, 0, 0.0, 0.0   # eval_wall: seconds in recall evaluations

    if ckpt is not None:
        trainable.load_state_dict(ckpt['model'])
        optimizer.load_state_dict(ckpt['optimizer'])
        packer.load_state_dict(ckpt['packer'])
        if 'stopper' in ckpt:  # .get: checkpoints older than the stopping rule
            stopper.load_state_dict(ckpt['stopper'])
        torch.set_rng_state(ckpt['rng']['torch'])
        if device.type == 'cuda' and ckpt['rng'].get('cuda') is not None:
            torch.cuda.set_rng_state(ckpt['rng']['cuda'])
        step, tokens_seen, wall = ckpt['step'], ckpt['tokens_seen'], ckpt['wall_seconds']
        eval_wall = ckpt.get('eval_seconds', 0.0)
        if master:
            print(f"resumed from {path} at step {step}")
    if master:
        with open(os.path.join(out_dir, 'config.json'), 'w') as f:
            json.dump(cfg, f, indent=1)
        metrics_path = os.path.join(out_dir, 'metrics.jsonl')
        if os.path.exists(metrics_path):  # drop what was logged after the checkpoint we resume from
            kept = [line for line in open(metrics_path) if json.loads(line)['step'] <= step]
            with open(metrics_path, 'w') as f:
                f.writelines(kept)

    raw = model
    if cfg['compile']:
        model = torch.compile(model)
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == 'cuda' else None)
    use_bf16 = cfg['dtype'] == 'bfloat16' or (cfg['dtype'] == 'auto' and device.type == 'cuda')
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16)

    stop = {'now': False}
    crash_at = int(os.environ.get('TRAIN_SIGKILL_AT_STEP', -1))

    def on_sigterm(signum, frame):  # cluster preemption: checkpoint at the end of this step, exit cleanly
        stop['now'] = True
    signal.signal(signal.SIGTERM, on_sigterm)

    def held_per_param(docs):   # bits of the trained facts held (sample.value_bits on docs), per parameter
        bits = sample.value_bits(raw, docs, meta['bits_per_fact'], rank, world, cfg['eval_batch'])
        return bits, bits['held'] * n_facts / n_params

    def state():
        return {'model': trainable.state_dict(), 'optimizer': optimizer.state_dict(), 'step': step,
                'packer': packer.state_dict(), 'stopper': stopper.state_dict(), 'config': cfg, 'tokenizer': data.TOKENIZER,
                'rng': {'torch': torch.get_rng_state(), 'cuda': torch.cuda.get_rng_state() if device.type == 'cuda' else None},
                'tokens_seen': tokens_seen, 'wall_seconds': wall, 'eval_seconds': eval_wall}

    def log(row):
        if master:
            with open(os.path.join(out_dir, 'metrics.jsonl'), 'a') as f:
                f.write(json.dumps(row) + '\n')

    def recall_all_trained():   # a sample that reaches stop_recall is confirmed on every trained fact
        r = sample.evaluate(raw, cfg, data_dir, 0, rank, world, splits=('train',))['train']
        log({'step': step, 'recall_all_trained': r})
        return r

    B, A = cfg['batch_size'], cfg['grad_accum']
    n_params = raw.num_params()
    bar = tqdm(total=cfg['max_iters'], initial=step, disable=not master, dynamic_ncols=True, desc=os.path.basename(out_dir))
    t_last, tok_last = time.time(), tokens_seen
    recall = None
    while step < cfg['max_iters'] and stopper.reason is None:
        t0 = time.time()
        for g in optimizer.param_groups:
            g['lr'] = lr_at(step, cfg)
        idx, tgt, mask, pos, seg = (torch.from_numpy(a) for a in packer.next_rows(B * A * world))
        n_loss = mask.sum().clamp(min=1)   # loss tokens in the global batch: every rank knows it
        loss_sum = torch.zeros(())
        for m in range(A):
            rows = slice((m * world + rank) * B, (m * world + rank + 1) * B)
            x, y, w, p, s = (a[rows].to(device, non_blocking=True) for a in (idx, tgt, mask, pos, seg))
            sync = world == 1 or m == A - 1
            ctx = contextlib.nullcontext() if sync else model.no_sync()
            if cpu_kernel:   # forward and backward in one C++ call, the gradients added to .grad
                loss = raw.cpu_loss(x, (s >= 0).sum(1), y, w, 1.0 / n_loss.item())
            else:
                with ctx, autocast:
                    if cfg['one_per_row']:   # causal attention, no mask
                        p = s = None
                    at = w > 0   # logits only where the loss is (the head is a large part of a tiny model)
                    logits, y, w = model(x, pos=p, seg=s, at=at), y[at], w[at]
                    loss = (F.cross_entropy(logits, y, reduction='none') * w).sum() / n_loss.to(device)
                (loss * world).backward()   # DDP averages gradients over ranks; we want the global mean
            loss_sum += loss.detach().float().cpu()
        if cfg['grad_clip'] > 0:
            torch.nn.utils.clip_grad_norm_(raw.parameters(), cfg['grad_clip'])
        optimizer.step()
        optimizer.zero_grad(set_to_none=not cpu_kernel)   # the kernel adds into the kept buffers
        step += 1
        tokens_seen += int((seg >= 0).sum())
        wall += time.time() - t0
        if world > 1:
            stop_t = torch.tensor([float(stop['now'])])
            torch.distributed.all_reduce(stop_t)   # every rank stops at the same step
            stop['now'] = bool(stop_t.item())
        if step % cfg['log_interval'] == 0 or step == cfg['max_iters']:
            if world > 1:
                torch.distributed.all_reduce(loss_sum)
            dt = time.time() - t_last
            tps = (tokens_seen - tok_last) / max(dt, 1e-9)
            t_last, tok_last = time.time(), tokens_seen
            log({'step': step, 'loss': loss_sum.item(), 'lr': lr_at(step - 1, cfg), 'tokens_per_s': tps,
                 'epoch': packer.epoch, 'tokens_seen': tokens_seen})
            bar.set_postfix(loss=f"{loss_sum.item():.4f}", tok_s=f"{tps:,.0f}", epoch=packer.epoch)
        bar.update(1)
        if master and step == 1 and cpu_kernel:
            bar.write("training step: transformer_cpu.cpp (forward and backward in one call), fused AdamW")
        if master and step == 1 and cfg['arch'] in ('mamba', 'calm'):
            if ssm_triton.LAST_BACKEND:
                bar.write(f"selective scan backend: {ssm_triton.LAST_BACKEND}")
        exposures = packing.exposures_per_fact(packer)
        last = step == cfg['max_iters'] or stopper.exposed(exposures) is not None
        if step % cfg['eval_interval'] == 0 and not last:
            raw.eval()   # with a stopping rule on recall, only the trained facts count
            t_eval = time.time()
            recall = sample.evaluate(raw, cfg, data_dir, cfg['eval_max'], rank, world,
                                     splits=('train',) if stopper.on_recall else data.SPLITS)
            held = {} if cfg['tool'] else {'bits_held_per_param': held_per_param(value_docs[:cfg['eval_max'] or None])[1]}
            log({'step': step, 'recall': recall, 'exposures_per_fact': exposures, **held})
            confirm = recall_all_trained if 0 < cfg['eval_max'] < n_facts else None   # else the sample was all of them
            last = stopper.on_recall and stopper.evaluated(recall['train'], confirm) is not None
            eval_wall += time.time() - t_eval
            raw.train()
            if master:
                bar.write(f"step {step}: recall " + ', '.join(f"{k} {v:.3f}" for k, v in recall.items() if v is not None)
                          + f", {exposures:.1f} exposures per fact" + (f"; stop ({stopper.reason})" if last else ''))
        if step % cfg['ckpt_interval'] == 0 or last or stop['now']:
            if master:
                save_checkpoint(out_dir, state())
            if world > 1:
                torch.distributed.barrier()
        if step == crash_at:   # crash injection for the resume test: a real hard kill, no cleanup at all
            os.kill(os.getpid(), signal.SIGKILL)
        if stop['now']:
            if master:
                bar.write(f"SIGTERM: checkpoint saved at step {step}; run the same command to resume")
            bar.close()
            if world > 1:
                torch.distributed.destroy_process_group()
            sys.exit(0)
    bar.close()

    # final evaluation on every question of every split
    raw.eval()
    t_eval = time.time()
    both = sample.evaluate(raw, cfg, data_dir, 0, rank, world, count={'strict': sample.is_right, 'contains': sample.contains})
    bits, held = (None, None) if cfg['tool'] else held_per_param(value_docs)
    eval_wall += time.time() - t_eval
    recall = both['strict']
    bits_per_fact = sum(meta['bits_per_fact'].values()) / len(meta['attributes'])
    results = {'params': n_params, 'n_facts': n_facts, 'recall': recall,
               'facts_recalled': round((recall['train'] or 0) * n_facts),
               'bits_per_fact': bits_per_fact,
               'bits_per_param': (recall['train'] or 0) * n_facts * bits_per_fact / n_params,
               # the same, counted from the loss (sample.value_bits): partly held facts count in part
               'bits_held_per_param': held,
               'value_bits_lacking': None if bits is None else bits['lacking'],
               'tokens_seen': tokens_seen, 'wall_seconds': wall, 'eval_seconds': eval_wall, 'steps': step,
               'exposures_per_fact': packing.exposures_per_fact(packer), 'stop_reason': stopper.reason or 'max_iters',
               'arch': cfg['arch'], 'tool': cfg['tool'], 'n_people': cfg['n_people'], 'seed': cfg['seed']}
    results['recall'] = {'trained': recall['train'], 'held_out': recall['held_out'], 'unseen': recall['unseen']}
    results['recall_contains_count'] = {'trained': both['contains']['train'], 'held_out': both['contains']['held_out'],
                                        'unseen': both['contains']['unseen']}   # the count before 2026-12-02
    if master:
        log({'step': step, 'recall': recall, 'exposures_per_fact': results['exposures_per_fact']})
        with open(os.path.join(out_dir, 'results.json'), 'w') as f:
            json.dump(results, f, indent=1)
        plot_curves(out_dir)
        print(f"{out_dir}: {n_params:,} params, {n_facts} facts, recall trained {results['recall']['trained']:.3f} "
              f"held_out {fmt(results['recall']['held_out'])} unseen {fmt(results['recall']['unseen'])}, "
              f"{tokens_seen:,} tokens in {wall:.0f} s")
    if world > 1:
        torch.distributed.barrier()   # leave together: a rank gone while rank 0 still writes can abort the other (CI, once)
        torch.distributed.destroy_process_group()
    return results


def fmt(x):
    return 'n/a' if x is None else f'{x:.3f}'


if __name__ == '__main__':
    train(get_config(sys.argv[1:]))
