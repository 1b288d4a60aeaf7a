"""
The selective scan of Mamba (S6, Gu & Dao 2023, Algorithm 2) with four backends behind one function.

    y = selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus)   # same contract as
                                                                               # mamba_ssm's selective_scan_fn
Backends, chosen per call and recorded in ssm_triton.LAST_BACKEND:
- 'mamba_ssm': the official CUDA kernel (pip install mamba-ssm), used first on CUDA tensors when importable.
- 'triton':    our Triton kernels, forward and backward (one program per (batch, channel block), a
               sequential loop over time with the state in registers, chunk-final states saved for the
               backward, which recomputes the states of one chunk at a time). Used on CUDA without mamba_ssm.
- 'cpp':       our C++ kernels for CPU (scan_cpu.cpp), the triton design in machine code: one pass over
               time per (batch, channel), the state in vector registers, threads over batch x channels,
               chunk-boundary states saved, the backward recomputing a chunk at a time. Compiled with
               torch.utils.cpp_extension on first use (g++ and ninja; 10-30 s once, then cached in the
               torch_extensions directory). The default for fp32/bf16/fp16 CPU tensors when it builds.
- 'torch':     plain PyTorch, runs everywhere: chunks of the sequence are scanned in parallel with
               cumulative sums of log-decays, only a loop over chunks is in Python, and the backward is
               hand-written: it reuses the forward's per-chunk tensors while they fit in TORCH_SAVE_MB and
               otherwise stores only chunk-boundary states and recomputes. The CPU default for fp64 inputs
               and where 'cpp' cannot be built (the reason is printed once).
torch and triton wrap only the scan in an autograd.Function; delta_bias, softplus, D and the z gate are plain
torch around it, differentiated by autograd. mamba_ssm and cpp fuse them into their kernels (as torch ops on
a CPU they took longer than the scan itself).
Force one with selective_scan(..., backend='torch') or the env var SSM_BACKEND=triton|mamba_ssm|cpp|torch;
forcing one that cannot run raises. On CPU, 'triton' runs in Triton's interpreter, which must be switched
on before this module is imported: TRITON_INTERPRET=1 SSM_BACKEND=triton python ...
selective_scan_ref is the plain sequential loop (as in mamba_ssm) the others are tested against.

Tests:     python -m pytest -q test_all.py -k scan   (sets TRITON_INTERPRET=1 itself)
Benchmark: python bench.py scan

Glossary of dimension letters in the shape comments:
    b batch, d channels (dim), l sequence length, n state size (d_state),
    g groups of B/C (channel i uses group i // k), k = d // g channels per group, t time steps of one chunk
"""
import bisect
import hashlib
import itertools
import math
import os
import platform
import shutil
import sys
import time

import torch
import torch.nn.functional as F

try:
    import triton
    import triton.language as tl
    HAS_TRITON = True
except ImportError:
    HAS_TRITON = False
# @triton.jit reads TRITON_INTERPRET when the kernels below are defined, so only the value at import counts
TRITON_INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"

try:
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn as _mamba_selective_scan_fn
    HAS_MAMBA_SSM = True
except ImportError:  # not installable without CUDA; an optional GPU extra
    HAS_MAMBA_SSM = False

BACKENDS = ("triton", "mamba_ssm", "cpp", "torch")
LAST_BACKEND = None  # the backend used by the latest selective_scan call
TORCH_CHUNK = 64     # longest chunk of the torch backend (time steps scanned in parallel)
TRITON_CHUNK = 64    # time steps between the states the triton forward saves for its backward
CPP_CHUNK = 64       # the same for the cpp backend
# The torch backend factors exp(S_t - S_s) as exp(S_t) * exp(-S_s), S the cumulative log-decay in a chunk
# measured from the middle of its range. Chunks end before any |S| could pass this, so exp(+-S) stays well
# inside fp32 (e^60 ~ 1e26) and the rounding of S (~ 60 * 6e-8 absolute) costs at most ~4e-6 relative error.
MAX_LOG_DECAY = 60.0
LOG2E = math.log2(math.e)
# The torch backend's forward keeps each chunk's exp(S) and scaled states for the backward when, for the whole
# sequence, they take at most this many MB (2 * b * d * l * n floats); beyond it the backward recomputes them,
# so memory stays bounded for any l.
TORCH_SAVE_MB = 256


def available_backends():
    """Backends that can run on this machine (the triton one on CPU only under TRITON_INTERPRET=1; cpp if
    it builds: this may compile it)."""
    cuda = torch.cuda.is_available()
    ok = {"triton": HAS_TRITON and (cuda or TRITON_INTERPRET), "mamba_ssm": HAS_MAMBA_SSM and cuda,
          "cpp": _cpp_ops() is not None, "torch": True}
    return [name for name in BACKENDS if ok[name]]


def _pick_backend(backend, device, dtype=torch.float32):
    name = backend or os.environ.get("SSM_BACKEND") or None
    if name is None:  # automatic: the fastest that can run on this device
        if device.type == "cuda" and HAS_MAMBA_SSM:
            return "mamba_ssm"
        if device.type == "cuda" and HAS_TRITON:
            return "triton"
        # cpp computes in fp32; fp64 stays with torch, which computes in fp64
        if device.type == "cpu" and dtype != torch.float64 and _cpp_ops() is not None:
            return "cpp"
        return "torch"
    if name not in BACKENDS:
        raise ValueError(f"unknown SSM backend {name!r}, expected one of {BACKENDS}")
    if name == "triton" and not HAS_TRITON:
        raise RuntimeError("SSM backend 'triton' forced but triton is not importable")
    if name == "triton" and device.type != "cuda" and not TRITON_INTERPRET:
        raise RuntimeError("SSM backend 'triton' forced on CPU tensors: "
                           "set TRITON_INTERPRET=1 before importing ssm_triton")
    if name == "mamba_ssm" and not (HAS_MAMBA_SSM and device.type == "cuda"):
        raise RuntimeError("SSM backend 'mamba_ssm' forced but it needs CUDA tensors and an importable mamba_ssm")
    if name == "cpp" and device.type != "cpu":
        raise RuntimeError("SSM backend 'cpp' forced on non-CPU tensors")
    if name == "cpp" and _cpp_ops(quiet=True) is None:
        raise RuntimeError(f"SSM backend 'cpp' forced but scan_cpu.cpp cannot be built: {_CPP['error']}")
    return name


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   return_last_state=False, backend=None):
    """
    Selective scan with the semantics of mamba_ssm.ops.selective_scan_interface.selective_scan_fn.

    u, delta: (b, d, l)    input and (pre-bias, pre-softplus) step size
    A:        (d, n)       real; negative for a decaying state
    B, C:     (b, n, l) or grouped (b, g, n, l), channel i using group i // (d // g)
    D:        (d,)         skip connection, optional
    z:        (b, d, l)    gate, optional
    delta_bias: (d,)       optional
    Computes delta = softplus(delta + delta_bias) (each part if asked), then for every (b, d):
        h_t = exp(delta_t * A) * h_{t-1} + delta_t * B_t * u_t    (h: (n,), h_{-1} = 0)
        y_t = C_t . h_t + D * u_t,   y_t *= silu(z_t)
    Returns y (b, d, l) in u's dtype, and with return_last_state also h_{l-1} (b, d, n), which carries no
    gradient (as in mamba_ssm). Computes in fp32 (fp64 if u is fp64, with the torch backend), in which
    last_state is returned.
    """
    global LAST_BACKEND
    name = LAST_BACKEND = _pick_backend(backend, u.device, u.dtype)
    if name == "mamba_ssm":
        return _mamba_selective_scan_fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    assert B.dim() in (3, 4) and C.dim() == B.dim(), "B and C must be (b, n, l) or (b, g, n, l)"
    if name == "cpp":  # fuses delta_bias, softplus, D and z into its kernels
        return _cpp_selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    ct = torch.float64 if u.dtype == torch.float64 and name == "torch" else torch.float32
    dt = delta.to(ct)                                              # (b, d, l)
    if delta_bias is not None:
        dt = dt + delta_bias.to(ct)[:, None]
    if delta_softplus:
        dt = F.softplus(dt)
    grouped = B.dim() == 4
    Bg = (B if grouped else B.unsqueeze(1)).to(ct)                 # (b, g, n, l)
    Cg = (C if grouped else C.unsqueeze(1)).to(ct)                 # (b, g, n, l)
    fwd, bwd = (_torch_fwd, _torch_bwd) if name == "torch" else (_triton_fwd, _triton_bwd)
    y, last_state = _ScanFn.apply(u.to(ct).contiguous(), dt.contiguous(), A.to(ct).contiguous(),
                                  Bg.contiguous(), Cg.contiguous(), fwd, bwd)   # (b, d, l), (b, d, n)
    # the rest is elementwise: plain torch, differentiated by autograd, shared by both backends
    if D is not None:
        y = y + u.to(ct) * D.to(ct)[:, None]
    if z is not None:
        y = y * F.silu(z.to(ct))
    y = y.to(u.dtype)
    return (y, last_state) if return_last_state else y


class _ScanFn(torch.autograd.Function):
    """y_t = C_t . h_t with h_t = exp(dt_t A) h_{t-1} + dt_t u_t B_t, and its hand-written backward.
    `fwd` returns (y, states, plan): the states between chunks, states[:, :, c] the one before chunk c
    (zeros for c = 0, the last state at the end), and whatever else `bwd` needs."""

    @staticmethod
    def forward(ctx, u, dt, A, B, C, fwd, bwd):
        y, states, plan = fwd(u, dt, A, B, C, any(ctx.needs_input_grad[:5]))  # (b,d,l), (b,d,#chunks+1,n)
        ctx.save_for_backward(u, dt, A, B, C, states)
        ctx.bwd, ctx.plan = bwd, plan
        last_state = states[:, :, -1].clone()       # (b, d, n)
        ctx.mark_non_differentiable(last_state)
        return y, last_state

    @staticmethod
    def backward(ctx, gy, _):
        u, dt, A, B, C, states = ctx.saved_tensors
        grads = ctx.bwd(gy.contiguous(), u, dt, A, B, C, states, ctx.plan)  # du, ddt, dA, dB, dC
        return (*grads, None, None)


def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                       return_last_state=False):
    """The scan as a plain loop over time, the reference for tests and benchmarks (same contract as
    selective_scan). Computes in fp32, or fp64 if u is fp64."""
    ct = torch.float64 if u.dtype == torch.float64 else torch.float32
    b, d, l = u.shape
    dt = delta.to(ct)                                              # (b, d, l)
    if delta_bias is not None:
        dt = dt + delta_bias.to(ct)[:, None]
    if delta_softplus:
        dt = F.softplus(dt)
    if B.dim() == 3:
        B, C = B.unsqueeze(1), C.unsqueeze(1)                      # (b, 1, n, l)
    # (b, d, l, n) as in mamba_ssm: each step reads contiguous (b, d, n) rows
    B = B.to(ct).repeat_interleave(d // B.shape[1], dim=1).transpose(2, 3)               # (b, d, l, n)
    C = C.to(ct).repeat_interleave(d // C.shape[1], dim=1).transpose(2, 3).contiguous()  # (b, d, l, n)
    dA = torch.exp(dt[..., None] * A.to(ct)[:, None, :])          # (b, d, l, n)
    dBu = (dt * u.to(ct))[..., None] * B                           # (b, d, l, n)
    h = dA.new_zeros(b, d, A.shape[1])                             # (b, d, n)
    ys = []
    # unbind rather than dA[:, :, i]: autograd would add a full-size zero tensor per indexed step
    # (O(l^2) backward, 90 s instead of 0.7 s at l=1024)
    for a_t, x_t, c_t in zip(dA.unbind(2), dBu.unbind(2), C.unbind(2)):
        h = a_t * h + x_t                                          # (b, d, n)
        ys.append((h * c_t).sum(-1))                               # (b, d)
    y = torch.stack(ys, dim=-1)                                    # (b, d, l)
    if D is not None:
        y = y + u.to(ct) * D.to(ct)[:, None]
    if z is not None:
        y = y * F.silu(z.to(ct))
    y = y.to(u.dtype)
    return (y, h) if return_last_state else y


# ----------------------------------------------------------------------------------------------------
# torch backend: per chunk, with S_t = A * cumsum(dt)_t the log-decay since the chunk start,
#   h_t = exp(S_t) * (h_start + sum_{s<=t} exp(-S_s) dt_s u_s B_s)
# so a chunk costs one exp and one cumsum over (b, d, n, t) instead of t dependent steps, and the adjoint
# the same with a reversed cumsum. So that exp(+-S) cannot overflow, S is measured from the middle of the
# chunk's range and chunks end early where decays are strong (_plan_chunks). Tensors are laid out
# (b, g, k, n, t), time last, which makes cumsum fastest.

def _plan_chunks(dt, A):
    """Chunk boundaries [0, ..., l]: at most TORCH_CHUNK steps and a bounded summed worst-case |dt * A|, so
    that exp(+-S) cannot overflow. Strong decays anywhere in the batch shorten chunks."""
    rate = (dt.abs() * A.abs().amax(-1)[:, None]).amax((0, 1))    # (l,) worst |log-decay| of each step
    # S from the middle of its range: |S| <= budget / 2 if S is monotone (dt >= 0, A <= 0, as in Mamba)
    budget = 2 * MAX_LOG_DECAY if dt.min() >= 0 and A.max() <= 0 else 2 / 3 * MAX_LOG_DECAY
    cum = [0.0, *itertools.accumulate(rate.tolist())]
    bounds, l = [0], dt.shape[-1]
    while bounds[-1] < l:
        t0 = bounds[-1]
        t1 = bisect.bisect_right(cum, cum[t0] + budget) - 1        # furthest end within the budget
        bounds.append(min(max(t1, t0 + 1), t0 + TORCH_CHUNK, l))
    return bounds


def _chunk_states(h0, dt, u, A, B):
    """One chunk from the state h0 before it. h0: (b,g,k,n); dt, u: (b,g,k,1,t); A: (g,k,n,1); B: (b,g,n,t).
    With S the log-decay since the chunk start minus M, half the chunk's total (both kept in base 2 below),
    returns E = exp(S) and Q = h / E, both (b, g, k, n, t), and exp(M) (b, g, k, n, 1):
    Q_t = exp(M) h0 + sum_{s<=t} dt_s u_s B_s / E_s and the states are h_t = E_t Q_t."""
    Dc = dt.cumsum(-1)                                             # (b, g, k, 1, t)
    half = Dc[..., -1:] / 2                                        # (b, g, k, 1, 1)
    # in base 2: exp2 runs ~2x faster than exp here, which made the whole scan ~7% faster (A/B, 2026-11-29)
    A2 = A * LOG2E
    S, M = A2 * (Dc - half), A2 * half                             # (b, g, k, n, t), (b, g, k, n, 1)
    if S.shape[-1] == 1:  # a one-step chunk may exceed the budget: clamping changes h_t by < e^-120 |h_{t-1}|
        S.clamp_(min=-MAX_LOG_DECAY * LOG2E), M.clamp_(min=-MAX_LOG_DECAY * LOG2E)
    E, eM = S.exp2_(), M.exp2_()
    Q = torch.mul(dt * u, B.unsqueeze(2)).div_(E)                  # (b, g, k, n, t)
    Q[..., 0] += h0 * eM[..., 0]    # the carried state enters as the first summand: no extra full-size pass
    Q = Q.cumsum_(-1)
    return E, Q, eM


def _grouped(u, dt, A, B):
    g = B.shape[1]
    b, d, l = u.shape
    return u.view(b, g, d // g, 1, l), dt.view(b, g, d // g, 1, l), A.view(g, d // g, -1, 1)


def _torch_fwd(u, dt, A, B, C, for_backward=False):
    """u, dt: (b, d, l); A: (d, n); B, C: (b, g, n, l). Returns y (b, d, l), the chunk-boundary states, and
    the plan for the backward: the chunks and, if they fit in TORCH_SAVE_MB, each chunk's E and Q."""
    b, d, l = u.shape
    bounds = _plan_chunks(dt, A)
    uv, dtv, Av = _grouped(u, dt, A, B)                            # (b,g,k,1,l), (b,g,k,1,l), (g,k,n,1)
    y = u.new_empty(uv.shape[:3] + (l,))                           # (b, g, k, l)
    states = u.new_zeros(uv.shape[:3] + (len(bounds), A.shape[1]))  # (b, g, k, #chunks + 1, n)
    keep = 2 * u.numel() * A.shape[1] * u.element_size() <= TORCH_SAVE_MB * 2**20 and for_backward
    saved = []
    for c, (t0, t1) in enumerate(zip(bounds[:-1], bounds[1:])):
        E, Q, eM = _chunk_states(states[:, :, :, c], dtv[..., t0:t1], uv[..., t0:t1], Av, B[..., t0:t1])
        H = Q * E if keep else Q.mul_(E)                           # (b, g, k, n, t) states
        if keep:
            saved.append((E, Q, eM))
        states[:, :, :, c + 1] = H[..., -1]
        y[..., t0:t1] = H.mul_(C[:, :, None, :, t0:t1]).sum(-2)    # (b, g, k, t)
    return y.view(b, d, l), states.view(b, d, -1, A.shape[1]), {'bounds': bounds, 'saved': saved}


def _torch_bwd(gy, u, dt, A, B, C, states, plan):
    """Gradients of u, dt, A, B, C, walking the chunks backwards with each one's saved or recomputed states."""
    b, d, l = u.shape
    bounds, saved = plan['bounds'], plan.pop('saved', [])  # popped: the backward consumes them (in place)
    uv, dtv, Av = _grouped(u, dt, A, B)
    gyv = gy.view(uv.shape[:3] + (1, l))                           # (b, g, k, 1, l)
    states = states.view(uv.shape[:3] + states.shape[2:])          # (b, g, k, #chunks + 1, n)
    gu, gdt = torch.empty_like(gyv), torch.empty_like(gyv)         # (b, g, k, 1, l)
    gB, gC = torch.empty_like(B), torch.empty_like(C)              # (b, g, n, l)
    gA = torch.zeros_like(Av)                                      # (g, k, n, 1)
    gh = torch.zeros_like(states[:, :, :, 0])                      # (b, g, k, n) adjoint of the chunk's last state
    for c in range(len(bounds) - 2, -1, -1):
        t0, t1 = bounds[c], bounds[c + 1]
        h0, dtc, uc = states[:, :, :, c], dtv[..., t0:t1], uv[..., t0:t1]
        EQM = saved.pop() if saved else _chunk_states(h0, dtc, uc, Av, B[..., t0:t1])
        gu[..., t0:t1], gdt[..., t0:t1], gA_c, gB[..., t0:t1], gC[..., t0:t1], gh = _bwd_chunk(
            h0, dtc, uc, gyv[..., t0:t1], Av, B[..., t0:t1], C[..., t0:t1], gh, *EQM)
        gA += gA_c
    return gu.view(b, d, l), gdt.view(b, d, l), gA.view(d, -1), gB, gC


def _bwd_chunk(h0, dtc, uc, gyc, Av, Braw, Craw, gh, E, Q, eM):
    """One chunk of the backward. h0: (b,g,k,n) state before the chunk; dtc, uc, gyc: (b,g,k,1,t);
    Av: (g,k,n,1); Braw, Craw: (b,g,n,t); gh: (b,g,k,n) adjoint of the chunk's last state; E, Q, eM: the
    chunk's _chunk_states (overwritten here).
    -> grads of u, dt (b,g,k,1,t), A (g,k,n,1), B, C (b,g,n,t) on the chunk, and the adjoint of h0."""
    Bc, Cc = Braw.unsqueeze(2), Craw.unsqueeze(2)                # (b, g, 1, n, t)
    # adjoint of h_t: G_t = C_t gy_t + exp(dt_{t+1} A) G_{t+1} = P_t / E_t, P a reversed cumsum of
    # E_s C_s gy_s plus, at the last step, the adjoint gh from later chunks
    P = torch.mul(E, Cc).mul_(gyc)                                 # (b, g, k, n, t)
    P[..., -1] += gh * E[..., -1]
    # reversed cumsum; flip, cumsum, flip beat a matmul with a triangular matrix of ones (t flops per element)
    # by 2-11% of the whole scan in four interleaved A/B runs (2026-11-29)
    P = P.flip(-1).cumsum_(-1).flip(-1)                            # (b, g, k, n, t)
    gh = P[..., 0] * eM[..., 0]                                    # (b, g, k, n) adjoint of h0: exp(dt_t0 A) G_t0
    # the decay exp(dt_t A) multiplies h_{t-1}: its share of the gradient is G_t exp(dt_t A) h_{t-1} = P_t Q_{t-1}
    # (equal to G_t (h_t - dt_t u_t B_t), which cancels when the decay is strong)
    R = torch.empty_like(P)                                        # (b, g, k, n, t)
    torch.mul(P[..., 1:], Q[..., :-1], out=R[..., 1:])
    torch.mul(P[..., 0], h0 * eM[..., 0], out=R[..., 0])
    gC = Q.mul_(E).mul_(gyc).sum(2)                                # (b, g, n, t) from the states h = Q E
    G = P.div_(E)                                                  # (b, g, k, n, t)
    tmp = E  # E is not needed below: its memory holds the products that get summed
    gB = torch.mul(G, dtc * uc, out=tmp).sum(2)                    # (b, g, n, t)
    gX = torch.mul(G, Bc, out=tmp).sum(-2, keepdim=True)           # (b, g, k, 1, t) grad of dt*u
    # the two sums of R as batched mat-vec products: one read of R each, no product tensor written
    gdt = gX * uc + Av.transpose(-1, -2) @ R                       # (b, g, k, 1, t)
    gA = (R @ dtc.transpose(-1, -2)).sum(0)                        # (g, k, n, 1)
    return gX * dtc, gdt, gA, gB, gC, gh


# ----------------------------------------------------------------------------------------------------
# triton backend: program (batch, group, channel block) walks time sequentially with the (channels, n)
# state in registers; the forward saves the state at every chunk end, the backward walks chunks in
# reverse, recomputes a chunk's states from the saved one into a chunk-sized scratch buffer, then runs
# the adjoint recurrence backwards through the chunk. B/C gradients are summed over the block's channels
# and the partial sums of channel blocks added in torch (no atomics, deterministic).

if HAS_TRITON:
    @triton.jit
    def _scan_fwd_kernel(u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, y_ptr, states_ptr,
                         dim, L, G, N, n_chunks,
                         CHUNK: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr):
        pid_b, pid_g, pid_d = tl.program_id(0).to(tl.int64), tl.program_id(1), tl.program_id(2)
        k = dim // G
        rows = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)             # channel within the group
        ch = pid_g * k + rows                                      # (BLOCK_D,) channel
        ns = tl.arange(0, BLOCK_N)
        mask_d, mask_n = rows < k, ns < N
        mask = mask_d[:, None] & mask_n[None, :]
        A = tl.load(A_ptr + ch[:, None] * N + ns[None, :], mask=mask, other=0.0).to(tl.float32)  # (BLOCK_D, BLOCK_N)
        row = (pid_b * dim + ch) * L                               # (BLOCK_D,) offsets of u, dt, y rows
        col = (pid_b * G + pid_g) * N * L + ns * L                 # (BLOCK_N,) offsets of B, C rows
        state = (pid_b * dim + ch[:, None]) * (n_chunks + 1) * N + ns[None, :]  # + c * N: state before chunk c
        h = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
        tl.store(states_ptr + state, h, mask=mask)
        for c in range(n_chunks):
            for t in range(c * CHUNK, tl.minimum(c * CHUNK + CHUNK, L)):
                u = tl.load(u_ptr + row + t, mask=mask_d, other=0.0).to(tl.float32)
                dt = tl.load(dt_ptr + row + t, mask=mask_d, other=0.0).to(tl.float32)
                Bt = tl.load(B_ptr + col + t, mask=mask_n, other=0.0).to(tl.float32)
                Ct = tl.load(C_ptr + col + t, mask=mask_n, other=0.0).to(tl.float32)
                h = tl.exp(dt[:, None] * A) * h + (dt * u)[:, None] * Bt[None, :]
                tl.store(y_ptr + row + t, tl.sum(h * Ct[None, :], axis=1), mask=mask_d)
            tl.store(states_ptr + state + (c + 1) * N, h, mask=mask)

    @triton.jit
    def _scan_bwd_kernel(u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, gy_ptr, states_ptr, scratch_ptr,
                         gu_ptr, gdt_ptr, gA_ptr, gB_ptr, gC_ptr,
                         dim, L, G, N, n_chunks,
                         CHUNK: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr):
        pid_b, pid_g, pid_d = tl.program_id(0).to(tl.int64), tl.program_id(1), tl.program_id(2)
        k = dim // G
        rows = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
        ch = pid_g * k + rows                                      # (BLOCK_D,) channel
        ns = tl.arange(0, BLOCK_N)
        mask_d, mask_n = rows < k, ns < N
        mask = mask_d[:, None] & mask_n[None, :]
        tile = ch[:, None] * N + ns[None, :]                       # (BLOCK_D, BLOCK_N) offsets of A, gA
        A = tl.load(A_ptr + tile, mask=mask, other=0.0).to(tl.float32)
        row = (pid_b * dim + ch) * L
        col = (pid_b * G + pid_g) * N * L + ns * L
        state = (pid_b * dim + ch[:, None]) * (n_chunks + 1) * N + ns[None, :]
        # partial B/C grads of this channel block: (b, g, #blocks, n, l), summed over blocks outside
        pcol = ((pid_b * G + pid_g) * tl.num_programs(2) + pid_d) * N * L + ns * L
        scratch = (pid_b * dim + ch[:, None]) * CHUNK * N + ns[None, :]   # (BLOCK_D, BLOCK_N) + i * N
        gh = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)       # adjoint of the state
        gA = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
        for i in range(n_chunks):
            c = n_chunks - 1 - i
            t0 = c * CHUNK
            t1 = tl.minimum(t0 + CHUNK, L)
            # recompute the chunk: scratch[t - t0] = h_{t-1}, starting from the state saved before the chunk
            h = tl.load(states_ptr + state + c * N, mask=mask, other=0.0)
            for t in range(t0, t1):
                tl.store(scratch_ptr + scratch + (t - t0) * N, h, mask=mask)
                u = tl.load(u_ptr + row + t, mask=mask_d, other=0.0).to(tl.float32)
                dt = tl.load(dt_ptr + row + t, mask=mask_d, other=0.0).to(tl.float32)
                Bt = tl.load(B_ptr + col + t, mask=mask_n, other=0.0).to(tl.float32)
                h = tl.exp(dt[:, None] * A) * h + (dt * u)[:, None] * Bt[None, :]
            tl.debug_barrier()  # the scratch written above is read below, possibly by other threads
            for j in range(t1 - t0):
                t = t1 - 1 - j
                h_prev = tl.load(scratch_ptr + scratch + (t - t0) * N, mask=mask, other=0.0)
                u = tl.load(u_ptr + row + t, mask=mask_d, other=0.0).to(tl.float32)
                dt = tl.load(dt_ptr + row + t, mask=mask_d, other=0.0).to(tl.float32)
                gy = tl.load(gy_ptr + row + t, mask=mask_d, other=0.0).to(tl.float32)
                Bt = tl.load(B_ptr + col + t, mask=mask_n, other=0.0).to(tl.float32)
                Ct = tl.load(C_ptr + col + t, mask=mask_n, other=0.0).to(tl.float32)
                a = tl.exp(dt[:, None] * A)                        # (BLOCK_D, BLOCK_N) decay of step t
                h = a * h_prev + (dt * u)[:, None] * Bt[None, :]
                gh += gy[:, None] * Ct[None, :]                    # now the adjoint of h_t
                gah = gh * a * h_prev                              # share of the decay
                gBu = tl.sum(gh * Bt[None, :], axis=1)             # (BLOCK_D,) grad of dt*u
                tl.store(gu_ptr + row + t, gBu * dt, mask=mask_d)
                tl.store(gdt_ptr + row + t, gBu * u + tl.sum(gah * A, axis=1), mask=mask_d)
                tl.store(gB_ptr + pcol + t, tl.sum(gh * (dt * u)[:, None], axis=0), mask=mask_n)
                tl.store(gC_ptr + pcol + t, tl.sum(gy[:, None] * h, axis=0), mask=mask_n)
                gA += gah * dt[:, None]
                gh = gh * a                                        # adjoint of h_{t-1} from step t
            tl.debug_barrier()  # the next chunk overwrites the scratch
        tl.store(gA_ptr + pid_b * dim * N + tile, gA, mask=mask)


def _triton_grid(u, B):
    b, d, _ = u.shape
    g, n = B.shape[1], B.shape[2]
    block_d = min(64, triton.next_power_of_2(d // g))
    return (b, g, triton.cdiv(d // g, block_d)), block_d, triton.next_power_of_2(n)


def _triton_fwd(u, dt, A, B, C, for_backward=False):  # for_backward unused: the backward always recomputes
    u, dt, A, B, C = (x.contiguous() for x in (u, dt, A, B, C))
    (b, d, l), n = u.shape, A.shape[1]
    grid, block_d, block_n = _triton_grid(u, B)
    n_chunks = triton.cdiv(l, TRITON_CHUNK)
    y = torch.empty(b, d, l, device=u.device, dtype=torch.float32)
    states = torch.empty(b, d, n_chunks + 1, n, device=u.device, dtype=torch.float32)
    _scan_fwd_kernel[grid](u, dt, A, B, C, y, states, d, l, B.shape[1], n, n_chunks,
                           CHUNK=TRITON_CHUNK, BLOCK_D=block_d, BLOCK_N=block_n)
    return y, states, TRITON_CHUNK


def _triton_bwd(gy, u, dt, A, B, C, states, chunk):
    u, dt, A, B, C = (x.contiguous() for x in (u, dt, A, B, C))
    (b, d, l), n = u.shape, A.shape[1]
    grid, block_d, block_n = _triton_grid(u, B)
    f32 = dict(device=u.device, dtype=torch.float32)
    scratch = torch.empty(b, d, chunk, n, **f32)                   # one chunk of states per channel
    gu, gdt = torch.empty(b, d, l, **f32), torch.empty(b, d, l, **f32)
    gA = torch.empty(b, d, n, **f32)
    gB = torch.empty(b, B.shape[1], grid[2], n, l, **f32)          # (b, g, #blocks, n, l) partial sums
    gC = torch.empty_like(gB)
    _scan_bwd_kernel[grid](u, dt, A, B, C, gy, states, scratch, gu, gdt, gA, gB, gC,
                           d, l, B.shape[1], n, states.shape[2] - 1,
                           CHUNK=chunk, BLOCK_D=block_d, BLOCK_N=block_n)
    return (gu.to(u.dtype), gdt.to(dt.dtype), gA.sum(0).to(A.dtype),
            gB.sum(2).to(B.dtype), gC.sum(2).to(C.dtype))


# ----------------------------------------------------------------------------------------------------
# cpp backend: scan_cpu.cpp, built on first use with torch.utils.cpp_extension.load (ninja + a C++ compiler)
# into the torch_extensions cache (rebuilt only when the source or the flags change), loaded as the
# operators torch.ops.ssm_scan_cpu.fwd / .bwd. -march=native: a build runs only on CPUs with its instruction set,
# and a home directory can outlive its CPU (a VM moved from an AVX-512 host to an AVX2 one keeps ~/.cache), so the
# build's name carries a tag of the CPU's features (_cpu_tag). model.py builds its CPU Transformer
# (transformer_cpu.cpp) the same way, through cpp_ops.

_CPP = {"ops": None, "error": None, "tried": False}


def _cpu_tag():
    """8 hex digits naming this CPU's model and instruction set (/proc/cpuinfo's flags; elsewhere the platform)."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f if ln.startswith(("flags", "model name", "Features", "CPU part"))]
        text = "".join(sorted(set(lines)))
    except OSError:
        text = platform.machine() + platform.processor()
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def _build_cpp(name, source):
    """Compile (or load the cached build of) the C++ file source, beside this file: its torch.ops namespace
    name. Raises if it cannot."""
    try:  # a pip-installed ninja may not be on PATH when the venv is not activated
        import ninja
        os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
    except ImportError:
        pass
    from torch.utils import cpp_extension
    if not cpp_extension.is_ninja_available():
        raise RuntimeError("ninja not found (pip install ninja)")
    cxx = os.environ.get("CXX", "c++")
    if shutil.which(cxx) is None:
        raise RuntimeError(f"no C++ compiler ({cxx!r} not found)")
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), source)
    t0 = time.perf_counter()
    cpp_extension.load(f"{name}_{_cpu_tag()}", [src], extra_cflags=["-O3", "-march=native", "-fopenmp"],
                       extra_ldflags=["-fopenmp"], is_python_module=False)
    if time.perf_counter() - t0 > 2:  # loading a cached build takes well under a second
        print(f"compiled {source} in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return getattr(torch.ops, name)


def cpp_ops(cache, name, source, fallback, quiet=False):
    """torch.ops.<name> from the C++ file source, built on the first call; None if it cannot be built (the
    reason, one line, is printed once unless quiet, with what is used instead, and kept in cache['error']).
    cache: {'ops': None, 'error': None, 'tried': False}, one per extension."""
    if not cache["tried"]:
        cache["tried"] = True
        try:
            cache["ops"] = _build_cpp(name, source)
        except Exception as e:  # compiler errors come as one long message: keep its first error line
            lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()] or [type(e).__name__]
            cache["error"] = next((ln for ln in lines if "error" in ln.lower() and ln != lines[0]), lines[0])[:300]
            if not quiet:
                print(f"cannot build {source}, using {fallback}: {cache['error']}", file=sys.stderr, flush=True)
    return cache["ops"]


def _cpp_ops(quiet=False):
    """torch.ops.ssm_scan_cpu (see cpp_ops), or None."""
    return cpp_ops(_CPP, "ssm_scan_cpu", "scan_cpu.cpp", "the 'torch' backend of the selective scan", quiet)


class _CppScanFn(torch.autograd.Function):
    """The whole scan, delta_bias, softplus, D and z included, in scan_cpu.cpp: fp32, contiguous (b, d, l)
    u, delta, z; A (d, n); B, C (b, g, n, l) of any strides; D, delta_bias (d,) or None."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, softplus):
        save = any(ctx.needs_input_grad)
        out, states, ypre = _CPP["ops"].fwd(u, delta, A, B, C, D, z, delta_bias, softplus, CPP_CHUNK,
                                            save and z is not None)
        if save:  # ypre: the output before the gate, for dz; empty without z
            ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, states, ypre)
        ctx.softplus, ctx.chunk = softplus, CPP_CHUNK
        last_state = states[:, :, -1].clone()                      # (b, d, n)
        ctx.mark_non_differentiable(last_state)
        return out, last_state

    @staticmethod
    def backward(ctx, gout, _):
        u, delta, A, B, C, D, z, delta_bias, states, ypre = ctx.saved_tensors
        du, ddelta, dA, dB, dC, dD, dz, dbias = _CPP["ops"].bwd(   # gout with any strides (no copy)
            gout, u, delta, A, B, C, D, z, delta_bias, ctx.softplus, states, ypre, ctx.chunk)
        return (du, ddelta, dA, dB, dC, dD if D is not None else None, dz if z is not None else None,
                dbias if delta_bias is not None else None, None)


def _cpp_selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state):
    f32 = lambda x: None if x is None else x.to(torch.float32)
    c32 = lambda x: None if x is None else x.to(torch.float32).contiguous()
    grouped = B.dim() == 4
    out, last_state = _CppScanFn.apply(c32(u), c32(delta), c32(A), f32(B if grouped else B.unsqueeze(1)),
                                       f32(C if grouped else C.unsqueeze(1)), c32(D), c32(z), c32(delta_bias),
                                       bool(delta_softplus))
    out = out.to(u.dtype)
    return (out, last_state) if return_last_state else out
