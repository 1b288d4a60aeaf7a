"""
The data pipeline of training: documents tokenized once (cached as .npz beside the data), and deterministic
epochs of rows, packed (several documents a row, attention kept inside each) or one document a row batched
by length. train.py builds its Packer with make_packer(cfg, data_dir); the state is (epoch, row).
"""
import os
import sys

import numpy as np

import data


def tokenized(data_dir, source):
    """All documents of one source rendered to tokens once, cached next to the data as .npz:
    flat tokens and loss mask, per-document offsets, and each document's split."""
    path = os.path.join(data_dir, f'tokens_{source}.npz')
    if not os.path.exists(path):
        docs = data.read_jsonl(os.path.join(data_dir, data.FILES[source]))
        rendered = [data.render(d['messages']) for d in docs]
        lens = np.array([len(ids) for ids, _ in rendered], dtype=np.int64)
        arrays = dict(tokens=np.concatenate([np.array(ids, dtype=np.uint16) for ids, _ in rendered]),
                      mask=np.concatenate([np.array(m, dtype=np.uint8) for _, m in rendered]),
                      offsets=np.concatenate([[0], np.cumsum(lens)]),
                      split=np.array([data.SPLITS.index(d['split']) for d in docs], dtype=np.uint8))
        tmp = f'{path}.{os.getpid()}.tmp.npz'   # per process: two runs may tokenize the same data at once
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    z = np.load(path)
    return {k: z[k] for k in z.files}


class Packer:
    """Deterministic epochs of packed rows. Each epoch shuffles the documents (seeded by seed and
    epoch) and fills rows of block_size greedily with whole documents; the rest of a row is padding
    (loss-masked). Documents never share attention: each token carries its document id (seg) and
    its position inside the document (pos). The state is just (epoch, row).
    With doc_mask=False a row is one text (positions run on, documents read the ones before them), as in
    plain LM pretraining: a model trained so learns to ignore unrelated text before what it knows.
    With one_per_row each row is one document, padded to the longest of its batch: every batch_rows rows
    come from a window of documents sorted by length (so little padding), batches in shuffled order. For
    short dialogs this is what small models train fastest on: no (block_size)^2 attention mask, and no
    regrouping of documents in Mamba."""
    SORT_WINDOW = 16   # batches whose documents are sorted by length together

    def __init__(self, sources, block_size, seed, doc_mask=True, one_per_row=False, batch_rows=1):
        self.sources, self.T, self.seed = sources, block_size, seed  # sources: [(tok dict, doc ids, copies)]
        self.doc_mask, self.one_per_row, self.batch_rows = doc_mask, one_per_row, batch_rows
        self.epoch, self.row = 0, 0
        self._pack()

    def state_dict(self):
        return {'epoch': self.epoch, 'row': self.row}

    def load_state_dict(self, s):
        self.epoch, self.row = s['epoch'], s['row']
        self._pack()

    def _pack(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        src, doc = [], []
        for k, (tok, ids, copies) in enumerate(self.sources):
            n_full, frac = int(copies), copies - int(copies)
            chosen = [ids] * n_full + ([rng.choice(ids, int(round(frac * len(ids))), replace=False)] if frac else [])
            for c in chosen:
                src.append(np.full(len(c), k))
                doc.append(c)
        src, doc = np.concatenate(src), np.concatenate(doc)
        order = rng.permutation(len(doc))
        self.src, self.doc = src[order], doc[order]
        lens = np.empty(len(doc), np.int64)
        for k, (tok, _, _) in enumerate(self.sources):
            sel = self.src == k
            lens[sel] = np.diff(tok['offsets'])[self.doc[sel]]
        lens = np.minimum(lens, self.T)  # a document longer than a row is cut (make_packer warns)
        if self.one_per_row:
            self._batch_by_length(rng, lens)
        else:
            row_of, used, r = np.empty(len(lens), np.int64), 0, 0
            for i, n in enumerate(lens.tolist()):  # greedy: next document goes in the current row if it fits
                if used + n > self.T:
                    r, used = r + 1, 0
                row_of[i], used = r, used + n
            self.lens = lens
            self.row_start = np.searchsorted(row_of, np.arange(r + 2))  # documents of row j: [row_start[j], row_start[j+1])
            self.n_rows = r + 1
        # per source, how many of its documents come before each position (copies_seen)
        self._before = np.stack([np.concatenate([[0], np.cumsum(self.src == k)]) for k in range(len(self.sources))])

    def _batch_by_length(self, rng, lens):
        """One document per row, in an order where each run of batch_rows rows has similar lengths."""
        n, B = len(lens), self.batch_rows
        W = B * self.SORT_WINDOW
        order = np.concatenate([i + np.argsort(lens[i:i + W], kind='stable') for i in range(0, n, W)])
        n_full = n // B * B                                  # whole batches are shuffled; the rest stays last
        batches = rng.permutation(n_full // B)
        order = np.concatenate([order[:n_full].reshape(-1, B)[batches].reshape(-1), order[n_full:]])
        self.src, self.doc, self.lens = self.src[order], self.doc[order], lens[order]
        self.row_start, self.n_rows = np.arange(n + 1), n

    def copies_seen(self):
        """Per source, how many copies of its documents were trained on so far (epochs x copies per epoch)."""
        done, per_epoch = self._before[:, self.row_start[self.row]], self._before[:, -1]
        return [(self.epoch * per_epoch[k] + done[k]) / len(ids) for k, (_, ids, _) in enumerate(self.sources)]

    def next_rows(self, n):
        """The next n rows (the global batch), moving to a new epoch when this one runs out."""
        if self.row + n > self.n_rows:
            if n > self.n_rows:
                sys.exit(f"error: the global batch ({n} rows) is larger than an epoch ({self.n_rows} rows)")
            self.epoch, self.row = self.epoch + 1, 0
            self._pack()
        rows = range(self.row, self.row + n)
        self.row += n
        return self.build(rows)

    def build(self, rows):
        """-> numpy (n, T) arrays: idx, targets, loss mask, pos, seg. T: block_size, or with one_per_row
        the longest document of these rows."""
        n = len(rows)
        T = int(max(self.lens[list(rows)])) if self.one_per_row else self.T
        idx = np.full((n, T), data.PAD, np.int64)
        tgt = np.full((n, T), data.PAD, np.int64)
        mask = np.zeros((n, T), np.float32)
        pos = np.zeros((n, T), np.int64)
        seg = np.full((n, T), -1, np.int64)
        for i, r in enumerate(rows):
            at = 0
            for j in range(self.row_start[r], self.row_start[r + 1]):
                tok = self.sources[self.src[j]][0]
                start, L = int(tok['offsets'][self.doc[j]]), int(self.lens[j])
                ids = tok['tokens'][start:start + L]
                idx[i, at:at + L] = ids
                tgt[i, at:at + L - 1] = ids[1:]
                mask[i, at:at + L - 1] = tok['mask'][start + 1:start + L]  # predict token k+1 where it is written by the model
                pos[i, at:at + L] = np.arange(L) + (0 if self.doc_mask else at)
                seg[i, at:at + L] = j if self.doc_mask else 0
                at += L
        return idx, tgt, mask, pos, seg


def make_packer(cfg, data_dir, world=1):
    """The Packer of a run's training mix; packer.names: each source's name, packer.repeats: how many of its
    documents state each trained fact (bios: bios_per_person, QA: one)."""
    splits = {s: data.SPLITS.index(s) for s in data.SPLITS}
    sources, names = [], []
    for source, copies in [('qa', cfg['mix_qa']), ('qa_tool', cfg['mix_qa_tool']), ('bios', cfg['mix_bios'])]:
        if copies <= 0:
            continue
        tok = tokenized(data_dir, source)
        allowed = [splits[s] for s in (cfg['bios_splits'].split(',') if source == 'bios' else ['train'])]
        ids = np.nonzero(np.isin(tok['split'], allowed))[0]
        if len(ids):
            sources.append((tok, ids, copies))
            names.append(source)
    if not sources:
        sys.exit("error: nothing to train on: set mix_qa, mix_qa_tool or mix_bios > 0")
    longest = max(int(np.diff(tok['offsets'])[ids].max()) for tok, ids, _ in sources)
    if longest > cfg['block_size']:
        print(f"warning: documents of up to {longest} tokens are cut to block_size={cfg['block_size']}", file=sys.stderr)
    order_seed = cfg['seed'] if cfg['order_seed'] < 0 else cfg['order_seed']
    packer = Packer(sources, cfg['block_size'], order_seed, cfg['doc_mask'], cfg['one_per_row'],
                    cfg['batch_size'] * cfg['grad_accum'] * world)
    packer.names = names
    packer.repeats = [cfg['bios_per_person'] if name == 'bios' else 1 for name in names]
    return packer


def exposures_per_fact(packer):
    """How many times each trained fact was in a trained document so far (on average over facts)."""
    return sum(c * r for c, r in zip(packer.copies_seen(), packer.repeats))
