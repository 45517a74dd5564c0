"""Teacher-forced passes over one long sequence a block of positions at a time, where a proof licenses gathered
attention: memory grows with the block and the model's width, not with the sequence length times the width.

A whole-sequence pass (``Decoder.features``) holds every position's residual, queries, keys, values and FFN hidden
units at once: about 2.4 KB a position for a Theorem 3.3 model, 24 GB for 10^7 gates. Where each head's row is the
value row at one selected key (``neural.selected``), a one-layer model needs, for the queries of a block, only the
value rows at the keys they select, and the layer reads the embedding, which any position's token and index give.
So the pass here keeps the tokens, the sorted key codes (``KeySelection.index``, 16 bytes a position) and each
head's selected key (8 bytes) of the whole sequence, and computes everything else a block at a time: the block's
residual, its queries, the value rows of the keys it selects (re-embedded where they are), the output projection,
the FFN and the argmax.

Rows without a selected key, and a seeded sample of the gathered rows per head (the spot check, drawn as
``neural.selected`` draws it for a whole pass), are computed densely over every key they may see, in blocks of keys
with the online (max-rescaled) softmax of torch's fused kernels, which the IEEE proofs cover; a sampled row that
differs from its gathered row bit for bit stops the pass with ``UnsoundAttention``. Deeper models, whose later
layers read residuals that only a whole pass computes, keep the whole-sequence pass.
"""
from __future__ import annotations

import numpy as np

from neural.selected import NO_KEY, UnsoundAttention

BLOCK = 1 << 15  # positions per block: one block's activations are a few MiB at a construction's widths


def streams(cfg, length: int, block: int | None = None) -> bool:
    """Whether a licensed pass of ``length`` positions through a model of this config streams: one layer, and a
    sequence longer than one block (shorter ones gain nothing over the whole-sequence pass). What the cost
    estimates read too."""
    return cfg.n_layers == 1 and length > (block or BLOCK)


def can_stream(model, length: int, block: int | None = None) -> bool:
    """A pass this module runs: ``streams``, with a licensed selection that indexes keys by blocks."""
    return hasattr(getattr(model.selection, "keys", None), "index") and streams(model.cfg, length, block)


class _Stream:
    """One sequence of one model: its embedding at any positions, and each head's projections of it."""

    def __init__(self, model, tokens, block: int):
        import torch

        self.torch, self.model, self.block = torch, model, block
        self.tokens = torch.as_tensor(np.asarray(tokens, dtype=np.int64), device=model.head.weight.device)
        self.length = int(self.tokens.shape[0])
        self.attn, self.ln1 = model.blocks[0].attn, model.blocks[0].ln1
        self.heads, self.d_head = model.cfg.n_heads, model.cfg.d_head

    def residual(self, positions):
        """The embedding (the residual layer 0 reads) at ``positions`` (a tensor of indices): (n, d_model)."""
        return self.model.tok_emb(self.tokens[positions]) + self.model.pos_emb(positions)

    def span(self, start: int, stop: int):
        return self.torch.arange(start, stop, device=self.tokens.device)

    def project(self, name: str, x):
        """(n, d_model) -> (heads, n, d_head) through attn.q, attn.k or attn.v."""
        return getattr(self.attn, name)(self.ln1(x)).view(x.shape[0], self.heads, self.d_head).transpose(0, 1)

    def blocks(self, stop: int | None = None):
        """(start, positions) of consecutive blocks over positions 0..stop-1."""
        stop = self.length if stop is None else stop
        for start in range(0, stop, self.block):
            yield start, self.span(start, min(stop, start + self.block))


def dense_rows(stream: _Stream, rows: dict):
    """Dense outputs for ``rows``: head -> (queries (n, d_head), query positions (n,)), every key up to each position
    scored, a block of keys at a time (their keys and values projected once for every head), with the online
    softmax (running max, rescaled sum and weighted sum) that torch's fused kernels compute. A block is scored only
    for the rows that see one of its keys, so each row's first block starts it: exp(-inf - max) = 0 rescales the
    empty state away, and only the rows whose position falls inside a block need its causal mask.
    -> head -> (n, d_head)."""
    torch = stream.torch
    scale = stream.model.cfg.scale
    state = {}
    for h, (q, positions) in rows.items():
        order = np.argsort(positions, kind="stable")
        n = len(positions)
        state[h] = dict(q=q[torch.as_tensor(order, device=q.device)], at=positions[order], order=order,
                        top=torch.full((n,), float("-inf"), dtype=q.dtype, device=q.device),
                        total=torch.zeros(n, dtype=q.dtype, device=q.device),
                        acc=torch.zeros(n, stream.d_head, dtype=q.dtype, device=q.device))
    last = max(int(positions.max()) for _, positions in rows.values())
    for start, span in stream.blocks(last + 1):
        x = stream.residual(span)
        keys, values = stream.project("k", x), stream.project("v", x)
        stop = start + len(span)
        for h, st in state.items():
            first = int(np.searchsorted(st["at"], start))  # rows before it see none of this block's keys
            if first == len(st["at"]):
                continue
            scores = st["q"][first:] @ keys[h].T
            if scale != 1.0:
                scores = scores * scale
            inside = int(np.searchsorted(st["at"], stop - 1)) - first  # these rows see part of the block
            if inside > 0:
                at = torch.as_tensor(st["at"][first:first + inside], device=span.device)
                scores[:inside] = scores[:inside].masked_fill(span[None, :] > at[:, None], float("-inf"))
            top = st["top"][first:]
            new_top = torch.maximum(top, scores.max(dim=1).values)
            rescale = torch.exp(top - new_top)
            weights = torch.exp(scores - new_top[:, None])
            st["total"][first:] = st["total"][first:] * rescale + weights.sum(dim=1)
            st["acc"][first:] = st["acc"][first:] * rescale[:, None] + weights @ values[h]
            st["top"][first:] = new_top
    out = {}
    for h, st in state.items():
        rows_out = st["acc"] / st["total"][:, None]
        out[h] = torch.empty_like(rows_out)
        out[h][torch.as_tensor(st["order"], device=rows_out.device)] = rows_out
    return out


def streamed_predictions(model, tokens: np.ndarray, at: np.ndarray, argmax, block: int | None = None) -> np.ndarray:
    """The argmax (``argmax``: features -> tokens, the session's) after each position in ``at`` for one sequence
    (T,), as a whole-sequence pass gives it, computed a block at a time (``can_stream`` says where it applies)."""
    import torch

    keys, check = model.selection.keys, model.selection.check
    layer = model.blocks[0]
    with torch.inference_mode():
        stream = _Stream(model, tokens, block or BLOCK)
        indexes = keys.index(0, (stream.residual(span).float().cpu().numpy() for _, span in stream.blocks()))
        selected = np.concatenate([keys.select(0, stream.residual(span).float().cpu().numpy(), indexes, start)
                                   for start, span in stream.blocks()], axis=1)  # (heads, T): 8 bytes an entry
        spot = {}  # per head, the gathered rows the spot check recomputes: drawn as the whole pass draws them
        for h in range(stream.heads):
            gathered = np.flatnonzero(selected[h] != NO_KEY)
            spot[h] = gathered[check.sample(len(gathered), salt=h)]
        sampled = {h: [] for h in spot}  # (positions, queries, gathered rows) of the sampled gathered rows
        at = np.asarray(at, dtype=np.int64)
        want = np.zeros(stream.length, dtype=bool)
        want[at] = True  # computed in position order, then given back in the order of ``at``
        out = []
        for start, span in stream.blocks():
            x = stream.residual(span)
            heads = _attend(stream, x, selected[:, start:start + len(span)], start, spot, sampled)
            x = x + stream.attn.o(heads.transpose(0, 1).reshape(len(span), -1))
            x = x + layer.ffn(layer.ln2(x))
            rows = torch.as_tensor(np.flatnonzero(want[start:start + len(span)]), device=x.device)
            out.append(argmax(model.ln_f(x[rows])).cpu().numpy())
        _spot_check(stream, sampled, check)
    return np.concatenate(out)[np.searchsorted(np.flatnonzero(want), at)]


def _attend(stream: _Stream, x, selected: np.ndarray, start: int, spot: dict, sampled: dict):
    """Every head's output rows for one block (heads, n, d_head): gathered at the selected keys, dense where none
    is selected; the gathered rows at the spot check's positions are kept in ``sampled``."""
    torch = stream.torch
    q = stream.project("q", x)
    out = torch.empty_like(q)
    wanted = np.unique(selected[selected != NO_KEY])
    values = stream.project("v", stream.residual(torch.as_tensor(wanted, device=x.device))) if wanted.size else None
    dense = {}
    for h in range(stream.heads):
        picked = selected[h] != NO_KEY
        where = np.flatnonzero(picked)
        if where.size:
            slot = torch.as_tensor(np.searchsorted(wanted, selected[h, where]), device=x.device)
            out[h, torch.as_tensor(where, device=x.device)] = values[h, slot]
        unpicked = np.flatnonzero(~picked)
        if unpicked.size:
            dense[h] = (q[h, torch.as_tensor(unpicked, device=x.device)], start + unpicked)
        mine = spot[h][(spot[h] >= start) & (spot[h] < start + x.shape[0])]  # gathered rows, by their draw
        if mine.size:
            at = torch.as_tensor(mine - start, device=x.device)
            sampled[h].append((mine, q[h, at], out[h, at]))
    if dense:
        for h, rows in dense_rows(stream, dense).items():
            out[h, torch.as_tensor(dense[h][1] - start, device=x.device)] = rows
    return out


def _spot_check(stream: _Stream, sampled: dict, check) -> None:
    """The sampled gathered rows of every head recomputed densely in one sweep over the keys; any difference, bit
    for bit, is ``UnsoundAttention``."""
    torch = stream.torch
    rows = {h: (torch.cat([q for _, q, _ in parts]), np.concatenate([p for p, _, _ in parts]))
            for h, parts in sampled.items() if parts}
    if not rows:
        return
    for h, recomputed in dense_rows(stream, rows).items():
        gathered = torch.cat([g for _, _, g in sampled[h]])
        same = (recomputed == gathered).all(dim=-1).cpu().numpy()
        if not same.all():
            raise UnsoundAttention(0, h, 0, int(rows[h][1][np.flatnonzero(~same)[0]]))
        check.checked += int(same.size)
