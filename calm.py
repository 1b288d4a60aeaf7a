"""
CALM: a frozen anchor model reads frozen augment models through small trained cross-attention layers
(Bansal et al. 2024, "LLM Augmented LLMs: Expanding Capabilities through Composition", arXiv 2401.02412).

    python train.py configs/calm.py                  # compose the anchor and augment checkpoints the config names
    python sample.py --out_dir=out/calm_experiment/calm --question="Where was Ada Quinn born?"
    python calm_experiment.py                        # the key-value experiment, every stage (finished ones skipped)

This file is the composition (a model); its config keys are CONFIG below, which train.py accepts for
arch='calm' runs only. The experiment that trains and compares the stages is calm_experiment.py.

As a library (our Transformer or Mamba, or any model whose blocks are given as a list):
    calm = CALM(anchor, [augment], connect_every=4)          # or anchor_blocks=[...], augment_blocks=[[...]]
    logits = calm(idx)                                       # (b, t, v), the anchor's vocabulary
    new_tokens = model.generate(calm, prompts, 32, {data.EOT})

A connection (Sec. 3.1, eq. 1-2) projects the output of one augment layer to the anchor's width (f_proj) and
uses it as keys and values of a cross-attention whose queries are the output of one anchor layer; the result
is added to that output, i.e. to the anchor's residual stream. The output projection starts at zero, so an
untrained composition is exactly the anchor. Anchor and augment read the same tokens and anchor position t
reads augment positions <= t (causal, as in the paper); with prompt_end the augment's states are only those
of the prompt (up to and including the first prompt_end token of each document), read by every position.
Not in the paper: RMSNorm on both inputs of the cross-attention (as before every block of our models), and
rotary positions on its queries and keys (both models read the same tokens, so "the augment's state at my
own position" is easy to find); optionally (position_bias=True, train.py's calm_position_bias) a learned
ALiBi-style distance penalty per head; optionally (read_output=True, calm_read_output) the augment side is
the augment's next-token distribution (softmax of its logits) instead of a block's output, which a linear
map turns into "push the anchor towards what the augment predicts", for any person; optionally
(null_slot=True, calm_null_slot) a learned key with a zero value, so that a query can read nothing;
optionally (position_keys=True, calm_position_keys) keys that carry only the slot's position, so where to
read is the anchor's decision and the augment supplies only what is read (its content cannot be memorized
as "where"); optionally (gate=True, calm_gate) each read scaled per token by a sigmoid of the anchor's state,
and also of what was read (gate_reads=True, calm_gate_reads).

Hooks on the blocks are registered for one call and removed at its end (also on an error), and hidden states
live only in that call's local variables: nothing outlives a step. Generation keeps the anchor's and the
augments' own caches (Transformer: KV cache; Mamba: recurrent state) plus one cache of projected keys/values
per connection.

Dimension letters: b batch, t queries (anchor tokens), s memory slots (augment tokens), d anchor width,
a augment width, h heads, e head dim.
"""
import contextlib
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import data
from model import KVCache, RMSNorm, apply_rope, rope

OUTPUT = 'output'   # as an augment layer of a connection: the augment's next-token distribution

# The composition's config keys and defaults: train.py merges them into the config of an arch='calm' run.
CONFIG = dict(
    anchor_dir='',              # out_dir (or checkpoint) of the frozen anchor
    augment_dirs='',            # comma list of out_dirs (or checkpoints) of the frozen augments
    connect_every=4,            # every n-th anchor layer reads an augment layer (the last always does)
    calm_prompt_mode=False,     # the augment reads only the prompt (up to <|assistant|>), non-causally
    calm_position_bias=False,   # a learned distance penalty in the cross-attention (not in the paper)
    calm_read_output=False,     # read each augment's next-token distribution, not a block's output (not in the paper)
    calm_null_slot=False,       # the cross-attention may read a zero-valued slot, i.e. nothing (not in the paper)
    calm_position_keys=False,   # its keys carry only position; the augment supplies only values (not in the paper)
    calm_gate=False,            # each read is scaled by a per-token sigmoid gate of the anchor's state (not in the paper)
    calm_gate_reads=False,      # ... a gate of the anchor's state and of what was read (not in the paper)
    calm_answer_mode=False,     # the augments read only the answer (after <|assistant|>), as a text of its own (not in the paper)
)


def from_config(cfg, anchor, augments):
    """The composition a run's config describes (n_head: the cross-attention's heads), over frozen models.
    Keys missing from cfg (a run older than the key) take CONFIG's default."""
    c = {**CONFIG, **cfg}
    return CALM(anchor, augments, connect_every=c['connect_every'], n_head=c['n_head'],
                prompt_end=data.ASSISTANT if c['calm_prompt_mode'] else None,
                answer_from=data.ASSISTANT if c['calm_answer_mode'] else None,
                position_bias=c['calm_position_bias'], read_output=c['calm_read_output'],
                null_slot=c['calm_null_slot'], position_keys=c['calm_position_keys'], gate=c['calm_gate'],
                gate_reads=c['calm_gate_reads'])


class CrossAttention(nn.Module):
    """One connection: queries from the anchor layer's output x, keys and values from f_proj(augment layer)."""

    def __init__(self, d, a, n_head, rope_theta=10000.0, position_bias=False, null_slot=False, position_keys=False,
                 gate=False, gate_reads=False):
        super().__init__()
        assert d % n_head == 0 and (d // n_head) % 2 == 0, f"anchor width {d} / {n_head} heads must be even"
        self.h, self.e, self.theta = n_head, d // n_head, rope_theta
        self.norm_x, self.norm_m = RMSNorm(d), RMSNorm(a)
        self.proj = nn.Linear(a, d, bias=False)                # f_proj: augment width -> anchor width
        self.wq = nn.Linear(d, d, bias=False)
        # optional: keys that carry only their position (one learned vector per head, rotated), so where to
        # read is the anchor's decision alone and the augment supplies only what is read
        self.pos_k = nn.Parameter(0.02 * torch.randn(n_head, self.e)) if position_keys else None
        self.wkv = nn.Linear(d, (1 if position_keys else 2) * d, bias=False)
        self.wo = nn.Linear(d, d, bias=False)
        for lin in (self.proj, self.wq, self.wkv):
            nn.init.normal_(lin.weight, std=0.02)
        nn.init.zeros_(self.wo.weight)                         # untrained composition == anchor
        # optional: a learned per-head penalty on the distance between query and memory positions
        # (ALiBi-style), so "the augment's state at my own position" is the easy thing to read
        self.slope = nn.Parameter(2.0 ** -torch.arange(n_head, dtype=torch.float)) if position_bias else None
        # optional: a learned key per head whose value is zero, so that a query can read nothing
        self.null_k = nn.Parameter(torch.zeros(n_head, self.e)) if null_slot else None
        # optional: the read is scaled per token by sigmoid(a linear function of the anchor's state), an
        # easier way than the softmax to say "not here" (e.g. while the anchor copies a name); with
        # gate_reads the gate also sees what was read (before wo), e.g. how sure the augment was: the RMSNorm
        # of a next-token distribution is larger in the argmax's direction the sharper the distribution is
        if gate_reads and not gate:
            raise ValueError("CALM: gate_reads (calm_gate_reads) needs gate (calm_gate)")
        self.gate_reads = gate_reads
        self.gate = nn.Linear(2 * d if gate_reads else d, 1) if gate else None
        if gate:
            nn.init.zeros_(self.gate.weight), nn.init.zeros_(self.gate.bias)

    def memory(self, m, pos):
        """Augment states m (b, s, a) at positions pos (b, s) -> keys, values (b, h, s, e)."""
        b, s, _ = m.shape
        kv = self.wkv(self.proj(self.norm_m(m))).view(b, s, -1, self.h, self.e)    # (b, s, 1 or 2, h, e)
        k, v = (self.pos_k.to(kv.dtype).expand(b, s, -1, -1), kv[:, :, 0]) if self.pos_k is not None else kv.unbind(2)
        k = apply_rope(k, *rope(pos, self.e, self.theta, self.h))
        return k.transpose(1, 2), v.transpose(1, 2)

    def forward(self, x, k, v, pos, mask, kpos=None):
        """x (b, t, d) at positions pos (b, t) reads k, v (b, h, s, e) at positions kpos (b, s) where
        mask (b, 1, t, s) -> (b, t, d)."""
        b, t, d = x.shape
        xn = self.norm_x(x)
        q = apply_rope(self.wq(xn).view(b, t, self.h, self.e), *rope(pos, self.e, self.theta, self.h))
        if self.slope is not None:
            dist = (pos[:, None, :, None] - kpos[:, None, None, :]).abs().to(q.dtype)        # (b, 1, t, s)
            mask = (-self.slope[:, None, None].to(q.dtype) * dist).masked_fill(~mask, float('-inf'))  # (b, h, t, s)
        if self.null_k is not None:                                                          # slot 0: the null slot
            k = torch.cat([self.null_k.to(k.dtype)[None, :, None].expand(b, -1, 1, -1), k], 2)  # (b, h, 1 + s, e)
            v = torch.cat([v.new_zeros(b, self.h, 1, self.e), v], 2)
            free = torch.ones(mask.shape[:3] + (1,), dtype=mask.dtype, device=mask.device)
            mask = torch.cat([free if mask.dtype == torch.bool else free - 1, mask], -1)
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k, v, attn_mask=mask)          # (b, h, t, e)
        y = y.transpose(1, 2).reshape(b, t, d)                                                # (b, t, d) read
        if self.gate is None:
            return self.wo(y)
        return self.wo(y) * torch.sigmoid(self.gate(torch.cat([xn, y], -1) if self.gate_reads else xn))


@contextlib.contextmanager
def hooked(pairs):
    """Forward hooks [(module, fn)] for the duration of one call, removed on exit even on an error: no hook
    and no hidden state survives the call (CALM-pytorch's permanent hooks keep them alive across steps)."""
    handles = [m.register_forward_hook(fn) for m, fn in pairs]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def hidden(out):
    return out[0] if isinstance(out, tuple) else out   # blocks of other libraries return tuples


def default_connections(n_anchor, n_augment, every):
    """Every `every`-th anchor layer (the last one always included) reads the augment layer at the same
    relative depth: [(anchor layer, augment layer)], 0-based block indices."""
    k = max(1, n_anchor // every)
    return [(math.ceil((c + 1) * n_anchor / k) - 1, max(0, math.ceil((c + 1) * n_augment / k) - 1)) for c in range(k)]


class CALM(nn.Module):
    def __init__(self, anchor, augments, connect_every=4, connections=None, n_head=4, prompt_end=None,
                 anchor_blocks=None, augment_blocks=None, position_bias=False, read_output=False, null_slot=False,
                 position_keys=False, gate=False, gate_reads=False, answer_from=None):
        """anchor, augments: models mapping idx (b, t) to logits (one augment or a list). Their blocks are
        model.blocks unless given as anchor_blocks=[...], augment_blocks=[[...] per augment].
        connections: per augment, [(anchor layer, augment layer)] (0-based block outputs); default from
        connect_every. prompt_end: None (causal, paper) or the token id that ends the augment's prompt.
        position_bias: a learned distance penalty in the cross-attention (not in the paper).
        read_output: the augment side of every default connection is the augment's next-token distribution
        (softmax of its logits, layer OUTPUT) instead of a block's output (not in the paper).
        null_slot: each cross-attention may also read a learned key with a zero value, i.e. nothing (not in the paper).
        position_keys: keys carry only the augment slot's position, not its state (not in the paper).
        gate: each read is scaled by a sigmoid of the anchor's state, per token (not in the paper).
        gate_reads: the gate also sees what was read (not in the paper).
        answer_from: None, or a token id (<|assistant|>): the augments read only what follows each document's
        first such token, i.e. the answer, as a text of its own (not in the paper; the opposite of prompt_end)."""
        super().__init__()
        if prompt_end is not None and answer_from is not None:
            raise ValueError("CALM: prompt_end (the augment reads the prompt) and answer_from (it reads the answer) exclude each other")
        augments = list(augments) if isinstance(augments, (list, tuple)) else [augments]
        self.anchor, self.augments, self.prompt_end, self.answer_from = anchor, nn.ModuleList(augments), prompt_end, answer_from
        for m in (anchor, *augments):
            m.requires_grad_(False).eval()
        self.anchor_blocks = list(anchor.blocks if anchor_blocks is None else anchor_blocks)
        self.augment_blocks = [list(m.blocks if bl is None else bl)
                               for m, bl in zip(augments, augment_blocks or [None] * len(augments))]
        if connections is None:
            connections = [default_connections(len(self.anchor_blocks), len(bl), connect_every) for bl in self.augment_blocks]
            if read_output:
                connections = [[(i, OUTPUT) for i, _ in pairs] for pairs in connections]
        self.connections = [(i, j, l) for j, pairs in enumerate(connections) for i, l in pairs]  # (anchor, augment, layer)
        widths = self._widths()
        self.xattn = nn.ModuleList(CrossAttention(widths[0][i], widths[1 + j][l], n_head, position_bias=position_bias,
                                                  null_slot=null_slot, position_keys=position_keys, gate=gate,
                                                  gate_reads=gate_reads)
                                    for i, j, l in self.connections)

    @torch.no_grad()
    def _widths(self):
        """Each model's block output widths and (key OUTPUT) its vocabulary, from one forward pass on a dummy input."""
        out = []
        for m, blocks in [(self.anchor, self.anchor_blocks), *zip(self.augments, self.augment_blocks)]:
            seen = {}
            with hooked([(blk, lambda mod, args, o, i=i: seen.__setitem__(i, hidden(o).shape[-1]))
                         for i, blk in enumerate(blocks)]):
                seen[OUTPUT] = m(torch.zeros(1, 2, dtype=torch.long, device=next(m.parameters()).device)).shape[-1]
            out.append(seen)
        return out

    # -- checkpoints hold the composition only: the frozen models live in their own checkpoints
    def state_dict(self, *args, **kwargs):
        return self.xattn.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, strict=True, assign=False):
        return self.xattn.load_state_dict(state_dict, strict, assign)

    def train(self, mode=True):
        super().train(mode)
        for m in (self.anchor, *self.augments):
            m.eval()
        return self

    def num_params(self):
        """Trained parameters (the composition); the frozen models count in their own runs."""
        return sum(p.numel() for p in self.xattn.parameters())

    # -- the composition
    def _mask(self, ok, q, seg=None):
        """Which memory slots each query reads -> mask (b, 1, t, s) bool, live (b, t, 1): 0 where a query has
        nothing to read (it then adds nothing). ok (b, s): slots holding a usable augment state (not padding;
        in prompt mode, in the prompt; in answer mode, in the answer); q (t,): the queries' slots; seg (b, s): documents."""
        k = torch.arange(ok.shape[1], device=ok.device)
        mask = ok[:, None, :].expand(-1, len(q), -1)                            # (b, t, s)
        if self.prompt_end is None:
            mask = mask & (k[None, :] <= q[:, None])                              # causal
        if seg is not None:
            mask = mask & (seg[:, :, None] == seg[:, None, :])                    # same document
        live = mask.any(-1, keepdim=True)
        mask = mask | ~live         # a query reading nothing reads all (no NaN), and its read is zeroed
        return mask[:, None], live.float()

    def _compose(self, run_augment, run_anchor, pos, mask, live, kv_caches=None, slot=0, kpos=None, scatter=None):
        """Run the augments (no grad) recording the connected layers' outputs, then the anchor with each
        connected layer's output plus its cross-attention reads. pos (b, t): the new tokens' positions;
        kpos (b, s): the memory slots' positions (default pos); scatter: maps what the augments output (answer
        mode: one row per answer) to the anchor's rows. -> the anchor's logits."""
        kpos = pos if kpos is None else kpos
        states = {}                                  # (augment, layer) -> [outputs]: local to this call
        with torch.no_grad(), hooked([(self.augment_blocks[j][l], lambda mod, args, o, key=(j, l):
                                       states.setdefault(key, []).append(hidden(o)))
                                      for _, j, l in self.connections if l != OUTPUT]):
            for j, m in enumerate(self.augments):
                logits = run_augment(j, m)
                if any(c[1:] == (j, OUTPUT) for c in self.connections):
                    states[(j, OUTPUT)] = [logits.float().softmax(-1)]
        if scatter is not None:
            states = {key: [scatter(torch.cat(out, 1))] for key, out in states.items()}
        reads = {}                                   # anchor layer -> [(cross-attention, k, v)]
        for c, (xa, (i, j, l)) in enumerate(zip(self.xattn, self.connections)):
            k, v = xa.memory(torch.cat(states[(j, l)], 1), pos)                  # (b, h, t, e)
            if kv_caches is not None:
                k, v = kv_caches[c].update(slot, k, v)                            # (b, h, s, e)
            reads.setdefault(i, []).append((xa, k, v))

        def read(conns):
            done = [0]  # queries answered so far: Mamba's step calls each block once per token

            def hook(mod, args, out):
                x = hidden(out)
                q = slice(done[0], done[0] + x.shape[1])
                done[0] = q.stop
                y = x + live[:, q] * sum(xa(x, k, v, pos[:, q], mask[:, :, q], kpos) for xa, k, v in conns)
                return (y, *out[1:]) if isinstance(out, tuple) else y
            return hook
        with hooked([(self.anchor_blocks[i], read(conns)) for i, conns in reads.items()]):
            return run_anchor()

    def forward(self, idx, pos=None, seg=None, at=None):
        """idx (b, t) -> the anchor's logits (b, t, v), or (n, v) at the positions at (b, t) marks; pos, seg as
        in model.Transformer.forward (packed rows)."""
        b, t = idx.shape
        call = (lambda m: m(idx)) if pos is None and seg is None else (lambda m: m(idx, pos=pos, seg=seg))
        run_augment = call
        p = torch.arange(t, device=idx.device).expand(b, t) if pos is None else pos
        ok, scatter = torch.ones_like(idx, dtype=torch.bool), None
        if self.prompt_end is not None:
            ok = self._ends_before(idx, self.prompt_end, seg) == 0                # up to and including the end
        elif self.answer_from is not None:
            ok = self._ends_before(idx, self.answer_from, seg) > 0                # after the document's first one
            answers, scatter = self._answers(idx, ok, seg)
            run_augment = lambda m: m(answers)                                    # noqa: E731
        mask, live = self._mask(ok, torch.arange(t, device=idx.device), seg)
        logits = self._compose(lambda j, m: run_augment(m), lambda: call(self.anchor), p, mask, live, scatter=scatter)
        return logits if at is None else logits[at]

    @staticmethod
    def _ends_before(idx, token, seg):
        """(b, t): how many `token`s come strictly before each position in its document (seg; None: the row)."""
        end = (idx == token).long()
        before = end.cumsum(1) - end
        if seg is None:
            return before
        start = torch.ones_like(idx, dtype=torch.bool)
        start[:, 1:] = seg[:, 1:] != seg[:, :-1]
        first = (torch.arange(idx.shape[1], device=idx.device) * start).cummax(1).values  # each document's first token
        return before - before.gather(1, first)

    @staticmethod
    def _answers(idx, ok, seg):
        """Answer mode: each run of ok tokens in one document becomes a row of its own (right-padded), so the
        augments read every answer from a fresh start, as in generation. -> (rows (n, L), scatter) where
        scatter maps (n, L, ...) outputs to (b, t, ...), zero outside the answers."""
        start = ok.clone()
        start[:, 1:] &= ~ok[:, :-1] | (seg[:, 1:] != seg[:, :-1] if seg is not None else False)
        if not bool(start.any()):    # no answer anywhere: the augments read one dummy token, nothing is kept
            return idx[:1, :1], lambda h: h.new_zeros(ok.shape + h.shape[2:])
        row_of = start.flatten().long().cumsum(0).view_as(ok) - 1                 # (b, t) answer index
        col = torch.arange(idx.shape[1], device=idx.device).expand_as(idx)
        off = col - col[start][row_of.clamp(min=0)]                               # offset inside its answer
        r, o = row_of[ok], off[ok]
        rows = idx.new_zeros(int(start.sum()), int(o.max()) + 1)
        rows[r, o] = idx[ok]

        def scatter(h):
            out = h.new_zeros(ok.shape + h.shape[2:])
            out[ok] = h[r, o]
            return out
        return rows, scatter

    # -- generation: the same interface as model.Transformer / model.Mamba, so model.generate works unchanged
    def new_cache(self, b, s):
        w = self.xattn[0].wo.weight
        return {'slot': 0, 'anchor': self.anchor.new_cache(b, s), 'augments': [m.new_cache(b, s) for m in self.augments],
                'xattn': [KVCache(b, xa.h, s, xa.e, w.device, w.dtype) for xa in self.xattn],
                'ok': torch.zeros(b, s, dtype=torch.bool, device=w.device),       # slot holds a readable state
                'end_at': torch.full((b,), s, dtype=torch.long, device=w.device)}  # prompt / answer mode: the prompt's last slot

    def step(self, idx, cache, pad):
        """Feed idx (b, t) into slots [slot, slot + t); row r is left-padded by pad[r] slots. -> logits (b, t, v).
        Prompt mode: the prompt must end within the first call (prefill), as model.generate's prompts do, since
        earlier queries could not read what came after them."""
        b, t = idx.shape
        s0 = cache['slot']
        q = s0 + torch.arange(t, device=idx.device)                                # (t,)
        kpos = (torch.arange(s0 + t, device=idx.device)[None] - pad[:, None]).clamp(min=0)  # (b, s) every slot
        pos = kpos[:, s0:]                                                         # (b, t) the new tokens
        ok = q[None] >= pad[:, None]                                               # real tokens (b, t)
        aug_pad = pad
        token = self.prompt_end if self.prompt_end is not None else self.answer_from
        if token is not None:   # record the slot of each row's first prompt-ending token
            unseen = cache['end_at'] == cache['ok'].shape[1]                      # (b,) still the initial value
            end = (idx == token) & ok & unseen[:, None]
            cache['end_at'] = torch.where(end.any(1), s0 + end.long().argmax(1), cache['end_at'])
            last = cache['end_at'][:, None]
            if self.prompt_end is not None:
                ok = ok & (q[None] <= last)
            else:               # the augments see everything up to the answer as left padding
                ok = q[None] > last
                aug_pad = cache['end_at'] + 1
        cache['ok'][:, s0:s0 + t] = ok
        mask, live = self._mask(cache['ok'][:, :s0 + t], q)
        logits = self._compose(lambda j, m: m.step(idx, cache['augments'][j], aug_pad),
                               lambda: self.anchor.step(idx, cache['anchor'], pad), pos, mask, live, cache['xattn'], s0, kpos)
        cache['slot'] = s0 + t
        return logits
