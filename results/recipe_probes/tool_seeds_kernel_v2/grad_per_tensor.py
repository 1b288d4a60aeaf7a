# per parameter tensor: ||g - g64|| / ||g64|| of the C++ step and of torch float32, averaged over n real training
# batches of a checkpoint. From the root of a checkout (or a worktree of the commit to test):
#   PYTHONPATH=. python results/recipe_probes/tool_seeds_kernel_v2/grad_per_tensor.py CKPT N
import sys, copy, torch, torch.nn.functional as F
import data, packing, sample, model as M
assert M.cpu_kernel_available(), M.cpu_kernel_error()
torch.set_num_threads(1)
ck = torch.load(sys.argv[1], weights_only=False)
cfg = ck['config']
model, trainable = sample.build(cfg); trainable.load_state_dict(ck['model'])
m64 = copy.deepcopy(model).double()
packer = packing.make_packer(cfg, data.dir_of(cfg), 1)
names = [n for n, _ in model.named_parameters()]
def grads(m, x, y, w, n, lens=None):
    m.zero_grad(set_to_none=True)
    if lens is not None:
        loss = m.cpu_loss(x, lens, y, w, 1.0 / n)
        if loss.requires_grad: loss.backward()
    else:
        at = w > 0
        logits = m(x, at=at)
        (F.cross_entropy(logits, y[at], reduction='none') * w[at].to(logits.dtype)).sum().div(n).backward()
    return [p.grad.double().clone() for p in m.parameters()]
nb = int(sys.argv[2])
ek = torch.zeros(len(names)); et = torch.zeros(len(names)); cosk = torch.zeros(len(names))
for b in range(nb):
    idx, tgt, mask, pos, seg = (torch.from_numpy(a) for a in packer.next_rows(cfg['batch_size']))
    lens = (seg >= 0).sum(1); n = float(mask.sum().clamp(min=1))
    g64 = grads(m64, idx, tgt, mask, n); gt = grads(model, idx, tgt, mask, n)
    gk = grads(model, idx.contiguous(), tgt.contiguous(), mask.float().contiguous(), n, lens)
    for i in range(len(names)):
        ek[i] += ((gk[i] - g64[i]).norm() / g64[i].norm()).item() / nb
        et[i] += ((gt[i] - g64[i]).norm() / g64[i].norm()).item() / nb
for i, nm in enumerate(names):
    print(f"{nm:40s} kernel {ek[i]:.2e}  torch {et[i]:.2e}  ratio {ek[i]/et[i]:.2f}")
