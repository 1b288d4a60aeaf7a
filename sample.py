"""
Answer questions with a trained model; with --tool the model writes SQL, this program runs it
read-only against the database and feeds the result back, and the model answers.

    python sample.py --out_dir=out/tool --tool                                   # interactive
    python sample.py --out_dir=out/tool --tool --question="Where was Ada Quinn born?"
    python sample.py --out_dir=out/no_tool --eval                                # recall per split

With no --out_dir, the default experiment's (out/default). This file is what every caller that answers
questions stands on: `answer()` (the one answering loop), `evaluate()` (recall per split, which train.py
calls), and reading a run back: `load_checkpoint()`, `build()` (the model a run's config describes) and
`load()` (both).
"""
import argparse
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

import calm
import data
from db import DB_FILE, run_sql
from model import ModelConfig, build_model, generate


def answer(model, questions, tool=False, db_path=None, batch_size=256, max_new_tokens=128):
    """Batched greedy answering. -> one dict per question: {'answer', 'sql', 'result'}.
    Tool mode: generation stops at END_SQL or EOT; rows that wrote a query get its result
    appended (<|result|>...<|/result|>) and continue until EOT."""
    out = []
    for i in range(0, len(questions), batch_size):
        prompts = [data.prompt_ids(q) for q in questions[i:i + batch_size]]
        first = generate(model, prompts, max_new_tokens, {data.EOT, data.END_SQL} if tool else {data.EOT})
        rows = [{'answer': '', 'sql': None, 'result': None} for _ in prompts]
        again = []  # (row, prompt + query + result)
        for r, (p, g) in enumerate(zip(prompts, first)):
            if tool and g and g[-1] == data.END_SQL:
                sql = data.decode([t for t in g if t < 256])  # the bytes between <|sql|> and <|/sql|>
                result = run_sql(sql, db_path)
                rows[r].update(sql=sql, result=result)
                again.append((r, p + g + [data.RESULT] + data.encode(result) + [data.END_RESULT]))
            else:
                rows[r]['answer'] = data.decode([t for t in g if t != data.EOT])
        if again:
            second = generate(model, [p for _, p in again], max_new_tokens, {data.EOT})
            for (r, _), g in zip(again, second):
                rows[r]['answer'] = data.decode([t for t in g if t != data.EOT])
        out += rows
    return out


# ----------------------------------------------------------------------------- a run's checkpoints and model
def list_checkpoints(out_dir):
    """The checkpoints in out_dir, newest first."""
    if not os.path.isdir(out_dir):
        return []
    return sorted((os.path.join(out_dir, f) for f in os.listdir(out_dir) if f.startswith('ckpt_') and f.endswith('.pt')),
                  reverse=True)


def load_checkpoint(out_dir):
    """The newest readable checkpoint in out_dir (or a file path) -> (path, state) or (None, None).
    weights_only=True: a checkpoint from elsewhere cannot run code. A corrupt file is reported and
    the previous checkpoint is used."""
    paths = [out_dir] if os.path.isfile(out_dir) else list_checkpoints(out_dir)
    for path in paths:
        try:
            return path, torch.load(path, map_location='cpu', weights_only=True)
        except Exception as e:
            print(f"warning: checkpoint {path} is unreadable ({type(e).__name__}: {str(e)[:120]}); "
                  f"trying the previous one", file=sys.stderr)
    return None, None


def build(cfg):
    """The model a run's config describes, and the part of it whose state_dict a checkpoint stores.
    arch='calm': the anchor and augments are built from their own checkpoints and frozen; the composition
    (calm.CALM, whose state_dict holds only the cross-attention) is what trains and is checkpointed.
    init_from: the model starts from that run's weights."""
    def trained(path):  # the model of an earlier run, with its weights
        where, ckpt = load_checkpoint(path)
        if ckpt is None or ckpt.get('tokenizer') != data.TOKENIZER:
            sys.exit(f"error: no readable checkpoint with this tokenizer in {path!r}")
        model, part = build(ckpt['config'])
        part.load_state_dict(ckpt['model'])
        return model
    if cfg['arch'] == 'calm':
        model = calm.from_config(cfg, trained(cfg['anchor_dir']), [trained(d) for d in cfg['augment_dirs'].split(',')])
        return model, model
    model = build_model(ModelConfig.from_dict({**cfg, 'vocab_size': data.VOCAB_SIZE}))
    if cfg.get('init_from'):  # .get: checkpoints older than the key
        model.load_state_dict(trained(cfg['init_from']).state_dict())
    return model, model


def load(out_dir, device='cpu'):
    """-> (model, config) from the newest checkpoint in out_dir; a clear exit on any problem."""
    if not os.path.exists(out_dir):
        sys.exit(f"error: {out_dir} not found (train first: python train.py ...)")
    path, ckpt = load_checkpoint(out_dir)
    if ckpt is None:
        sys.exit(f"error: no readable checkpoint in {out_dir}")
    if ckpt.get('tokenizer') != data.TOKENIZER:
        sys.exit(f"error: {path} uses another vocabulary/tokenizer than this code ({ckpt.get('tokenizer')!r})")
    cfg = ckpt['config']
    model, trainable = build(cfg)
    try:
        trainable.load_state_dict(ckpt['model'])
    except RuntimeError as e:
        sys.exit(f"error: {path} does not fit the model its config describes ({str(e).splitlines()[0]})")
    return model.to(device).eval(), cfg


# ----------------------------------------------------------------------------- recall
def eval_docs(data_dir, tool, max_per_split=0):
    """{split: [QA document]}: the QA of each split, in a fixed shuffled order."""
    docs = data.read_jsonl(os.path.join(data_dir, data.FILES['qa_tool' if tool else 'qa']))
    out = {}
    for s in data.SPLITS:
        mine = [d for d in docs if d['split'] == s]
        order = np.random.default_rng(0).permutation(len(mine))
        out[s] = [mine[i] for i in order[:max_per_split or None]]
    return out


def eval_questions(data_dir, tool, max_per_split=0):
    """{split: [(question, gold answer)]}: the QA of each split, in a fixed shuffled order."""
    return {s: [(d['messages'][0]['content'], d['answer']) for d in docs]
            for s, docs in eval_docs(data_dir, tool, max_per_split).items()}


def value_bits(model, docs, pool_bits, rank=0, world=1, batch_size=256):
    """The trained facts' information a model holds, counted from its loss as the frontier papers count capacity
    (Allen-Zhu & Li 2024), not from exact answers. For each no-tool QA document of docs (eval_docs' 'train'),
    teacher-forced: lacking = -log2 p(the gold value's bytes | the dialog before them); a fact carries
    pool_bits[attribute] = log2(pool size) bits (meta.json's bits_per_fact), so the model holds log2(pool) - lacking
    of it (a code built from the model would write the value in that many bits fewer than the uniform code over the
    pool; negative while the model writes the pool's values worse than that code, as early in training).
    -> {'lacking': mean bits lacking per fact, 'held': mean bits held per fact}; under DDP the sums are reduced."""
    docs = docs[rank::world]
    device = next(model.parameters()).device
    sums = torch.zeros(3, dtype=torch.float64)   # bits lacking, bits carried, facts
    for i in range(0, len(docs), batch_size):
        chunk = docs[i:i + batch_size]
        seqs = [data.render(d['messages'])[0] for d in chunk]     # ... answer ending with the value, then EOT
        idx = torch.full((len(seqs), max(map(len, seqs)) - 1), data.PAD, dtype=torch.long)
        at = torch.zeros(idx.shape, dtype=torch.bool)              # the positions that predict the value's bytes
        targets = []
        for r, (ids, d) in enumerate(zip(seqs, chunk)):
            n, end = len(data.encode(d['answer'])), len(ids) - 1   # ids[end] is EOT
            idx[r, :end] = torch.tensor(ids[:end])
            at[r, end - n - 1:end - 1] = True                      # logits at j predict ids[j + 1]
            targets += ids[end - n:end]
        with torch.no_grad():
            logp = F.log_softmax(model(idx.to(device), at=at.to(device)).double(), -1).cpu()   # (n, v), row-major
        sums[0] -= logp[torch.arange(len(targets)), torch.tensor(targets)].sum() / math.log(2)
        sums[1] += sum(pool_bits[d['attribute']] for d in chunk)
        sums[2] += len(chunk)
    if world > 1:
        torch.distributed.all_reduce(sums)
    lacking, carried, n = sums.tolist()
    return {'lacking': lacking / max(n, 1), 'held': (carried - lacking) / max(n, 1)}


def is_right(answer, gold):
    """An answer is right when it ends with the exact gold value, as a whole word (as the reference study
    counts; before 2026-12-02 this project counted any answer containing the value, which also credits an
    answer listing several values, or a longer value that contains the gold one)."""
    a = answer.rstrip()
    return a.endswith(gold) and (len(a) == len(gold) or not a[-len(gold) - 1].isalnum())


def evaluate(model, cfg, data_dir, max_per_split=0, rank=0, world=1, splits=data.SPLITS, count=is_right):
    """Recall per split (of `splits`): the fraction of questions answered right (count: is_right, or
    several counts as a dict {name: function} -> {name: recall per split}). Under DDP each rank answers
    every world-th question and the counts are summed."""
    counts = count if isinstance(count, dict) else {None: count}
    result = {name: {} for name in counts}
    for split, qs in eval_questions(data_dir, cfg['tool'], max_per_split).items():
        if split not in splits:
            continue
        mine = qs[rank::world]
        answers = answer(model, [q for q, _ in mine], tool=cfg['tool'],
                         db_path=os.path.join(data_dir, DB_FILE), batch_size=cfg['eval_batch'])
        for name, right in counts.items():
            hits = torch.tensor([sum(right(a['answer'], gold) for (_, gold), a in zip(mine, answers)), len(mine)])
            if world > 1:
                torch.distributed.all_reduce(hits)
            result[name][split] = hits[0].item() / hits[1].item() if hits[1] else None   # exact: 380/400 is 0.95
    return result if isinstance(count, dict) else result[None]


def contains(answer, gold):
    """The count of results before 2026-12-02: the answer contains the gold value anywhere."""
    return gold in answer


def device_problem(name, here=True):
    """Why `name` is no device to run on, or None: 'auto', 'cpu', 'cuda' or 'cuda:N' (train.py's and this
    CLI's --device); with here, a cuda device must also exist on this machine."""
    kind, colon, index = name.partition(':')
    if name in ('auto', 'cpu'):
        return None
    if kind != 'cuda' or (colon and not index.isdigit()):
        return "must be 'auto', 'cpu', 'cuda' or 'cuda:N'"
    if here and not torch.cuda.is_available():
        return "needs a GPU, and none is available here (use 'cpu' or 'auto')"
    if here and colon and int(index) >= torch.cuda.device_count():
        return f"names GPU {index}, but this machine has {torch.cuda.device_count()}"
    return None


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out_dir', default='out/default')
    ap.add_argument('--tool', action='store_true', help='answer through SQL (default: as the model was trained)')
    ap.add_argument('--no_tool', action='store_true', help='answer from the weights even if trained with the tool')
    ap.add_argument('--question', help='answer this question and exit')
    ap.add_argument('--eval', action='store_true', help='recall on every split, as a table')
    ap.add_argument('--max_per_split', type=int, default=0, help='--eval: questions per split (0 = all)')
    ap.add_argument('--seed', type=int, default=0, help='unused by greedy decoding; kept for a uniform CLI')
    ap.add_argument('--device', default='cpu', help="'cpu', 'cuda', 'cuda:N' or 'auto' (cuda if available)")
    args = ap.parse_args(argv)
    problem = device_problem(args.device)
    if problem:
        sys.exit(f"error: --device {args.device!r} {problem}")
    if args.max_per_split < 0:
        sys.exit(f"error: --max_per_split must be >= 0 (0 = all), got {args.max_per_split}")
    if args.question is not None and not args.question.strip():
        sys.exit("error: --question is empty (leave it out to ask interactively)")
    if args.tool and args.no_tool:
        sys.exit("error: --tool and --no_tool exclude each other")
    if not os.path.exists(args.out_dir):
        sys.exit(f"error: --out_dir {args.out_dir!r} not found (train first: python train.py ...)")
    if not list_checkpoints(args.out_dir) and not os.path.isfile(args.out_dir):
        sys.exit(f"error: --out_dir {args.out_dir!r} holds no checkpoint (ckpt_*.pt)")
    if args.device == 'auto':
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    torch.manual_seed(args.seed)
    model, cfg = load(args.out_dir, args.device)
    tool = args.tool or (cfg['tool'] and not args.no_tool)
    data_dir = data.dir_of(cfg)
    db_path = os.path.join(data_dir, DB_FILE)
    if tool and not os.path.exists(db_path):
        sys.exit(f"error: {db_path} not found; run `python data.py all --data_dir {data_dir}`")
    print(f"{args.out_dir}: {cfg['arch']}, {model.num_params():,} params, answering {'through SQL' if tool else 'from the weights'}")
    if args.eval:
        recall = evaluate(model, {**cfg, 'tool': tool}, data_dir, args.max_per_split)
        print(f"{'split':10s} {'questions':>10s} {'recall':>8s}")
        for split, items in eval_questions(data_dir, tool, args.max_per_split).items():
            print(f"{split:10s} {len(items):>10d} {recall[split] or 0:>8.3f}")
        return
    questions = [args.question] if args.question else None
    while True:
        if questions is None:
            try:
                q = input('question> ').strip()
            except EOFError:
                return
            if not q:
                continue
        else:
            q = questions.pop()
        a = answer(model, [q], tool, db_path)[0]
        if a['sql'] is not None:
            print(f"  SQL:    {a['sql']}\n  result: {a['result']}")
        print(f"  answer: {a['answer']}")
        if questions is not None and not questions:
            return


if __name__ == '__main__':
    main(sys.argv[1:])
