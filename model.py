"""
The language models: a Llama-style Transformer and Mamba, and batched greedy generation with a
KV cache (Transformer) or the recurrent state (Mamba).

    from model import ModelConfig, build_model, generate
    m = build_model(ModelConfig(arch='transformer', n_layer=2, n_embd=64))
    new_tokens = generate(m, [[1, 2, 3], [4, 5]], max_new_tokens=20, stop_tokens={EOT})

Dimension letters: b batch, t or l length, d model width, h heads, e head dim, v vocabulary,
s cache slots; Mamba: d_in inner width (expand * d), n state size, r dt rank, w conv width.
"""
import functools
import math
from dataclasses import dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

import ssm_triton

try:
    from causal_conv1d import causal_conv1d_fn  # the fused CUDA conv of the optional GPU extras
except ImportError:
    causal_conv1d_fn = None


INITS = ('gpt2', 'fan_in')   # ModelConfig.init


@dataclass
class ModelConfig:
    arch: str = 'transformer'  # 'transformer' or 'mamba'
    vocab_size: int = 264
    n_layer: int = 2
    n_embd: int = 64
    n_head: int = 4            # transformer
    mlp_hidden: int = 0        # transformer SwiGLU width; 0 -> 4 * n_embd
    rope_theta: float = 10000.0
    d_state: int = 16          # mamba: SSM state size N
    d_conv: int = 4            # mamba: causal conv width
    expand: int = 2            # mamba: d_inner = expand * n_embd
    init: str = 'gpt2'         # 'gpt2': N(0, 0.02), residual outputs / sqrt(2 n_layer); 'fan_in': N(0, 1/fan_in), cut at 3 sd

    @classmethod
    def from_dict(cls, d):
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


RMS_EPS = 1e-5


class RMSNorm(nn.Module):
    def __init__(self, d, eps=RMS_EPS):
        super().__init__()
        self.eps, self.weight = eps, nn.Parameter(torch.ones(d))

    def forward(self, x):  # x * rsqrt(mean(x^2) + eps) * weight, in one fused op
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


# ----------------------------------------------------------------------------- Transformer
def rope(pos, e, theta, heads=1):
    """Rotary tables for integer positions pos (b, t) -> cos, sin (b, t, heads, e) for apply_rope. Positions
    are per token, so packed documents can each start again at 0; pos (1, t) serves all rows. The tables are
    written out over the heads x is rotated with, so that the products run along contiguous rows (broadcasting
    a head dim of 8-16 made rotary ~10% of a tiny model's step on CPU)."""
    inv_freq = theta ** (-torch.arange(0, e, 2, device=pos.device, dtype=torch.float32) / e)  # (e/2,)
    ang = pos.float()[..., None] * inv_freq                                                   # (b, t, e/2)
    cos, sin = ang.cos(), ang.sin()
    cos, sin = torch.cat([cos, cos], -1), torch.cat([-sin, sin], -1)                          # (b, t, e)
    return tuple(z[:, :, None].expand(-1, -1, heads, -1).contiguous() for z in (cos, sin))


def apply_rope(x, cos, sin):
    """x (b, t, h, e): each pair (x1, x2) = (x_i, x_{i+e/2}) turned by its angle, (x1 cos - x2 sin, x2 cos + x1 sin),
    written as x * cos + (x2, x1) * sin with sin's first half negated (the same floats, in fewer ops)."""
    xf = x.float()
    x1, x2 = xf.chunk(2, dim=-1)
    return (xf * cos + torch.cat([x2, x1], dim=-1) * sin).type_as(x)


class KVCache:
    """Preallocated keys and values of one layer; update() writes t new slots and returns all so far."""

    def __init__(self, b, h, s, e, device, dtype):
        self.k = torch.zeros(b, h, s, e, device=device, dtype=dtype)
        self.v = torch.zeros(b, h, s, e, device=device, dtype=dtype)

    def update(self, slot, k, v):                       # k, v: (b, h, t, e) for slots [slot, slot + t)
        t = k.shape[2]
        self.k[:, :, slot:slot + t] = k
        self.v[:, :, slot:slot + t] = v
        return self.k[:, :, :slot + t], self.v[:, :, :slot + t]


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.h, self.e = c.n_head, c.n_embd // c.n_head
        self.wqkv = nn.Linear(c.n_embd, 3 * c.n_embd, bias=False)
        self.wo = nn.Linear(c.n_embd, c.n_embd, bias=False)

    def forward(self, x, cos, sin, mask, cache=None, slot=0):
        b, t, d = x.shape
        qkv = self.wqkv(x).view(b, t, 3 * self.h, self.e)
        q, k = apply_rope(qkv[:, :, :2 * self.h], cos, sin).split(self.h, dim=2)  # both rotated at once: (b, t, h, e)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), qkv[:, :, 2 * self.h:].transpose(1, 2)  # (b, h, t, e)
        if cache is not None:
            k, v = cache.update(slot, k, v)                                 # (b, h, s, e)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None)
        return self.wo(y.transpose(1, 2).reshape(b, t, d))


class SwiGLU(nn.Module):
    def __init__(self, c):
        super().__init__()
        hidden = c.mlp_hidden or 4 * c.n_embd
        self.w1 = nn.Linear(c.n_embd, hidden, bias=False)
        self.w3 = nn.Linear(c.n_embd, hidden, bias=False)
        self.w2 = nn.Linear(hidden, c.n_embd, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class TransformerBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.norm1, self.attn = RMSNorm(c.n_embd), Attention(c)
        self.norm2, self.mlp = RMSNorm(c.n_embd), SwiGLU(c)

    def forward(self, x, cos, sin, mask, cache=None, slot=0):
        x = x + self.attn(self.norm1(x), cos, sin, mask, cache, slot)
        return x + self.mlp(self.norm2(x))


class LM(nn.Module):
    """Embedding, blocks, final norm, untied output head: the part both backbones share."""

    def __init__(self, c, blocks):
        super().__init__()
        self.config = c
        self.embed = nn.Embedding(c.vocab_size, c.n_embd)
        self.blocks = nn.ModuleList(blocks)
        self.norm = RMSNorm(c.n_embd)
        self.head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        if c.init not in INITS:
            raise ValueError(f"unknown init {c.init!r} (choose from {INITS})")
        self.apply(lambda m: self._init(m, c.init))
        if c.init == 'gpt2':
            for name, p in self.named_parameters():  # scaled init of residual outputs (GPT-2)
                if name.endswith(('wo.weight', 'w2.weight', 'out_proj.weight')):
                    nn.init.normal_(p, std=0.02 / math.sqrt(2 * c.n_layer))

    @staticmethod
    def _init(m, init):
        # fan_in: GPT-2's 0.02 is ~1/sqrt(width) at width 2,500; at widths 16-64 it starts every layer ~10x too small
        if isinstance(m, (nn.Linear, nn.Embedding)) and not getattr(m, '_keep_init', False):
            if init == 'gpt2':
                nn.init.normal_(m.weight, std=0.02)
            else:
                std = m.weight.shape[1] ** -0.5            # Linear (out, in) and Embedding (n, d): the last dim
                nn.init.trunc_normal_(m.weight, std=std, a=-3 * std, b=3 * std)
            if getattr(m, 'bias', None) is not None:
                nn.init.zeros_(m.bias)

    def num_params(self):
        return sum(p.numel() for p in self.parameters())

    def logits(self, x, at=None):
        """The head on the final states x (b, t, d) -> (b, t, v); only at the positions where at (b, t) is
        True -> (n, v) when given (training: the loss covers few positions; the head is most of a tiny model)."""
        return self.head(self.norm(x if at is None else x[at])).float()


# The CPU Transformer (transformer_cpu.cpp), built on first use as the scan's cpp backend is.
_CPU_KERNEL = {"ops": None, "error": None, "tried": False}
CPU_KERNEL_CHUNKS = 4   # rows cut into this many chunks, summed in order: the same floats for any thread count


def cpu_kernel_available(quiet=False):
    """Whether transformer_cpu.cpp builds here (this may compile it); if not, why is in cpu_kernel_error()."""
    return ssm_triton.cpp_ops(_CPU_KERNEL, "transformer_cpu", "transformer_cpu.cpp",
                              "the torch ops for training on CPU", quiet) is not None


def cpu_kernel_error():
    return _CPU_KERNEL["error"]


@functools.lru_cache(maxsize=16)
def _rope_rows(t, n_head, e, theta):
    """rope()'s tables for positions 0..t-1 over the q and k heads, as the kernel takes them: cos and sin, (t, 2 *
    n_head * e) each (rows are length-bucketed, so a few lengths recur every step)."""
    return tuple(z[0].reshape(t, -1) for z in rope(torch.arange(t)[None], e, theta, 2 * n_head))


class Transformer(LM):
    def __init__(self, c):
        assert c.n_embd % c.n_head == 0 and (c.n_embd // c.n_head) % 2 == 0, "n_embd / n_head must be even"
        super().__init__(c, [TransformerBlock(c) for _ in range(c.n_layer)])

    def forward(self, idx, pos=None, seg=None, at=None):
        """idx (b, t) -> logits (b, t, v), or (n, v) at the positions at (b, t) marks. Packed rows pass pos
        (b, t), the position inside each document, and seg (b, t), a document id: attention never crosses
        documents."""
        b, t = idx.shape
        if pos is None:
            pos = torch.arange(t, device=idx.device)[None]                      # (1, t): one table for all rows
        mask = None
        if seg is not None:
            causal = torch.ones(t, t, dtype=torch.bool, device=idx.device).tril()
            mask = (seg[:, :, None] == seg[:, None, :]) & causal                # (b, t, t)
            mask = mask[:, None]                                                # (b, 1, t, t)
        cos, sin = self.rope_tables(pos)
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x, cos, sin, mask)
        return self.logits(x, at)

    def rope_tables(self, pos):  # for q and k together: (b, t, 2 * heads, head dim)
        c = self.config
        return rope(pos, c.n_embd // c.n_head, c.rope_theta, 2 * c.n_head)

    # -- training on CPU: the loss of rows of one dialog each, forward and backward in one C++ call
    def cpu_loss(self, idx, lengths, tgt, weight, scale):
        """sum(weight * cross_entropy(logits, tgt)) * scale over rows idx (b, t) of one document each, the first
        lengths (b,) tokens real (padding after them), as model(idx, at=weight > 0) and F.cross_entropy give it,
        and its backward: both in one call of transformer_cpu.cpp, which adds every parameter's gradient to its
        .grad (made, zero, where None) as loss.backward() would. -> the loss, 0-dim, without a graph (no autograd:
        its Function, engine and fresh .grad tensors took ~0.8 ms of a 6.5 ms width-16 step). CPU, fp32, and
        cpu_kernel_available() only."""
        c = self.config
        params = list(self.parameters())
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        cos, sin = _rope_rows(idx.shape[1], c.n_head, c.n_embd // c.n_head, c.rope_theta)
        with torch.no_grad():
            loss = _CPU_KERNEL["ops"].loss_and_grads(idx.contiguous(), lengths, tgt.contiguous(),
                                                     weight.float().contiguous(), float(scale), params,
                                                     [p.grad for p in params], cos, sin, c.n_head, RMS_EPS,
                                                     CPU_KERNEL_CHUNKS)
        return loss.float()

    # -- generation (gpt-fast style: preallocated cache, prefill once, then one token per step)
    def new_cache(self, b, s):
        p = self.head.weight
        c = self.config
        return {'slot': 0, 'layers': [KVCache(b, c.n_head, s, c.n_embd // c.n_head, p.device, p.dtype)
                                      for _ in self.blocks]}

    def step(self, idx, cache, pad):
        """Feed idx (b, t) into cache slots [slot, slot + t); row r is left-padded by pad[r] slots,
        which are masked out and not counted as positions. -> logits (b, t, v)."""
        b, t = idx.shape
        s0 = cache['slot']
        q_slot = s0 + torch.arange(t, device=idx.device)                        # (t,)
        k_slot = torch.arange(s0 + t, device=idx.device)                         # (s,)
        pos = (q_slot[None] - pad[:, None]).clamp(min=0)                          # (b, t)
        mask = (k_slot[None, None] <= q_slot[None, :, None]) & (k_slot[None, None] >= pad[:, None, None])
        mask = mask | (k_slot[None, None] == q_slot[None, :, None])              # a pad query sees itself: no NaN
        cos, sin = self.rope_tables(pos)
        x = self.embed(idx)
        for block, kv in zip(self.blocks, cache['layers']):
            x = block(x, cos, sin, mask[:, None], kv, s0)
        cache['slot'] = s0 + t
        return self.head(self.norm(x)).float()

    def flops_per_token(self, t):
        """Training FLOPs per token (forward + backward): 6 per weight plus attention (PaLM appendix B)."""
        c = self.config
        return 6 * self.num_params() + 12 * c.n_layer * c.n_embd * t


# ----------------------------------------------------------------------------- Mamba
class MambaMixer(nn.Module):
    """The Mamba-1 mixer (Gu & Dao 2023, Section 3.4, Figure 3): in_proj -> (x, z); x -> causal
    depthwise conv -> silu -> selective SSM (Algorithm 2) -> * silu(z) -> out_proj. This is the plain
    form; mamba_ssm fuses it into one kernel (mamba_inner_fn) for memory, with the same numbers."""

    def __init__(self, d_model, d_state=16, d_conv=4, expand=2, dt_rank="auto",
                 dt_min=0.001, dt_max=0.1, dt_init_floor=1e-4):
        super().__init__()
        self.d_inner = expand * d_model
        self.d_state, self.d_conv = d_state, d_conv
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else dt_rank
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=False)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, d_conv, groups=self.d_inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)

        # dt = softplus(dt_proj(.)) starts log-uniform in [dt_min, dt_max]: the bias is its inverse softplus
        nn.init.uniform_(self.dt_proj.weight, -self.dt_rank ** -0.5, self.dt_rank ** -0.5)
        dt = torch.exp(torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_init_floor)                            # (d_in,)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        self.dt_proj._keep_init = True  # as in mamba_ssm: the model-wide init must not redo dt_proj

        # S4D-real init A = -(1, 2, ..., n) for every channel, stored as log(-A) to keep A negative
        A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)  # (d_in, n)
        self.A_log = nn.Parameter(torch.log(A))
        self.A_log._no_weight_decay = True
        self.D = nn.Parameter(torch.ones(self.d_inner))             # (d_in,) skip connection
        self.D._no_weight_decay = True

    def forward(self, x, keep=None):
        """x: (b, l, d) -> (b, l, d). With keep (b, l), False on left padding (a prompt from zero states):
        -> (y, conv_state, ssm_state) as l calls of step() would leave them (equal up to float order); the
        padding feeds zeros to the conv and gets dt = 0, so that dA = 1 and the state passes it unchanged."""
        l = x.shape[1]
        x, z = self.in_proj(x).transpose(1, 2).chunk(2, dim=1)     # (b, d_in, l) each
        if keep is not None:
            x = x * keep[:, None]                                  # padding: zero conv inputs
            conv_state = F.pad(x, (max(0, self.d_conv - l), 0))[..., -self.d_conv:]  # (b, d_in, w) the last w inputs
        if causal_conv1d_fn is not None and x.is_cuda:
            x = causal_conv1d_fn(x, self.conv1d.weight.squeeze(1), self.conv1d.bias, activation="silu")
        else:
            x = F.silu(self.conv1d(x)[..., :l])                    # (b, d_in, l) keep the causal outputs
        dt, B, C = self.x_proj(x.transpose(1, 2)).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = (dt @ self.dt_proj.weight.t()).transpose(1, 2)        # (b, d_in, l) bias and softplus in the scan
        A = -torch.exp(self.A_log.float())                         # (d_in, n)
        if keep is None:
            y = ssm_triton.selective_scan(x, dt, A, B.transpose(1, 2), C.transpose(1, 2), self.D.float(), z=z,
                                          delta_bias=self.dt_proj.bias.float(), delta_softplus=True)  # (b, d_in, l)
            return self.out_proj(y.transpose(1, 2))                # (b, l, d)
        dt = F.softplus(dt + self.dt_proj.bias[:, None]) * keep[:, None]   # (b, d_in, l) 0 on padding
        y, ssm_state = ssm_triton.selective_scan(x, dt, A, B.transpose(1, 2), C.transpose(1, 2), self.D.float(),
                                                 z=z, return_last_state=True)   # (b, d_in, l), (b, d_in, n)
        return self.out_proj(y.transpose(1, 2)), conv_state, ssm_state.to(x.dtype)

    def init_state(self, batch, device=None, dtype=None):
        """Zero states before the first token: conv_state (b, d_in, w) holds the last w conv inputs,
        ssm_state (b, d_in, n) the SSM state h."""
        conv_state = torch.zeros(batch, self.d_inner, self.d_conv, device=device, dtype=dtype)
        ssm_state = torch.zeros(batch, self.d_inner, self.d_state, device=device, dtype=dtype)
        return conv_state, ssm_state

    def step(self, x, conv_state, ssm_state):
        """One token: x (b, d) -> (y (b, d), new conv_state, new ssm_state); the recurrence of forward()."""
        x, z = self.in_proj(x).chunk(2, dim=-1)                     # (b, d_in) each
        conv_state = torch.cat([conv_state[:, :, 1:], x.unsqueeze(-1)], dim=-1)   # (b, d_in, w)
        x = F.silu((conv_state * self.conv1d.weight.squeeze(1)).sum(-1) + self.conv1d.bias)  # (b, d_in)
        dt, B, C = self.x_proj(x).split([self.dt_rank, self.d_state, self.d_state], dim=-1)  # (b, r), (b, n), (b, n)
        dt = F.softplus(self.dt_proj(dt))                           # (b, d_in)
        A = -torch.exp(self.A_log.float())                         # (d_in, n)
        dA = torch.exp(dt.unsqueeze(-1) * A)                       # (b, d_in, n) discretized decay (ZOH)
        # h = dA * h + (dt x) B^T and y = h C + D x, the outer and inner products as batched matmuls (fewer passes)
        ssm_state = (dA * ssm_state).baddbmm_((dt * x).unsqueeze(-1), B.unsqueeze(1))      # (b, d_in, n)
        y = torch.bmm(ssm_state, C.unsqueeze(-1)).squeeze(-1) + self.D * x                  # (b, d_in)
        y = y * F.silu(z)                                          # (b, d_in)
        return self.out_proj(y), conv_state, ssm_state             # (b, d), (b, d_in, w), (b, d_in, n)


class MambaBlock(nn.Module):
    """Norm -> Mixer -> Add (mamba-minimal's ResidualBlock). The official fused version adds the
    residual inside the norm kernel; the result is the same."""

    def __init__(self, c):
        super().__init__()
        self.norm = RMSNorm(c.n_embd)
        self.mixer = MambaMixer(c.n_embd, d_state=c.d_state, d_conv=c.d_conv, expand=c.expand)

    def forward(self, x, state=None, active=None, docs=None):
        """x (b, t, d) -> (b, t, d). docs: documents(seg) of packed rows, each mixed as a row of its own.
        With state = [conv_state, ssm_state], x is one token (b, 1, d) and the state is advanced in place,
        only for the rows where active (b,) is True (None: every row); or x is a prompt (b, t, d) from zero
        states, and active (b, t) marks its real tokens."""
        if state is None and docs is not None:
            doc, off, n, L = docs
            b, t, d = x.shape
            rows = x.new_zeros(n, L, d)                                         # (n documents, L, d)
            rows[doc, off] = self.norm(x).reshape(b * t, d)
            return x + self.mixer(rows)[doc, off].reshape(b, t, d)
        if state is None:
            return x + self.mixer(self.norm(x))
        if active is not None and active.dim() == 2:   # a prompt from zero states
            y, state[0], state[1] = self.mixer(self.norm(x), keep=active)
            return x + y
        y, conv, ssm = self.mixer.step(self.norm(x[:, 0]), *state)              # y (b, d)
        if active is None:
            state[0], state[1] = conv, ssm
        else:
            keep = active[:, None, None]
            state[0], state[1] = torch.where(keep, conv, state[0]), torch.where(keep, ssm, state[1])
        return x + y[:, None]


def documents(seg):
    """Where each token of packed rows goes when every document gets a row of its own: seg (b, t) document
    ids (a new document wherever the id changes along a row) -> (doc, off, n, L): each token's document
    (b*t,) and offset in it (b*t,), the number of documents and the longest one; None if every row is one
    document already."""
    b, t = seg.shape
    start = torch.ones_like(seg, dtype=torch.bool)
    start[:, 1:] = seg[:, 1:] != seg[:, :-1]
    start = start.reshape(-1)                                                   # (b*t,)
    n = int(start.sum())
    if n == b:
        return None
    doc = start.cumsum(0) - 1                                                   # (b*t,)
    flat = torch.arange(b * t, device=seg.device)
    off = flat - flat[start][doc]                                               # (b*t,)
    return doc, off, n, int(off.max()) + 1


class Mamba(LM):
    def __init__(self, c):
        super().__init__(c, [MambaBlock(c) for _ in range(c.n_layer)])

    def forward(self, idx, pos=None, seg=None, at=None):
        """idx (b, t) -> logits (b, t, v), or (n, v) at the positions at (b, t) marks. Packed rows pass
        seg (b, t), a document id per token: every
        document then starts from a zero state (SSM state and conv window), as each question does at
        evaluation. Each mixer regroups its input so that each document is a row of its own, left-aligned
        and right-padded (the scan and the conv are causal, so the padding after a document changes
        nothing in it), which holds for every scan backend, mamba_ssm's included; blocks still take and
        return packed rows (what calm.py's hooks read). pos is unused."""
        docs = documents(seg) if seg is not None else None
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x, docs=docs)
        return self.logits(x, at)

    def new_cache(self, b, s):
        p = self.head.weight
        return {'slot': 0, 'layers': [list(blk.mixer.init_state(b, p.device, p.dtype)) for blk in self.blocks]}

    def step(self, idx, cache, pad):
        """Row r's first pad[r] slots are left padding: they do not touch its state. -> logits (b, t, v).
        From the first slot (a prompt) all tokens go through the parallel scan at once; later, the recurrence
        one token at a time: O(1) per token in the sequence length."""
        b, t = idx.shape
        if cache['slot'] == 0 and t > 1:
            keep = torch.arange(t, device=idx.device)[None] >= pad[:, None]     # (b, t) real tokens
            x = self.embed(idx)
            for block, state in zip(self.blocks, cache['layers']):
                x = block(x, state, keep)
            cache['slot'] = t
            return self.logits(x)
        out, last_pad = [], int(pad.max())
        for i in range(t):
            active = cache['slot'] >= pad if cache['slot'] < last_pad else None   # (b,); None: every row
            x = self.embed(idx[:, i:i + 1])                                      # (b, 1, d)
            for block, state in zip(self.blocks, cache['layers']):
                x = block(x, state, active)
            cache['slot'] += 1
            out.append(self.head(self.norm(x)))
        return torch.cat(out, 1).float()

    def flops_per_token(self, t):
        """6 per weight, plus the scan: about 9 * d_inner * d_state multiply-adds per layer (fwd + bwd)."""
        c = self.config
        return 6 * self.num_params() + 9 * 2 * c.n_layer * c.expand * c.n_embd * c.d_state


def build_model(config):
    c = config if isinstance(config, ModelConfig) else ModelConfig.from_dict(config)
    if c.arch == 'transformer':
        return Transformer(c)
    if c.arch == 'mamba':
        return Mamba(c)
    raise ValueError(f"unknown arch {c.arch!r} (choose 'transformer' or 'mamba')")


@torch.inference_mode()
def generate(model, prompts, max_new_tokens, stop_tokens, pad_token=0):
    """Greedy decoding of a batch of prompts (lists of token ids, any lengths; left-padded here).
    -> list of new-token lists, each ending at its first stop token (included) or at the limit."""
    b = len(prompts)
    device = next(model.parameters()).device
    lens = torch.tensor([len(p) for p in prompts], device=device)
    t = int(lens.max())
    pad = t - lens                                                              # (b,)
    idx = torch.full((b, t), pad_token, dtype=torch.long, device=device)
    for r, p in enumerate(prompts):
        idx[r, t - len(p):] = torch.tensor(p, dtype=torch.long, device=device)
    cache = model.new_cache(b, t + max_new_tokens)
    logits = model.step(idx, cache, pad)[:, -1]                                 # prefill: (b, v)
    stop = torch.tensor(sorted(stop_tokens), device=device)
    out = torch.empty(b, 0, dtype=torch.long, device=device)
    done = torch.zeros(b, dtype=torch.bool, device=device)
    for _ in range(max_new_tokens):
        nxt = logits.argmax(-1)                                                 # (b,)
        out = torch.cat([out, nxt[:, None]], 1)
        done |= torch.isin(nxt, stop)
        if bool(done.all()) or out.shape[1] == max_new_tokens:
            break
        logits = model.step(nxt[:, None], cache, pad)[:, -1]
    result = []
    for row in out.tolist():
        end = next((i + 1 for i, x in enumerate(row) if x in stop_tokens), len(row))
        result.append(row[:end])
    return result
