"""Mamba tool-question generation before (9e63c03: the prompt fed one token at a time) and after (the prompt through
the parallel scan, the decode step with batched matmuls), interleaved in one process, one thread, the same random
width-88 weights: `PYTHONPATH=. python results/bench/mamba_generation.py` from the repository root (needs git)."""
import importlib.util, os, statistics, subprocess, tempfile, time, torch
import model as new
path = os.path.join(tempfile.mkdtemp(), 'model_old.py')
open(path, 'w').write(subprocess.run(['git', 'show', '9e63c03:model.py'], capture_output=True, text=True, check=True).stdout)
spec = importlib.util.spec_from_file_location('model_old', path); old = importlib.util.module_from_spec(spec); spec.loader.exec_module(old)
torch.set_num_threads(1)
g = torch.Generator().manual_seed(0)
p1 = [torch.randint(0, 256, (45 + i % 6,), generator=g).tolist() for i in range(256)]
p2 = [torch.randint(0, 256, (120 + i % 6,), generator=g).tolist() for i in range(256)]
ms = {}
for name, M in (('before', old), ('after', new)):
    torch.manual_seed(0); ms[name] = M.build_model(M.ModelConfig(arch='mamba', n_layer=2, n_embd=88)).eval()
ms['after'].load_state_dict(ms['before'].state_dict())
mods = {'before': old, 'after': new}
t = {k: [] for k in ms}; outs = {}
with torch.no_grad():
    for r in range(4):
        for k in ms:
            t0 = time.perf_counter()
            a = mods[k].generate(ms[k], p1, 58, {999}); b = mods[k].generate(ms[k], p2, 40, {999})
            t[k].append((time.perf_counter() - t0) * 1000 / 256); outs[k] = (a, b)
same = sum(x == y for x, y in zip(outs['before'][0] + outs['before'][1], outs['after'][0] + outs['after'][1]))
for k in ms: print(f"{k}: {statistics.median(t[k]):.2f} ms per tool question (median of 4 interleaved rounds)")
print(f"ratio {statistics.median(t['before'])/statistics.median(t['after']):.2f}x; identical generations {same}/512")
