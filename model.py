"""
The language models: a Llama-style Transformer and Mamba, and batched greedy generation with a
KV cache (Transformer) or the recurrent state (Mamba).

    from model import ModelConfig, build_model, generate
    m = build_model(ModelConfig(arch='transformer', n_layer=2, n_embd=64))
    new_tokens = generate(m, [[1, 2, 3], [4, 5]], max_new_tokens=20, stop_tokens={EOT})

Dimension letters: b batch, t length, d model width, h heads, e head dim, v vocabulary,
s cache slots, i inner width (Mamba), n state size (Mamba).
"""
import math
from dataclasses import dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F


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

    @classmethod
    def from_dict(cls, d):
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.eps, self.weight = eps, nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


# ----------------------------------------------------------------------------- Transformer
def rope(pos, e, theta):
    """Rotary embedding tables for integer positions pos (b, t) -> cos, sin (b, t, 1, e/2).
    Positions are per token, so packed documents can each start again at 0."""
    inv_freq = theta ** (-torch.arange(0, e, 2, device=pos.device, dtype=torch.float32) / e)  # (e/2,)
    ang = pos.float()[..., None] * inv_freq                                                   # (b, t, e/2)
    return ang.cos()[:, :, None], ang.sin()[:, :, None]


def apply_rope(x, cos, sin):
    x1, x2 = x.float().chunk(2, dim=-1)                                                        # (b, t, h, e/2)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).type_as(x)


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
        q, k, v = self.wqkv(x).view(b, t, 3, self.h, self.e).unbind(2)   # each (b, t, h, e)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (b, h, t, e)
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
        self.apply(self._init)
        for name, p in self.named_parameters():  # scaled init of residual outputs (GPT-2)
            if name.endswith(('wo.weight', 'w2.weight', 'out_proj.weight')):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * c.n_layer))

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)) and not getattr(m, '_keep_init', False):
            nn.init.normal_(m.weight, std=0.02)
            if getattr(m, 'bias', None) is not None:
                nn.init.zeros_(m.bias)

    def num_params(self):
        return sum(p.numel() for p in self.parameters())


class Transformer(LM):
    def __init__(self, c):
        assert c.n_embd % c.n_head == 0 and (c.n_embd // c.n_head) % 2 == 0, "n_embd / n_head must be even"
        super().__init__(c, [TransformerBlock(c) for _ in range(c.n_layer)])

    def forward(self, idx, pos=None, seg=None):
        """idx (b, t) -> logits (b, t, v). Packed rows pass pos (b, t), the position inside each
        document, and seg (b, t), a document id: attention never crosses documents."""
        b, t = idx.shape
        if pos is None:
            pos = torch.arange(t, device=idx.device).expand(b, t)
        mask = None
        if seg is not None:
            causal = torch.ones(t, t, dtype=torch.bool, device=idx.device).tril()
            mask = (seg[:, :, None] == seg[:, None, :]) & causal                # (b, t, t)
            mask = mask[:, None]                                                # (b, 1, t, t)
        cos, sin = rope(pos, self.config.n_embd // self.config.n_head, self.config.rope_theta)
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x, cos, sin, mask)
        return self.head(self.norm(x)).float()

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
        cos, sin = rope(pos, self.config.n_embd // self.config.n_head, self.config.rope_theta)
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
# MAMBA_PLACEHOLDER


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
