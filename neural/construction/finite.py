"""The decoder of ``neural.model`` executed bit-exactly in F(ebits, sbits), on the same named arrays.

Every operation rounds as ``neural.construction.fp`` defines (nearest-even after each product and each addition,
sums left to right, saturation at +-B, the paper's softmax without max-subtraction), so what this computes is what
``formal`` proves about. It needs no torch: the arrays are numpy, and the architecture is ``ModelConfig``. LayerNorm
and GELU have no F semantics here yet and are refused with a clear error rather than approximated.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from neural.config import Keys, ModelConfig
from neural.construction.fp import FPFormat
from neural.selected import finite_selected


class UnsupportedInFinite(ValueError):
    pass


class _Rows:
    """An array that grows by rows with amortised O(1) appends, so a KV cache costs O(L·d), not O(L²·d), to fill."""

    def __init__(self):
        self._buf: np.ndarray | None = None
        self._n = 0

    def extend(self, rows: np.ndarray) -> np.ndarray:
        """Append ``rows`` and return every row so far (a view)."""
        need = self._n + rows.shape[0]
        if self._buf is None or need > self._buf.shape[0]:
            grown = np.empty((max(need, 2 * self._n, 16),) + rows.shape[1:])
            if self._buf is not None:
                grown[:self._n] = self._buf[:self._n]
            self._buf = grown
        self._buf[self._n:need] = rows
        self._n = need
        return self._buf[:need]


@dataclass
class FiniteCache:
    """Per (layer, head): the keys and values of every position so far."""

    keys: dict[tuple[int, int], _Rows] = field(default_factory=lambda: defaultdict(_Rows))
    values: dict[tuple[int, int], _Rows] = field(default_factory=lambda: defaultdict(_Rows))
    length: int = 0


class FiniteDecoder:
    def __init__(self, cfg: ModelConfig, weights: dict[str, np.ndarray], fmt: FPFormat):
        if cfg.layernorm:
            raise UnsupportedInFinite("finite-precision execution of LayerNorm is not supported yet")
        if cfg.activation != "relu":
            raise UnsupportedInFinite(f"finite-precision execution of {cfg.activation} is not supported yet")
        self.cfg, self.fmt = cfg, fmt
        self.selection = None  # a neural.selected.Selection: set only where a proof licenses it
        self.w = {name: fmt.round(np.asarray(a, dtype=np.float64)) for name, a in weights.items()}

    def _linear(self, x, module: str):
        return self.fmt.linear(x, self.w[Keys.weight(module)], self.w.get(Keys.bias(module)))

    def forward(self, tokens, cache: FiniteCache | None = None, need_weights: bool = False):
        """tokens (T,) continuing ``cache`` (or from position 0) -> logits (T, V) [, attention weights per layer]."""
        fmt, cfg = self.fmt, self.cfg
        tokens = np.asarray(tokens, dtype=np.int64)
        start = 0 if cache is None else cache.length
        if start + len(tokens) > cfg.max_len:
            raise ValueError(f"sequence of {start + len(tokens)} tokens exceeds max_len {cfg.max_len}")
        x = fmt.add(self.w[Keys.TOK_EMB][tokens], self.w[Keys.POS_EMB][start:start + len(tokens)])
        all_weights = []
        selecting = self.selection is not None and cache is None and not need_weights
        for layer in range(cfg.n_layers):
            q, k, v = (self._linear(x, Keys.attn(layer, proj)) for proj in "qkv")
            keys = self.selection.keys(layer, x[None])[0] if selecting else None
            heads, layer_weights = [], []
            for h in range(cfg.n_heads):
                sl = slice(h * cfg.d_head, (h + 1) * cfg.d_head)
                kh, vh = k[:, sl], v[:, sl]
                if cache is not None:
                    kh, vh = cache.keys[layer, h].extend(kh), cache.values[layer, h].extend(vh)
                if keys is not None:
                    out, w = finite_selected(fmt, q[:, sl], kh, vh, keys[h], cfg.scale, self.selection.check, layer,
                                             h), None
                else:
                    out, w = fmt.attention(q[:, sl], kh, vh, cfg.scale, kh.shape[0] - q.shape[0], need_weights)
                heads.append(out)
                layer_weights.append(w)
            x = fmt.add(x, self._linear(np.concatenate(heads, axis=1), Keys.attn(layer, "o")))
            x = fmt.add(x, self._linear(fmt.relu(self._linear(x, Keys.ffn(layer, "fc1"))), Keys.ffn(layer, "fc2")))
            if need_weights:
                all_weights.append(np.stack(layer_weights))
        if cache is not None:
            cache.length += len(tokens)
        logits = self._linear(x, Keys.HEAD)
        return (logits, all_weights) if need_weights else logits
