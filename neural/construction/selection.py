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
            indexes: dict[tuple, tuple] = {}  # heads reading the same key field share its sorted index
            for head, (q_cols, k_cols) in self.fields.get(layer, {}).items():
                if tuple(k_cols) not in indexes:
                    indexes[tuple(k_cols)] = _key_index(x[b][:, k_cols])
                out[b, head] = _lookup(x[b][:, q_cols], indexes[tuple(k_cols)])
        return out


def _codes(field: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, k) field values -> (codes, valid): bit b set where +1; valid where every entry is exactly +-1."""
    valid = np.all((field == 1.0) | (field == -1.0), axis=1)
    bits = (field > 0).astype(np.int64)
    return (bits << np.arange(field.shape[1], dtype=np.int64)).sum(axis=1), valid


def _key_index(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, k) key field -> the valid keys' codes, sorted, and their positions in that order."""
    k, k_ok = _codes(keys)
    positions = np.flatnonzero(k_ok)
    order = np.argsort(k[positions], kind="stable")
    return k[positions][order], positions[order]


def _lookup(queries: np.ndarray, index: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Per query position i, the one key position j <= i whose code equals i's, or ``NO_KEY`` (no valid code, or
    not exactly one such key among all keys: the lemma's single-match case)."""
    sorted_codes, sorted_positions = index
    q, q_ok = _codes(queries)
    lo = np.searchsorted(sorted_codes, q, side="left")
    hi = np.searchsorted(sorted_codes, q, side="right")
    unique = (hi - lo) == 1
    j = sorted_positions[np.minimum(lo, len(sorted_positions) - 1)] if len(sorted_positions) else np.zeros_like(q)
    visible = j <= np.arange(len(q))
    return np.where(q_ok & unique & visible, j, NO_KEY)


def _match(queries: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """``_lookup`` in a key field indexed for this one query field."""
    return _lookup(queries, _key_index(keys))


def proved_selection(model: ConstructedModel, check: SpotCheck | None = None) -> Selection:
    """The selection a run uses once the retrieval lemma is proved for ``model`` in its arithmetic."""
    return Selection(KeySelection(model), check or SpotCheck())
