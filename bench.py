"""
Benchmarks: figures and ratios measured side by side in one run (never timed asserts in tests).

    python bench.py data [--num 1000000]   # people/s, bios+QA time, DB build, run_sql latency
    python bench.py train [--nanogpt ../nanoGPT/model.py]   # training tokens/s and FLOP/s against the matmul rate,
                                           # packed rows against one-dialog rows, nanoGPT, Mamba against Transformer
    python bench.py generate               # KV-cache decoding against recomputation; recall eval time
    python bench.py scan [--threads 1]     # selective scan: cpp and torch backends against the sequential loop

scan: Shapes as in a small Mamba layer: batch 4, dim 256, d_state 16, inputs as the mixer passes them at init
(delta_bias + softplus, D, z). Every measurement runs in a fresh process (spawned), so that its peak memory
can be read: on CPU, the growth of the peak resident set (ru_maxrss) during the first call, i.e. everything
the call touches: temporaries, saved tensors and gradients. On CUDA, torch.cuda.max_memory_allocated.
fwd is under torch.no_grad(); fwd+bwd includes the backward to all inputs. Times are the best of 5 calls
(3 for the loop, a single call for the loop at l=4096): on a machine shared with other jobs the fastest
call is the least disturbed one. On a busy machine, use threads=1: with 2 threads every large torch op
waits for the descheduled thread and the torch backend looks 5-10x slower (cpp hands out its tasks
dynamically and suffers less).
The measuring processes run with glibc's malloc told to keep freed memory (SCAN_MALLOC_ENV): by default it
hands the large freed blocks back to the OS at every call and page-faults them in again at the next, which
cost the cpp backend 25-50% at l=1024 in a fresh process (1 thread: 13 ms against 16-20 ms) and every
backend a little; a long-running process mostly settles out of it once its largest blocks have been freed.
After the table, the cpp backend's time at l=1024 is set against its memory floor: the bytes it must read
and write (inputs, outputs, gradients) at the bandwidth of a large tensor copy measured in the same run.
"""
import argparse
import concurrent.futures
import contextlib
import dataclasses
import importlib.util
import io
import json
import math
import multiprocessing
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

import data
import db
import packing
import sample
import ssm_triton
import train
from model import ModelConfig, build_model, cpu_kernel_available, cpu_kernel_error, generate


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_data(num):
    d = tempfile.mkdtemp(prefix='bench_data_')
    try:
        opts = {**data.DEFAULTS, 'num': num, 'unseen': num // 10}
        t0 = time.perf_counter()
        P = data.make_people(opts)
        t_people = time.perf_counter() - t0
        t = {}
        for what in data.FILES:  # one at a time, to see each file's cost
            t0 = time.perf_counter()
            data.write_file(P, d, what)
            t[what] = time.perf_counter() - t0
        t0 = time.perf_counter()
        data.write_files(P, d, list(data.FILES), workers=2)  # as data.py does it
        t_par = time.perf_counter() - t0
        with open(os.path.join(d, 'meta.json'), 'w') as f:
            json.dump(P.meta(), f)
        t0 = time.perf_counter()
        path = db.create(d)
        t_db = time.perf_counter() - t0
        people = [{'name': P.names[i], 'birth_place': P.value('birth_place', i)} for i in range(0, len(P), max(1, len(P) // 2000))]
        lat = []
        for p in people:
            q = data.sql_for('birth_place', p['name'])
            t0 = time.perf_counter()
            out = db.run_sql(q, path)
            lat.append(time.perf_counter() - t0)
            assert out == p['birth_place'], (q, out)
        n, mb = len(P), lambda w: os.path.getsize(os.path.join(d, data.FILES[w])) / 2**20
        print(f"\n{'what':40s} {'figure':>14s}   goal")
        print(f"{'people drawn (incl. unseen group)':40s} {n:>14,d}")
        print(f"{'people drawn per second':40s} {n / t_people:>10,.0f} p/s   ({t_people:.1f} s, faker pools included)")
        for w in data.FILES:
            print(f"{'  write ' + data.FILES[w]:40s} {t[w]:>12.1f} s   ({mb(w):,.0f} MB)")
        print(f"{'  the four files, one process':40s} {sum(t.values()):>12.1f} s")
        print(f"{'  the four files, 2 worker processes':40s} {t_par:>12.1f} s")
        total = t_people + t_par
        print(f"{'total: people + bios + QA + tool QA':40s} {total:>12.1f} s   < 60 s: {'yes' if total < 60 else 'NO'}")
        print(f"{'DB build (people.db)':40s} {t_db:>12.1f} s   < 30 s: {'yes' if t_db < 30 else 'NO'}")
        med = statistics.median(lat) * 1e6
        print(f"{'run_sql indexed lookup, median':40s} {med:>11.0f} us   < 100 us: {'yes' if med < 100 else 'NO'}")
        print(f"{'run_sql indexed lookup, p90':40s} {sorted(lat)[int(0.9 * len(lat))] * 1e6:>11.0f} us")
        print(f"{'peak memory (RSS)':40s} {peak_rss_mb():>11,.0f} MB   < 4096 MB: {'yes' if peak_rss_mb() < 4096 else 'NO'}")
    finally:
        shutil.rmtree(d)


def matmul_flops(n=1024, reps=20):
    """This machine's float32 matmul rate (FLOP/s): the ceiling that MFU is measured against."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n ** 3 * reps / (time.perf_counter() - t0)


def train_step(model, opt, batch, one_per_row, cpu_kernel=False):
    """One optimizer step (forward + backward + AdamW) on a batch of Packer rows; cpu_kernel: as train.py
    steps one-dialog rows on CPU, forward and backward in transformer_cpu.cpp."""
    idx, tgt, mask, pos, seg = batch
    if cpu_kernel:   # the gradients added to .grad
        model.cpu_loss(idx, (seg >= 0).sum(1), tgt, mask, 1.0 / float(mask.sum()))
    else:
        at = mask > 0   # as train.py: the head only where the loss is
        logits = model(idx, at=at) if one_per_row else model(idx, pos=pos, seg=seg, at=at)
        (F.cross_entropy(logits, tgt[at], reduction='none') * mask[at]).sum().div(mask.sum()).backward()
    opt.step()
    opt.zero_grad(set_to_none=not cpu_kernel)


def useful_flops(model, batch):
    """The work a batch needs, counted as the frontier papers do: 6 FLOPs per weight per real token (the
    embedding table is a lookup, and the output head is needed only where the loss is), plus causal attention
    over each document's own length (fwd + bwd: 12 x layers x width x (position + 1) per token)."""
    c, real, loss_tokens = model.config, batch[4] >= 0, int((batch[2] > 0).sum())
    pos = batch[3]
    head = model.head.weight.numel()
    weights = model.num_params() - model.embed.weight.numel() - head
    attention = 12 * c.n_layer * c.n_embd * int(((pos + 1) * real).sum()) if c.arch == 'transformer' else 0
    return 6 * weights * int(real.sum()) + 6 * head * loss_tokens + attention


def step_breakdown(step, steps=8):
    """Where a training step's time goes -> {matmul, attention, rest}: shares of the self CPU time of its ops under
    torch.profiler (the profiler's own overhead falls mostly in the rest, the many small ops)."""
    with torch.profiler.profile() as prof:
        for i in range(steps):
            step(i)
    mm = att = total = 0
    for e in prof.key_averages():
        total += e.self_cpu_time_total
        if e.key in ('aten::mm', 'aten::addmm', 'aten::bmm'):
            mm += e.self_cpu_time_total
        elif 'scaled_dot_product' in e.key:
            att += e.self_cpu_time_total
    return dict(matmul=mm / total, attention=att / total, rest=1 - (mm + att) / total)


def steps_for(step, steps=4, min_seconds=0.2):
    """Warm a step function up; -> how many of its steps fill min_seconds (at least `steps`)."""
    step(0)
    t0 = time.perf_counter()
    step(1)
    return max(steps, math.ceil(min_seconds / max(time.perf_counter() - t0, 1e-6)))


def interleaved(settings, rounds=5, steps=4):
    """settings: {name: step function (of a step number)} -> {name: median seconds per step}. Every round
    times each setting in turn, so a drift of the machine's speed hits all alike: steps_for() steps, after
    one untimed step (the first step after another setting's runs on the caches that one filled; a training
    run never switches models)."""
    n_steps = {name: steps_for(step, steps) for name, step in settings.items()}
    times = {name: [] for name in settings}
    for r in range(rounds):
        for name, step in settings.items():
            step(r)
            t0 = time.perf_counter()
            for i in range(n_steps[name]):
                step(r * n_steps[name] + i)
            times[name].append((time.perf_counter() - t0) / n_steps[name])
    return {name: statistics.median(t) for name, t in times.items()}


def ours(cfg, d, batch_rows, n_batches=4, **over):
    """(model, its batches) for a config of ours on the data in d."""
    c = {**cfg, **over}
    torch.manual_seed(0)
    model = build_model(ModelConfig.from_dict({**c, 'vocab_size': data.VOCAB_SIZE}))
    packer = packing.make_packer({**c, 'batch_size': batch_rows, 'grad_accum': 1}, d)
    return model, [tuple(torch.from_numpy(a) for a in packer.next_rows(batch_rows)) for _ in range(n_batches)]


def stepper(model, batches, one_per_row, cpu_kernel=False):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=cpu_kernel)   # train.py's optimizer with the kernel
    return lambda i: train_step(model, opt, batches[i % len(batches)], one_per_row, cpu_kernel)


def load_nanogpt(path):
    """nanoGPT's model.py (karpathy/nanoGPT, a clone of the user's: not part of this repository)."""
    spec = importlib.util.spec_from_file_location('nanogpt_model', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nanogpt_stepper(module, n_params, n_layer, n_head, batches):
    """nanoGPT's GPT of our depth with the width whose parameter count is closest to n_params, on the same
    rows (packed rows, as nanoGPT reads them: one causal text per row; its loss on our loss tokens)."""
    known = {f.name for f in dataclasses.fields(module.GPTConfig)}
    T = batches[0][0].shape[1]

    # its size: tied embedding + learned positions + 12 w^2 per block (LayerNorms aside)
    width = min(range(2 * n_head, 1025, 2 * n_head), key=lambda w: abs(n_params - (data.VOCAB_SIZE + T) * w
                                                                        - n_layer * 12 * w * w))
    want = dict(block_size=T, vocab_size=data.VOCAB_SIZE, n_layer=n_layer, n_head=n_head, n_embd=width,
                dropout=0.0, bias=False, use_rmsnorm=False, use_relu=False, use_squared_relu=False)
    torch.manual_seed(0)
    with contextlib.redirect_stdout(io.StringIO()):   # it prints its size
        model = module.GPT(module.GPTConfig(**{k: v for k, v in want.items() if k in known}))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step(i):
        idx, tgt, mask, _, _ = batches[i % len(batches)]
        _, loss = model(idx, torch.where(mask > 0, tgt, -1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return model, step


def combined_rate(rounds):
    """rounds: [[(work, seconds) of each process]] for calls the processes started together -> the median over
    rounds of their combined rate, all the work over the slowest one's time (a process that finished first
    does not count as working on)."""
    return statistics.median(sum(w for w, _ in r) / max(t for _, t in r) for r in rounds)


def _pair_worker(cfg, d, widths, rounds, n_steps, barrier):
    """One of two processes, one thread each (the grid's mode): the 1024^3 matmul, then each width's training
    step on 64 one-dialog rows as train.py takes it (transformer_cpu.cpp where it builds), n_steps[name] of
    them (the same in both), every round started with the other process's (barrier) -> {name: [(work, s)]}."""
    torch.set_num_threads(1)
    kernel = cpu_kernel_available(quiet=True)
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    tasks = {'matmul': (lambda i: a @ b, 2 * 1024 ** 3)}
    for width in widths:
        model, batches = ours(cfg, d, 64, n_embd=width, n_head=2, one_per_row=True)
        tasks[width] = (stepper(model, batches, True, kernel), statistics.mean(useful_flops(model, x) for x in batches))
    out = {name: [] for name in tasks}
    for step, _ in tasks.values():   # warm-up
        step(0)
    for r in range(rounds):
        for name, (step, work) in tasks.items():
            step(r)   # untimed, as in interleaved()
            barrier.wait()
            t0 = time.perf_counter()
            for i in range(n_steps[name]):
                step(r * n_steps[name] + i)
            out[name].append((work * n_steps[name], time.perf_counter() - t0))
    return out


def bench_pair(cfg, d, widths, peak2, tok_per_s2, sec_per_step2, rounds=5, seconds=0.4):
    """Two processes of one thread each, side by side, as sweep.py runs the grid: their combined useful
    FLOP/s against the machine's matmul rate (the better of one 2-thread and two 1-thread matmuls), and
    against one process of 2 threads (tok_per_s2). Both processes time the same number of steps, about
    `seconds` of work each (from the 2-thread step's time, sec_per_step2)."""
    n_steps = {'matmul': math.ceil(seconds * peak2 / 2 / 1024 ** 3),
               **{w: math.ceil(seconds / 2 / sec_per_step2[w]) for w in widths}}
    spawn = multiprocessing.get_context('spawn')
    barrier = spawn.Manager().Barrier(2)
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=spawn) as pool:
        outs = list(pool.map(_pair_worker, *zip(*[(cfg, d, widths, rounds, n_steps, barrier)] * 2)))
    rate = {name: combined_rate(list(zip(*(o[name] for o in outs)))) for name in outs[0]}
    peak = max(peak2, rate['matmul'])
    print(f"\ntwo processes x 1 thread (the grid's mode): two 1024^3 matmuls at once {rate['matmul'] / 1e9:.1f} GFLOP/s, "
          f"one of 2 threads {peak2 / 1e9:.1f}; the machine's rate: {peak / 1e9:.1f}")
    label = 'transformer_cpu.cpp' if cpu_kernel_available(quiet=True) else 'torch ops'
    print(f"{'  one dialog per row, 64 rows each, ' + label:40s} {'params':>8s} {'useful tok/s':>13s} {'useful GFLOP/s':>15s} "
          f"{'of matmul':>10s} {'/ 1 process':>12s} {'1 process of matmul':>20s}")
    for width in widths:   # the last column: the one 2-thread process above, against the same rate
        model, batches = ours(cfg, d, 64, n_embd=width, n_head=2, one_per_row=True)
        tok_per_flop = statistics.mean(int((x[4] >= 0).sum()) / useful_flops(model, x) for x in batches)
        tok = rate[width] * tok_per_flop
        print(f"  width {width:<32d} {model.num_params():>8,d} {tok:>13,.0f} {rate[width] / 1e9:>15.1f} "
              f"{rate[width] / peak:>10.1%} {tok / tok_per_s2[width]:>11.2f}x "
              f"{tok_per_s2[width] / tok_per_flop / peak:>20.1%}")


def bench_train(nanogpt=None, rounds=5):
    peak = matmul_flops()
    print(f"float32 matmul (1024^3), {torch.get_num_threads()} threads: {peak / 1e9:.1f} GFLOP/s; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; medians of {rounds} interleaved rounds\n")
    cfg = train.get_config(['configs/no_tool.py'])
    d = data.dir_of(cfg)
    data.prepare(d, **data.options_of(cfg))
    # (1) small Transformers on the in-weight QA (~80-token dialogs): packed rows of 256 with the document
    # mask (configs/no_tool.py's rows) against rows of one dialog each, batched by length
    print(f"{'2-layer Transformer, no-tool QA':40s} {'params':>8s} {'useful tok/s':>13s} {'ms/step':>8s} "
          f"{'useful GFLOP/s':>15s} {'of matmul':>10s}")
    # (the C++ step, transformer_cpu.cpp, is what train.py takes for one-dialog rows on CPU; 24 rows: the grid's)
    kernel = cpu_kernel_available()
    variants = [('packed 6 x 256', False, 6, False), ('one dialog per row, 64 rows', True, 64, False),
                ('one dialog per row, 256 rows', True, 256, False)]
    if kernel:
        variants += [('one dialog per row, 64 rows, C++', True, 64, True), ('... 24 rows, C++', True, 24, True)]
    else:
        print(f"(no C++ step: transformer_cpu.cpp does not build here: {cpu_kernel_error()})")
    # width -> its 64 one-dialog rows' step (profiled below), its name, tokens/s and seconds per step
    one_dialog_steps, one_dialog_name, one_dialog_tps, one_dialog_sec = {}, {}, {}, {}
    for width in (16, 32, 64):
        settings, flops, tokens, names = {}, {}, {}, []
        for label, one, rows, cpp in variants:
            model, batches = ours(cfg, d, rows, n_embd=width, n_head=2, one_per_row=one)
            name = f"  width {width}, {label}"
            settings[name] = stepper(model, batches, one, cpp)
            flops[name] = statistics.mean(useful_flops(model, b) for b in batches)
            tokens[name] = statistics.mean(int((b[4] >= 0).sum()) for b in batches)
            names.append((name, model.num_params()))
            if one and rows == 64 and not cpp:
                one_dialog_steps[width] = settings[name]   # profiled below
            if one and rows == 64 and cpp == kernel:
                one_dialog_name[width] = name              # the two-process table's reference
        sec = interleaved(settings, rounds)
        one_dialog_sec[width] = sec[one_dialog_name[width]]
        one_dialog_tps[width] = tokens[one_dialog_name[width]] / one_dialog_sec[width]
        for name, n_params in names:
            print(f"{name:40s} {n_params:>8,d} {tokens[name] / sec[name]:>13,.0f} {sec[name] * 1e3:>8.1f} "
                  f"{flops[name] / sec[name] / 1e9:>15.1f} {flops[name] / sec[name] / peak:>10.1%}")
    # why small widths stay far from the matmul rate: the step's time by kind, one dialog per row (64 rows)
    print(f"\n{'where the time goes (one dialog per row, 64 rows, torch ops)':61s} {'matmul':>7s} {'attention':>10s} {'the rest':>9s}")
    for width, step in one_dialog_steps.items():
        b = step_breakdown(step)
        print(f"  width {width:<53d} {b['matmul']:>7.0%} {b['attention']:>10.0%} {b['rest']:>9.0%}")
    # (2) against nanoGPT's model.py at equal size, on the same dialogs, interleaved
    if nanogpt:
        module = load_nanogpt(nanogpt)
        print(f"\n{'against nanoGPT (' + nanogpt + ')':58s} {'params':>8s} {'useful tok/s':>13s} {'ours / nanoGPT':>15s}")
        for width in (16, 64):
            ours_model, one_rows = ours(cfg, d, 64, n_embd=width, n_head=2, one_per_row=True)
            _, packed_rows = ours(cfg, d, 6, n_embd=width, n_head=2)
            ng_model, ng_step = nanogpt_stepper(module, ours_model.num_params(), 2, 2, packed_rows)
            settings = {'ours': stepper(ours_model, one_rows, True, kernel), 'nanoGPT': ng_step}
            sec = interleaved(settings, rounds)
            tps = {'ours': statistics.mean(int((b[4] >= 0).sum()) for b in one_rows) / sec['ours'],
                   'nanoGPT': statistics.mean(int((b[4] >= 0).sum()) for b in packed_rows) / sec['nanoGPT']}
            print(f"  width {width}: ours, one dialog per row (64 rows{', C++' if kernel else ''}) {'':{17 - 5 * kernel}s} {ours_model.num_params():>8,d} "
                  f"{tps['ours']:>13,.0f} {tps['ours'] / tps['nanoGPT']:>14.2f}x")
            print(f"  nanoGPT GPT of width {ng_model.config.n_embd}, packed rows 6 x 256 (causal) {'':1s} "
                  f"{sum(p.numel() for p in ng_model.parameters()):>8,d} {tps['nanoGPT']:>13,.0f}")
    bench_pair(cfg, d, (16, 32, 64), peak, one_dialog_tps, one_dialog_sec, rounds)
    # (3) Mamba against a Transformer of about the same size, same data and rows
    tool = train.get_config(['configs/tool.py'])
    dt = data.dir_of(tool)
    data.prepare(dt, **data.options_of(tool))
    print()
    for label, one, rows in (('packed rows 8 x 512', False, 8), ('one dialog per row, 32 rows', True, 32)):
        tr, tr_rows = ours(tool, dt, rows, one_per_row=one)
        mb, mb_rows = ours(tool, dt, rows, arch='mamba', n_embd=88, one_per_row=one)   # the same rows
        sec = interleaved({'t': stepper(tr, tr_rows, one), 'm': stepper(mb, mb_rows, one)}, rounds, 2)
        tok = statistics.mean(int((b[4] >= 0).sum()) for b in tr_rows)
        print(f"tool QA, {label}: Transformer {tr.num_params():,} params {tok / sec['t']:,.0f} tok/s; "
              f"Mamba {mb.num_params():,} params {tok / sec['m']:,.0f} tok/s (scan: {ssm_triton.LAST_BACKEND}); "
              f"Mamba / Transformer {sec['t'] / sec['m']:.2f}")


def bench_generate():
    cfg = train.get_config(['configs/tool.py'])
    d = data.dir_of(cfg)
    data.prepare(d, **data.options_of(cfg))
    torch.manual_seed(0)
    model = build_model(ModelConfig.from_dict({**cfg, 'vocab_size': data.VOCAB_SIZE})).eval()
    with torch.no_grad():
        model.head.weight.mul_(30)  # peaky logits, so the untrained model does not stop at once

    def recompute(prompts, n):
        with torch.inference_mode():
            x = torch.tensor(prompts)
            for _ in range(n):
                x = torch.cat([x, model(x)[:, -1].argmax(-1, keepdim=True)], 1)
        return x
    print(f"{'decoding (greedy, no stop)':34s} {'batch':>6s} {'KV cache tok/s':>15s} {'recompute tok/s':>16s} {'speed-up':>9s}")
    n = 128
    for b in (1, 64):
        prompts = [data.prompt_ids('Where was Alejandra Scheuermann born?')] * b
        t0 = time.perf_counter()
        generate(model, prompts, n, stop_tokens=set())
        t_cache = time.perf_counter() - t0
        t0 = time.perf_counter()
        recompute(prompts, n)
        t_full = time.perf_counter() - t0
        print(f"{'165K-param Transformer, 128 tokens':34s} {b:>6d} {b * n / t_cache:>15,.0f} {b * n / t_full:>16,.0f} "
              f"{t_full / t_cache:>8.1f}x")
    qs = sample.eval_questions(d, False)
    questions = [q for split in qs.values() for q, _ in split][:4000]
    for tool in (False, True):
        t0 = time.perf_counter()
        sample.answer(model, questions, tool, os.path.join(d, 'people.db'))
        print(f"recall evaluation of {len(questions)} questions ({'tool' if tool else 'no tool'}), "
              f"untrained model (generates to the 128-token limit): {time.perf_counter() - t0:.1f} s")


def _inputs(b, d, n, l, device, requires_grad, seed=0):
    g = torch.Generator().manual_seed(seed)
    dt = torch.exp(torch.rand(d, generator=g) * (torch.log(torch.tensor(0.1)) - torch.log(torch.tensor(1e-3)))
                   + torch.log(torch.tensor(1e-3)))                # (d,) log-uniform in [1e-3, 0.1], as the mixer
    xs = dict(u=torch.randn(b, d, l, generator=g), delta=0.2 * torch.randn(b, d, l, generator=g),
              A=-torch.arange(1, n + 1.0).repeat(d, 1), B=torch.randn(b, n, l, generator=g),
              C=torch.randn(b, n, l, generator=g), D=torch.ones(d), z=torch.randn(b, d, l, generator=g),
              delta_bias=dt + torch.log(-torch.expm1(-dt)))
    return {k: v.to(device).requires_grad_(requires_grad) for k, v in xs.items()}


def _measure(impl, device, l, backward, reps, threads, b=4, d=256, n=16):
    """In a fresh process: (best ms, peak MB) of one scan call, fwd or fwd+bwd."""
    torch.set_num_threads(threads)
    import ssm_triton
    if impl == "cpp":
        ssm_triton._cpp_ops()  # load the compiled library before the memory baseline and the timing
    xs = _inputs(b, d, n, l, device, backward)
    if impl == "ref":
        fn = lambda: ssm_triton.selective_scan_ref(**xs, delta_softplus=True)
    else:
        if impl == "torch-recompute":  # the backward recomputes each chunk instead of reusing the forward's
            ssm_triton.TORCH_SAVE_MB, impl = 0, "torch"
        fn = lambda: ssm_triton.selective_scan(**xs, delta_softplus=True, backend=impl)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated() if device == "cuda" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for i in range(reps):
        t = time.perf_counter()
        with torch.set_grad_enabled(backward):
            y = fn()
            if backward:
                y.sum().backward()
        sync()
        times.append(time.perf_counter() - t)
        if i == 0:  # the first call's peak; later calls reuse freed memory
            if device == "cuda":
                peak = (torch.cuda.max_memory_allocated() - base) / 2**20
            else:
                peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 2**10  # KiB on Linux
        del y
        for x in xs.values():
            x.grad = None
    return min(times) * 1e3, peak


def _copy_bandwidth(threads, mb=256, reps=5):
    """Bytes/s of a large tensor copy (read + write), the memory rate the scan is set against."""
    torch.set_num_threads(threads)
    src = torch.randn(mb * 2**20 // 4)
    dst = torch.empty_like(src)
    times = []
    for _ in range(reps + 1):  # the first copy also faults the pages in
        t = time.perf_counter()
        dst.copy_(src)
        times.append(time.perf_counter() - t)
    return 2 * src.numel() * 4 / min(times[1:])


def _scan_bytes(b, d, l, n, backward):
    """Bytes a scan call must touch at least, in fp32: the forward reads u, delta, z (b, d, l) and B, C (b, n, l)
    and writes y; the backward reads them again with the output's gradient and writes the gradients of
    u, delta, z, B, C (A, D, delta_bias and the saved chunk states are small)."""
    fwd = 4 * b * d * l + 2 * b * n * l
    bwd = 7 * b * d * l + 4 * b * n * l
    return 4 * (fwd + (bwd if backward else 0))


SCAN_MALLOC_ENV = {"MALLOC_TRIM_THRESHOLD_": str(2**30), "MALLOC_MMAP_THRESHOLD_": str(2**28)}


def bench_scan(lengths=(256, 1024, 4096), threads=None):
    threads = threads or torch.get_num_threads()
    os.environ.update(SCAN_MALLOC_ENV)  # read by glibc when the spawned measuring processes start
    import ssm_triton
    # compile the cpp backend (or load its cached build) before any timing; it prints its compile time
    cpp = ["cpp"] if ssm_triton._cpp_ops() is not None else []
    impls = [("ref", "cpu"), *[(name, "cpu") for name in cpp], ("torch", "cpu"), ("torch-recompute", "cpu")]
    if torch.cuda.is_available():
        impls += [(name, "cuda") for name in ("triton", "mamba_ssm") if name in ssm_triton.available_backends()]
    load = os.getloadavg()[0]
    print(f"selective scan, batch 4, dim 256, d_state 16, {threads} CPU threads, "
          f"load average {load:.1f} on {os.cpu_count()} cores" + (" (busy: times inflated)" if load > 1 else ""))
    print("times: best of 5 calls (3 for the loop), each backend in a fresh process with "
          + " ".join(f"{k}={v}" for k, v in SCAN_MALLOC_ENV.items()))
    if not cpp:
        print(f"(no cpp backend: {ssm_triton._CPP['error']})")
    print(f"{'L':>5} {'impl':>20} {'fwd ms':>9} {'fwd+bwd ms':>11} {'x ref fwd':>10} {'x ref f+b':>10} "
          f"{'peak MB fwd':>12} {'peak MB f+b':>12}")
    spawn = multiprocessing.get_context("spawn")
    times = {}
    for l in lengths:
        ref = None
        for impl, device in impls:
            row = []
            for backward in (False, True):
                # the sequential loop is slow: one call at the longest length (that call is also the warm-up)
                reps = 1 if impl == "ref" and l >= 4096 else 3 if impl == "ref" else 5
                with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as pool:
                    row.append(pool.submit(_measure, impl, device, l, backward, reps, threads).result())
            (tf, mf), (tb, mb) = row
            ref = ref or (tf, tb)
            times[impl, l] = (tf, tb)
            print(f"{l:>5} {impl + ' ' + device:>20} {tf:>9.1f} {tb:>11.1f} {ref[0] / tf:>10.1f} {ref[1] / tb:>10.1f} "
                  f"{mf:>12.0f} {mb:>12.0f}")
    if cpp and 1024 in lengths:
        (rf, rb), (cf, cb) = times["ref", 1024], times["cpp", 1024]
        print(f"\ncpp against the loop at L=1024: {rf / cf:.0f}x fwd, {rb / cb:.0f}x fwd+bwd (goal: >= 50x fwd+bwd)")
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as pool:
            bw = pool.submit(_copy_bandwidth, threads).result()
        for what, ms, backward in (("fwd", cf, False), ("fwd+bwd", cb, True)):
            nbytes = _scan_bytes(4, 256, 1024, 16, backward)
            print(f"cpp {what:>7} at L=1024: must touch {nbytes / 2**20:.0f} MB in {ms:.1f} ms = "
                  f"{nbytes / ms / 1e6:.1f} GB/s; a 256 MB copy here: {bw / 1e9:.1f} GB/s, so the memory floor is "
                  f"{nbytes / bw * 1e3:.1f} ms and the scan takes {ms / (nbytes / bw * 1e3):.1f}x that")
        print("(the rest is arithmetic: one exp per state element and step, 2 x 4 x 256 x 1024 x 16 = 34M of them "
              "with the backward's recomputation, and ~25 multiplies/multiply-adds per element and step in all)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('what', choices=['data', 'train', 'generate', 'scan'])
    ap.add_argument('--threads', type=int, default=0, help='scan: torch threads (0 = default)')
    ap.add_argument('--num', type=int, default=1_000_000, help='data: number of people')
    ap.add_argument('--nanogpt', default='', help="train: path to nanoGPT's model.py, to compare against (not included)")
    args = ap.parse_args(argv)
    if args.num <= 0:
        sys.exit(f"error: --num must be > 0, got {args.num}")
    if args.threads < 0:
        sys.exit(f"error: --threads must be >= 0 (0 = torch's default), got {args.threads}")
    if args.nanogpt and not os.path.isfile(args.nanogpt):
        sys.exit(f"error: --nanogpt {args.nanogpt!r} is not a file (the path of nanoGPT's model.py)")
    if args.what == 'data':
        bench_data(args.num)
    elif args.what == 'train':
        bench_train(args.nanogpt or None)
    elif args.what == 'generate':
        bench_generate()
    elif args.what == 'scan':
        bench_scan(threads=args.threads or None)


if __name__ == '__main__':
    sys.exit(main())
