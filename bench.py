"""
Benchmarks: figures and ratios measured side by side in one run (never timed asserts in tests).

    python bench.py data [--num 1000000]   # people/s, bios+QA time, DB build, run_sql latency
    python bench.py train                  # training tokens/s, MFU against measured matmul FLOP/s, packing
    python bench.py generate               # KV-cache decoding against recomputation; recall eval time
    python bench.py scan [--threads 1]     # selective scan: torch backend against the sequential loop

scan: Shapes as in a small Mamba layer: batch 4, dim 256, d_state 16, inputs as the mixer passes them at init
(delta_bias + softplus, D, z). Every measurement runs in a fresh process (spawned), so that its peak memory
can be read: on CPU, the growth of the peak resident set (ru_maxrss) during the first call, i.e. everything
the call touches: temporaries, saved tensors and gradients. On CUDA, torch.cuda.max_memory_allocated.
fwd is under torch.no_grad(); fwd+bwd includes the backward to all inputs. Times are medians of 5 calls
(3 for the loop, a single call for the loop at l=4096). On a machine busy with other jobs, use threads=1:
with 2 threads every large op waits for the descheduled thread and the torch backend looks 5-10x slower.
"""
import argparse
import concurrent.futures
import json
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
import sample
import ssm_triton
import train
from model import ModelConfig, build_model, generate


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


def time_steps(model, batches, steps=15, warmup=3):
    """Seconds per optimizer step (forward + backward + AdamW) over the given batches."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for i in range(warmup + steps):
        if i == warmup:
            t0 = time.perf_counter()
        idx, tgt, mask, pos, seg = batches[i % len(batches)]
        logits = model(idx, pos=pos, seg=seg)
        ce = F.cross_entropy(logits.view(-1, logits.size(-1)), tgt.view(-1), reduction='none')
        ((ce * mask.view(-1)).sum() / mask.sum()).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return (time.perf_counter() - t0) / steps


def padded_batches(packer, rows, n):
    """The naive alternative to packing: one dialog per row, padded to the batch's longest dialog."""
    out = []
    for k in range(n):
        docs = range(k * rows, (k + 1) * rows)
        L = max(int(packer.lens[j]) for j in docs)
        idx = np.full((rows, L), 256, np.int64)
        tgt, mask, seg = idx.copy(), np.zeros((rows, L), np.float32), np.full((rows, L), -1, np.int64)
        for i, j in enumerate(docs):
            tok = packer.sources[packer.src[j]][0]
            a, n_ = int(tok['offsets'][packer.doc[j]]), int(packer.lens[j])
            idx[i, :n_] = tok['tokens'][a:a + n_]
            tgt[i, :n_ - 1] = tok['tokens'][a + 1:a + n_]
            mask[i, :n_ - 1] = tok['mask'][a + 1:a + n_]
            seg[i, :n_] = 0
        pos = np.broadcast_to(np.arange(L), (rows, L)).copy()
        out.append(tuple(torch.from_numpy(x) for x in (idx, tgt, mask, pos, seg)))
    return out


def bench_train():
    peak = matmul_flops()
    print(f"float32 matmul (1024^3), {torch.get_num_threads()} threads: {peak / 1e9:.1f} GFLOP/s\n")
    print(f"{'setting':44s} {'params':>9s} {'tok/s':>9s} {'useful tok/s':>13s} {'ms/step':>8s} {'MFU':>6s}")
    runs = [('configs/no_tool.py (packed)', ['configs/no_tool.py'], {}),
            ('configs/tool.py (packed)', ['configs/tool.py'], {}),
            ('6 layers d=384, tool data (packed)', ['configs/tool.py', '--n_layer=6', '--n_embd=384', '--n_head=6'], {})]
    for name, argv, _ in runs:
        cfg = train.get_config(argv)
        d = data.dir_of(cfg)
        data.prepare(d, **data.options_of(cfg))
        torch.manual_seed(0)
        model = build_model(ModelConfig.from_dict({**cfg, 'vocab_size': data.VOCAB_SIZE}))
        packer = train.make_packer(cfg, d)
        B, T = cfg['batch_size'], cfg['block_size']
        batches = [tuple(torch.from_numpy(a) for a in packer.next_rows(B)) for _ in range(6)]
        sec = time_steps(model, batches, steps=5 if cfg['n_embd'] > 128 else 15)
        useful = sum(int((b[4] >= 0).sum()) for b in batches) / len(batches)
        flops = model.flops_per_token(T) * B * T / sec
        print(f"{name:44s} {model.num_params():>9,d} {B * T / sec:>9,.0f} {useful / sec:>13,.0f} {sec * 1e3:>8.0f} "
              f"{flops / peak:>6.1%}")
        if 'no_tool' in name or name.startswith('configs/tool'):
            # the same dialogs, one per row, padded to the longest in the batch (about as many tokens per step)
            rows = max(1, int(useful // (packer.lens.mean())))
            pb = padded_batches(packer, rows, 6)
            sec_p = time_steps(model, pb)
            useful_p = sum(int((b[4] >= 0).sum()) for b in pb) / len(pb)
            L = pb[0][0].shape[1]
            print(f"{'  same, one dialog per padded row':44s} {'':>9s} {rows * L / sec_p:>9,.0f} {useful_p / sec_p:>13,.0f} "
                  f"{sec_p * 1e3:>8.0f}   -> packing gives {useful / sec / (useful_p / sec_p):.2f}x useful tokens/s")


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
    """In a fresh process: (median ms, peak MB) of one scan call, fwd or fwd+bwd."""
    torch.set_num_threads(threads)
    import ssm_triton
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
    return statistics.median(times) * 1e3, peak


def bench_scan(lengths=(256, 1024, 4096), threads=None):
    threads = threads or torch.get_num_threads()
    import ssm_triton
    impls = [("ref", "cpu"), ("torch", "cpu"), ("torch-recompute", "cpu")]  # the last with TORCH_SAVE_MB = 0
    if torch.cuda.is_available():
        impls += [(name, "cuda") for name in ("triton", "mamba_ssm") if name in ssm_triton.available_backends()]
    load = os.getloadavg()[0]
    print(f"selective scan, batch 4, dim 256, d_state 16, {threads} CPU threads, "
          f"load average {load:.1f} on {os.cpu_count()} cores" + (" (busy: times inflated)" if load > 1 else ""))
    print(f"{'L':>5} {'impl':>20} {'fwd ms':>9} {'fwd+bwd ms':>11} {'x ref fwd':>10} {'x ref f+b':>10} "
          f"{'peak MB fwd':>12} {'peak MB f+b':>12}")
    spawn = multiprocessing.get_context("spawn")
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
            print(f"{l:>5} {impl + ' ' + device:>20} {tf:>9.1f} {tb:>11.1f} {ref[0] / tf:>10.1f} {ref[1] / tb:>10.1f} "
                  f"{mf:>12.0f} {mb:>12.0f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('what', choices=['data', 'train', 'generate', 'scan'])
    ap.add_argument('--threads', type=int, default=0, help='scan: torch threads (0 = default)')
    ap.add_argument('--num', type=int, default=1_000_000, help='data: number of people')
    args = ap.parse_args(argv)
    if args.what == 'data':
        bench_data(args.num)
    elif args.what == 'train':
        bench_train()
    elif args.what == 'generate':
        bench_generate()
    elif args.what == 'scan':
        bench_scan(threads=args.threads or None)


if __name__ == '__main__':
    sys.exit(main())
