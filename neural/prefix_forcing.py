"""Teacher forcing of many reference traces at once, with the prompts' shared prefixes computed once.

``certify`` must check every CoT step of every prompt of a space. One teacher-forced pass per prompt suffices (if
the argmax after every prefix of the reference is the reference's next token, greedy decoding writes the
reference: ``neural.construction.execute``'s argument), and prompts enumerated in lexicographic order share their
prefixes with their neighbours. So a block of prompts is run as a trie: depth by depth, each distinct prefix feeds
its one new token after its parent's KV cache (gathered, one row per child), and the continuation (the separator
and the reference CoT but its last token) runs once per prompt after its leaf's cache. ``Forcer`` is that forward:
the decoder's own modules, in their order, arranged so that the trie skips what it can (see its docstring); the
differential tests hold it to ``Decoder.features``, the one forward everything else runs.

``forced_logits_plain`` is the baseline the trie is measured against (and the path for models given only as a
function): the whole sequence in one pass per prompt.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from neural.model import Decoder


@dataclass(frozen=True)
class StepScores:
    """Per prompt of a batch: the first step whose argmax is not the reference token (-1: none), the token the
    argmax gives there (-1: none), and the smallest margin over its steps, logit(reference) - max(other logits),
    with the step where it occurs (a margin <= 0 is a step the argmax gets wrong or ties)."""

    wrong_step: np.ndarray
    got: np.ndarray
    margin: np.ndarray
    margin_step: np.ndarray


def score(logits: torch.Tensor, targets: np.ndarray) -> StepScores:
    """``logits`` (B, n, V) after each prefix of the reference; ``targets`` (B, n) the reference's next tokens."""
    logits = logits.float()
    ref = torch.as_tensor(np.asarray(targets, dtype=np.int64), device=logits.device)
    chosen = logits.argmax(-1)  # ties go to the lowest token id, as greedy decoding's argmax
    right = logits.gather(-1, ref[..., None])[..., 0]
    others = logits.scatter(-1, ref[..., None], float("-inf")).amax(-1)
    margins = (right - others).nan_to_num(nan=float("-inf"))
    wrong = chosen != ref
    first = torch.where(wrong.any(-1), wrong.float().argmax(-1), torch.full_like(ref[:, 0], -1))
    got = torch.where(first >= 0, chosen.gather(-1, first.clamp(min=0)[:, None])[:, 0], torch.full_like(first, -1))
    low, where = margins.min(-1)
    return StepScores(first.cpu().numpy(), got.cpu().numpy(), low.cpu().numpy().astype(np.float64),
                      where.cpu().numpy())


def forced_logits_shared(model: Decoder, prompts: np.ndarray, continuation: np.ndarray) -> torch.Tensor:
    """(B, n, V) logits after every token of ``continuation`` (B, n), each row following its prompt (B, P), with
    every distinct prefix of the prompts computed once. Rows sharing a prefix must be adjacent for the saving
    (sort them, as an enumeration already is), not for the result. Many blocks of one model: make one ``Forcer``
    and call its ``logits``, so that its table is made once."""
    return Forcer(model).logits(prompts, continuation)


class Forcer:
    """The decoder's own forward (its modules, in its order), arranged for a trie of prompts:

    - keys and values live in one preallocated tensor per layer, a row per trie node; a child copies its parent's
      filled positions, then writes its own;
    - layer 0's queries, keys and values are functions of (token, position) alone, so they are read from a table
      made once (where it is small), not recomputed at every position;
    - at a prompt position only the last layer's key and value are ever read, so its attention and feed-forward
      are not computed there; logits are computed only after the continuation's tokens.
    Differential tests hold it to ``Decoder.features`` (``forced_logits_plain``) within float32 rounding."""

    TABLE_BYTES = 256 << 20

    def __init__(self, model: Decoder):
        self.model = model
        self.cfg = cfg = model.cfg
        self.device = next(model.parameters()).device
        self.width = cfg.n_heads * cfg.d_head
        self.table = None
        if self.tabulates(cfg):
            with torch.inference_mode():
                x = model.tok_emb.weight[:, None] + model.pos_emb.weight[None]  # (V, max_len, d)
                self.table = tuple(t.reshape(-1, self.width) for t in self._qkv(0, x))  # row t * max_len + p

    @classmethod
    def tabulates(cls, cfg) -> bool:
        """Whether layer 0's (token, position) table is small enough to make."""
        return 3 * cfg.vocab_size * cfg.max_len * cfg.n_heads * cfg.d_head * 4 <= cls.TABLE_BYTES

    def _qkv(self, layer: int, x: torch.Tensor):
        attn = self.model.blocks[layer].attn
        h = self.model.blocks[layer].ln1(x)
        return attn.q(h), attn.k(h), attn.v(h)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        return t.unflatten(-1, (self.cfg.n_heads, self.cfg.d_head)).transpose(1, 2)

    def advance(self, tokens: torch.Tensor, start: int, keys: list, values: list, outputs: bool):
        """Feed ``tokens`` (B, T) at positions start.. after each row's cached ``start`` positions, writing their
        keys and values into ``keys``/``values`` (per layer, (B, length, H * d_head)). Returns the final features
        (B, T, d) if ``outputs``, else None (the last layer stops at its keys and values)."""
        m, T = self.model, tokens.shape[1]
        pos = torch.arange(start, start + T, device=self.device)
        x = m.tok_emb(tokens) + m.pos_emb(pos)[None]
        last = len(m.blocks) - 1
        for i, block in enumerate(m.blocks):
            if i == 0 and self.table is not None:
                flat = (tokens * self.cfg.max_len + pos[None]).reshape(-1)
                q, k, v = (t.index_select(0, flat).view(*tokens.shape, -1) for t in self.table)
            else:
                q, k, v = self._qkv(i, x)
            keys[i][:, start:start + T] = k
            values[i][:, start:start + T] = v
            if i == last and not outputs:
                return None
            mask = None if T == 1 else torch.ones(T, start + T, dtype=torch.bool, device=self.device).tril(start)
            out = torch.nn.functional.scaled_dot_product_attention(
                self._heads(q), self._heads(keys[i][:, :start + T]), self._heads(values[i][:, :start + T]),
                attn_mask=mask, scale=self.cfg.scale)
            x = x + block.attn.o(out.transpose(1, 2).reshape(x.shape[0], T, self.width))
            x = x + block.ffn(block.ln2(x))
        return m.ln_f(x)

    def _cache(self, rows: int, length: int) -> tuple[list, list]:
        shape = (rows, length, self.width)  # heads split by a view where attention reads them
        return ([torch.empty(shape, device=self.device) for _ in self.model.blocks],
                [torch.empty(shape, device=self.device) for _ in self.model.blocks])

    def logits(self, prompts: np.ndarray, continuation: np.ndarray) -> torch.Tensor:
        prompts = np.asarray(prompts, dtype=np.int64)
        B, P = prompts.shape
        length = P + continuation.shape[1]
        with torch.inference_mode():
            keys, values = self._cache(1, length)
            node = np.zeros(B, dtype=np.int64)  # each row's trie node at the current depth
            changed = np.zeros(B, dtype=bool)
            for d in range(P):
                changed = changed | np.concatenate([[True], prompts[1:, d] != prompts[:-1, d]])
                firsts = np.flatnonzero(changed)  # the first row of each distinct prefix of length d + 1
                keys, values = self._children(keys, values, node[firsts], d, length)
                self.advance(torch.as_tensor(prompts[firsts, d:d + 1], device=self.device), d, keys, values, False)
                node = np.cumsum(changed) - 1
            keys, values = self._children(keys, values, node, P, length)
            x = self.advance(torch.as_tensor(np.asarray(continuation, dtype=np.int64), device=self.device), P,
                             keys, values, True)
            return self.model.head(x)

    def _children(self, keys, values, parents: np.ndarray, filled: int, length: int):
        """A cache row per child, holding its parent's first ``filled`` positions."""
        index = torch.as_tensor(parents, device=self.device)
        new_keys, new_values = self._cache(len(parents), length)
        for old, new in ((keys, new_keys), (values, new_values)):
            for a, b in zip(old, new):
                b[:, :filled] = a[:, :filled].index_select(0, index)
        return new_keys, new_values


def forced_logits_plain(model: Decoder, prompts: np.ndarray, continuation: np.ndarray) -> torch.Tensor:
    """The same logits by one causal pass over each whole sequence: the baseline, sharing nothing."""
    device = next(model.parameters()).device
    full = np.concatenate([prompts, continuation], axis=1).astype(np.int64)
    with torch.inference_mode():
        x, _ = model.features(torch.as_tensor(full, device=device))
        return model.head(x[:, prompts.shape[1]:])


def forced_logits_callable(fn, ids: np.ndarray, prompts: np.ndarray, continuation: np.ndarray) -> torch.Tensor:
    """For a model given as a function from its own ids (B, T) to logits (B, T, V): one pass per batch, the logits
    of the task's tokens (``ids``: task token -> model id) after every continuation token."""
    full = np.concatenate([prompts, continuation], axis=1).astype(np.int64)
    with torch.inference_mode():
        out = fn(torch.as_tensor(ids[full]))
    out = torch.as_tensor(out) if not torch.is_tensor(out) else out
    return out[:, prompts.shape[1]:][..., torch.as_tensor(ids, device=out.device)].float().cpu()
