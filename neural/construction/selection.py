"""Attention the retrieval lemma licenses: each head's row is the value row at the one key whose code matches.

``verify``'s ``retrieval`` lemma (and its IEEE counterpart) proves, over a construction's very weights and in the
arithmetic a run uses, that a head's attention row is exactly one-hot on the visible key whose code (the key field,
+-1 per bit) equals the query's, so its output is that key's value row, bit for bit. A run licensed by that lemma
may therefore find the key by its code, in O(L log L), instead of scoring every key, in O(L^2). Rows the lemma
does not cover (a query field that is not a +-1 code, a code no visible key or several keys hold) are left to the
dense kernel, and every run compares a seeded sample of the selected rows with the dense kernel's
(``neural.selected``, where the kernels are).
"""
from __future__ import annotations

import numpy as np

from neural.construction.constructed import ConstructedModel
from neural.selected import NO_KEY, Selection, SpotCheck


class KeySelection:
    """For each layer, the key each head's query selects, read off the residual the layer reads."""

    def __init__(self, model: ConstructedModel):
        self.n_heads = model.config.n_heads
        self.fields: dict[int, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
        for plan in model.heads:
            if plan.query_field is not None:
                self.fields.setdefault(plan.layer, {})[plan.head] = (model.layout.cols(plan.query_field),
                                                                    model.layout.cols(plan.key_field))

    def __call__(self, layer: int, x: np.ndarray) -> np.ndarray:
        """x (B, T, d_model), the residual layer ``layer`` reads -> (B, heads, T) key positions, ``NO_KEY`` where
        the dense kernel decides."""
        B, T = x.shape[:2]
        out = np.full((B, self.n_heads, T), NO_KEY, dtype=np.int64)
        for b in range(B):
            out[b] = self.select(layer, x[b], self.index(layer, [x[b]]))
        return out

    def index(self, layer: int, residual_blocks) -> dict[tuple, tuple[np.ndarray, np.ndarray]]:
        """The sorted key codes of one sequence, per key field layer ``layer``'s heads read (heads reading the same
        field share one), from its residual given as consecutive (T_i, d_model) blocks: a streamed pass
        (``neural.streamed``) never holds the whole residual."""
        fields = {tuple(k_cols) for _, k_cols in self.fields.get(layer, {}).values()}
        parts: dict[tuple, list] = {f: [] for f in fields}
        for block in residual_blocks:
            for f in fields:
                parts[f].append(_codes(block[:, list(f)]))
        return {f: _sorted_index(np.concatenate([c for c, _ in p]), np.concatenate([v for _, v in p]))
                for f, p in parts.items() if p}

    def select(self, layer: int, x: np.ndarray, indexes: dict, first: int = 0) -> np.ndarray:
        """x (T, d_model): the residual at positions first..first+T-1 -> (heads, T) key positions, ``NO_KEY``
        where the dense kernel decides; ``indexes`` from ``index`` over every position up to the last of x."""
        out = np.full((self.n_heads, x.shape[0]), NO_KEY, dtype=np.int64)
        for head, (q_cols, k_cols) in self.fields.get(layer, {}).items():
            out[head] = _lookup(x[:, q_cols], indexes[tuple(k_cols)], first)
        return out


def _codes(field: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, k) field values -> (codes, valid): bit b set where +1; valid where every entry is exactly +-1."""
    valid = np.all((field == 1.0) | (field == -1.0), axis=1)
    bits = (field > 0).astype(np.int64)
    return (bits << np.arange(field.shape[1], dtype=np.int64)).sum(axis=1), valid


def _sorted_index(codes: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The valid keys' codes, sorted, and their positions in that order."""
    positions = np.flatnonzero(valid)
    order = np.argsort(codes[positions], kind="stable")
    return codes[positions][order], positions[order]


def _key_index(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, k) key field -> the valid keys' codes, sorted, and their positions in that order."""
    return _sorted_index(*_codes(keys))


def _lookup(queries: np.ndarray, index: tuple[np.ndarray, np.ndarray], first: int = 0) -> np.ndarray:
    """Per query position i (counted from ``first``), the one key position j <= i whose code equals i's, or
    ``NO_KEY`` (no valid code, or not exactly one such key among all keys: the lemma's single-match case)."""
    sorted_codes, sorted_positions = index
    q, q_ok = _codes(queries)
    lo = np.searchsorted(sorted_codes, q, side="left")
    hi = np.searchsorted(sorted_codes, q, side="right")
    unique = (hi - lo) == 1
    j = sorted_positions[np.minimum(lo, len(sorted_positions) - 1)] if len(sorted_positions) else np.zeros_like(q)
    visible = j <= first + np.arange(len(q))
    return np.where(q_ok & unique & visible, j, NO_KEY)


def _match(queries: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """``_lookup`` in a key field indexed for this one query field."""
    return _lookup(queries, _key_index(keys))


def proved_selection(model: ConstructedModel, check: SpotCheck | None = None) -> Selection:
    """The selection a run uses once the retrieval lemma is proved for ``model`` in its arithmetic."""
    return Selection(KeySelection(model), check or SpotCheck())
