"""How close the C++ training step's gradients are to float64, tensor by tensor, next to torch's float32 ops: for each
parameter ||g - g64|| / ||g64||, averaged over the first N training batches of a checkpoint's run. Run it from the
root of a checkout of the code to test (a worktree of an older commit works too):
    python results/recipe_probes/tool_seeds_kernel_v2/grad_per_tensor.py CKPT N
"""
import copy
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.getcwd())
import data      # noqa: E402  (the checkout's modules)
import model     # noqa: E402
import packing   # noqa: E402
import sample    # noqa: E402


def gradients(m, idx, tgt, weight, n_loss, lengths=None):
    """Every parameter's gradient of sum(weight * cross_entropy) / n_loss, in float64; with lengths: the C++ step."""
    m.zero_grad(set_to_none=True)
    if lengths is not None:
        loss = m.cpu_loss(idx, lengths, tgt, weight.float(), 1.0 / n_loss)
        if loss.requires_grad:   # commits before af66247 return a loss to call backward() on
            loss.backward()
    else:
        at = weight > 0
        logits = m(idx, at=at)
        (F.cross_entropy(logits, tgt[at], reduction='none') * weight[at].to(logits.dtype)).sum().div(n_loss).backward()
    return [p.grad.double().clone() for p in m.parameters()]


def main(ckpt_path, n_batches):
    assert model.cpu_kernel_available(), model.cpu_kernel_error()
    torch.set_num_threads(1)
    ckpt = torch.load(ckpt_path, weights_only=False)
    cfg = ckpt['config']
    net, trainable = sample.build(cfg)
    trainable.load_state_dict(ckpt['model'])
    net64 = copy.deepcopy(net).double()
    packer = packing.make_packer(cfg, data.dir_of(cfg), 1)
    names = [name for name, _ in net.named_parameters()]
    err_kernel, err_torch = torch.zeros(len(names)), torch.zeros(len(names))
    for _ in range(n_batches):
        idx, tgt, weight, _, seg = (torch.from_numpy(a).contiguous() for a in packer.next_rows(cfg['batch_size']))
        n_loss = float(weight.sum().clamp(min=1))
        g64 = gradients(net64, idx, tgt, weight, n_loss)
        g32 = gradients(net, idx, tgt, weight, n_loss)
        gk = gradients(net, idx, tgt, weight, n_loss, lengths=(seg >= 0).sum(1))
        for i in range(len(names)):
            err_kernel[i] += ((gk[i] - g64[i]).norm() / g64[i].norm()).item() / n_batches
            err_torch[i] += ((g32[i] - g64[i]).norm() / g64[i].norm()).item() / n_batches
    for name, ek, et in zip(names, err_kernel, err_torch):
        print(f"{name:40s} kernel {ek:.2e}  torch {et:.2e}  ratio {ek / et:.2f}")


if __name__ == '__main__':
    main(sys.argv[1], int(sys.argv[2]))
