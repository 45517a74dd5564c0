"""Attention computed from a given key per query: the kernels behind ``neural.construction.selection``.

Where a proof licenses it, a head's output row is the value row at one selected key, so it is gathered instead of
computed from every key's score. The rows without a selected key (``NO_KEY``) are computed by the dense, written-out
kernel, one row at a time against the keys it may see; and a seeded sample of the gathered rows (``SpotCheck``) is
recomputed the same way and must agree bit for bit, else ``UnsoundAttention`` stops the run. Nothing here knows
why a key is selected: that is the construction's business.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

NO_KEY = -1  # a row the dense kernel computes
SPOT_CHECK_ROWS = 64  # gathered rows per (layer, head) that every pass recomputes densely


class UnsoundAttention(RuntimeError):
    """A gathered row differs from the dense kernel's: the license does not hold for this run."""

    def __init__(self, layer: int, head: int, row: int, position: int):
        self.layer, self.head, self.row, self.position = layer, head, row, position
        super().__init__(f"the proved attention path differs from the dense kernel at layer {layer}, head {head}, "
                         f"position {position} (sequence {row}): the run is stopped as unsound")


@dataclass
class SpotCheck:
    """How many gathered rows each (layer, head) recomputes densely per pass, drawn with ``seed``; ``checked``
    counts them over the session."""

    rows: int = SPOT_CHECK_ROWS
    seed: int = 0
    checked: int = 0

    def sample(self, count: int, salt: int) -> np.ndarray:
        """Indices into ``count`` gathered rows: every one when few, else a seeded sample."""
        if count <= self.rows:
            return np.arange(count)
        return np.sort(np.random.default_rng([self.seed, salt]).choice(count, self.rows, replace=False))


@dataclass
class Selection:
    """Selects keys for a decoder: ``keys(layer, x)`` maps the residual a layer reads, (B, T, d) numpy, to the
    selected key of every (sequence, head, query), (B, H, T), ``NO_KEY`` where the dense kernel decides."""

    keys: object  # Callable[[int, np.ndarray], np.ndarray]
    check: SpotCheck = field(default_factory=SpotCheck)


def torch_selected(q, k, v, keys: np.ndarray, scale: float, check: SpotCheck, layer: int):
    """q, k, v (B, H, T, dh) of one whole causal sequence per row -> the heads' outputs (B, H, T, dv)."""
    import torch

    select = torch.as_tensor(keys, device=v.device)
    out = torch.gather(v, 2, select.clamp(min=0)[..., None].expand(-1, -1, -1, v.shape[-1])).clone()
    for b, h in {(int(b), int(h)) for b, h in zip(*np.nonzero((keys == NO_KEY).any(axis=2)))}:
        rows = np.flatnonzero(keys[b, h] == NO_KEY)
        out[b, h, rows] = _torch_dense(q[b, h], k[b, h], v[b, h], rows, scale)
    for h in range(keys.shape[1]):
        b_idx, rows = np.nonzero(keys[:, h] != NO_KEY)
        picked = check.sample(len(rows), salt=layer * keys.shape[1] + h)
        for b in np.unique(b_idx[picked]):
            mine = rows[picked][b_idx[picked] == b]
            dense = _torch_dense(q[b, h], k[b, h], v[b, h], mine, scale)
            same = (dense == out[b, h, mine]).all(dim=-1).cpu().numpy()
            if not same.all():
                raise UnsoundAttention(layer, h, int(b), int(mine[np.flatnonzero(~same)[0]]))
        check.checked += len(picked)
    return out


def _torch_dense(q, k, v, rows: np.ndarray, scale: float):
    """The written-out kernel (``neural.model.Attention._written_out``) for the queries at ``rows`` of one head:
    each sees the keys up to its own position."""
    import torch

    visible = int(rows.max()) + 1
    at = torch.as_tensor(rows, device=q.device)
    scores = q[at] @ k[:visible].transpose(-1, -2)
    if scale != 1.0:
        scores = scores * scale
    causal = torch.arange(visible, device=q.device)[None, :] <= at[:, None]
    return torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1) @ v[:visible]


def finite_selected(fmt, q, k, v, keys: np.ndarray, scale: float, check: SpotCheck, layer: int, head: int):
    """One head of one sequence in F(e,s): q, k, v (T, dh), keys (T,) -> the output rows (T, dv)."""
    out = v[np.maximum(keys, 0)].copy()
    for i in np.flatnonzero(keys == NO_KEY):
        out[i] = fmt.attention(q[i:i + 1], k[:i + 1], v[:i + 1], scale, None, False)[0][0]
    gathered = np.flatnonzero(keys != NO_KEY)
    for i in gathered[check.sample(len(gathered), salt=layer * 1_000_003 + head)]:
        dense = fmt.attention(q[i:i + 1], k[:i + 1], v[:i + 1], scale, None, False)[0][0]
        if not np.array_equal(dense, out[i]):
            raise UnsoundAttention(layer, head, 0, int(i))
        check.checked += 1
    return out
