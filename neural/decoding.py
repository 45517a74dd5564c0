"""Decoding, once for every model: a *session* feeds tokens and returns argmax predictions, keeping what it needs
of the past; ``greedy`` and ``teacher_forced`` are written once over any session. ``TorchSession`` runs a torch
``Decoder`` with its KV cache (a trained model, or a construction in an IEEE dtype); ``CallableSession`` runs any
function from a model's token ids to logits (a TransformerLens bridge, a Hugging Face model), with no cache; the
finite-precision session of the construction (``neural.construction.execute.FiniteSession``) follows the same
protocol. Both halves of ``neural`` and the audit decode through here.

A session has ``reset()``, ``next_tokens(tokens)`` (feed (B, T) tokens after those fed so far; the argmax after the
last), ``predictions(tokens, at)`` (one pass; the argmax after every position, or after those in ``at``) and
``rows_per_pass(length)`` (how many sequences one pass should hold).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from neural.config import ModelConfig
from neural.streamed import can_stream, streamed_predictions

ACTIVATIONS_PER_PASS = 1 << 22  # residual entries one torch pass may hold (rows x length x width)


class TorchSession:
    """A torch ``Decoder`` (built from arrays in an IEEE dtype, or a trained module) with its KV cache."""

    LOGITS_PER_PRODUCT = 1 << 18  # logits one product makes before they are reduced: they stay in cache (3x
    # faster than one product at a 196,615-token vocabulary), and small vocabularies still take one product

    def __init__(self, model, device=None):
        import torch

        from neural.model import KVCache

        self.torch = torch
        self.model = model
        self.device = device if device is not None else next(model.parameters()).device
        self.cache = KVCache()
        W = model.head.weight.detach()
        self.head_live = torch.nonzero((W != 0).any(0)).flatten()  # the columns the unembedding reads
        self.head_compact = W[:, self.head_live].contiguous() if self.head_live.numel() < W.shape[1] else None

    def _argmax(self, x):
        """``head(x).argmax(-1)``, reading only the columns the head uses: a zero weight adds an exact 0 to a finite
        sum, and a constructed head reads k + 1 of its ~9k columns over 3N + 7 rows. Where a feature is not finite,
        the plain product is taken, so an inf or NaN shows exactly as torch's argmax shows it."""
        head = self.model.head
        if self.head_compact is None or not bool(self.torch.isfinite(x).all()):
            return head(x).argmax(-1)
        flat = x[..., self.head_live].reshape(-1, self.head_live.numel())
        n = max(1, self.LOGITS_PER_PRODUCT // self.head_compact.shape[0])
        parts = [flat[i:i + n] @ self.head_compact.T for i in range(0, flat.shape[0], n)]
        best = [(p if head.bias is None else p + head.bias).argmax(-1) for p in parts]
        return (self.torch.cat(best) if best else flat.new_zeros(0, dtype=self.torch.long)).reshape(x.shape[:-1])

    def reset(self) -> None:
        from neural.model import KVCache

        self.cache = KVCache()

    @classmethod
    def from_arrays(cls, cfg: ModelConfig, weights: dict, dtype: str, device: str = "cpu") -> "TorchSession":
        import torch

        from neural.model import Decoder

        return cls(Decoder.from_arrays(cfg, weights, getattr(torch, dtype)).to(device), device)

    def next_tokens(self, tokens: np.ndarray) -> np.ndarray:
        """Feed (B, T) tokens after the cached ones; the argmax after the last, taken on the device."""
        with self.torch.inference_mode():
            t = self.torch.as_tensor(np.asarray(tokens, dtype=np.int64), device=self.device)
            x, _ = self.model.features(t, self.cache)
            return self._argmax(x[:, -1]).cpu().numpy()

    def rows_per_pass(self, length: int) -> int:
        return max(1, ACTIVATIONS_PER_PASS // max(1, length * self.model.cfg.d_model))

    def predictions(self, tokens, at=None) -> np.ndarray:
        """(B, T) tokens -> argmax predictions after the positions ``at`` (default all), one pass, the argmax taken
        on the device. (T,) tokens -> one row."""
        tokens = np.asarray(tokens, dtype=np.int64)
        if can_stream(self.model, tokens.shape[-1]):  # a long sequence whose attention a proof licenses
            at = np.arange(tokens.shape[-1]) if at is None else np.asarray(at)
            pred = np.stack([streamed_predictions(self.model, row, at, self._argmax) for row in np.atleast_2d(tokens)])
            return pred if tokens.ndim == 2 else pred[0]
        with self.torch.inference_mode():
            t = self.torch.as_tensor(np.atleast_2d(tokens), device=self.device)
            x, _ = self.model.features(t)
            if at is not None:
                x = x[:, self.torch.as_tensor(np.asarray(at), device=self.device)]
            pred = self._argmax(x).cpu().numpy()
        return pred if tokens.ndim == 2 else pred[0]


class CallableSession:
    """Any function from a model's ids (a CPU int64 tensor, B x T) to logits (B, T, V), a tensor or an array, read
    in a task's own tokens: ``ids[t]`` is task token t's id in the model, and the argmax is taken over those ids only.
    No cache: each step runs the function over the whole sequence so far. Runs under ``torch.inference_mode``."""

    def __init__(self, fn: Callable, ids: np.ndarray):
        self.fn, self.ids = fn, np.asarray(ids, dtype=np.int64)
        self.seen: np.ndarray | None = None

    def reset(self) -> None:
        self.seen = None

    def _logits(self, tokens: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return as_numpy(self.fn(torch.as_tensor(self.ids[tokens])))[..., self.ids]

    def next_tokens(self, tokens: np.ndarray) -> np.ndarray:
        tokens = np.asarray(tokens, dtype=np.int64)
        self.seen = tokens if self.seen is None else np.concatenate([self.seen, tokens], axis=1)
        return self._logits(self.seen)[:, -1].argmax(-1)

    def predictions(self, tokens, at=None) -> np.ndarray:
        tokens = np.asarray(tokens, dtype=np.int64)
        logits = self._logits(np.atleast_2d(tokens))
        pred = (logits if at is None else logits[:, np.asarray(at)]).argmax(-1)
        return pred if tokens.ndim == 2 else pred[0]

    def rows_per_pass(self, length: int) -> int:
        return 64


def greedy(sess, prompts, steps: int, progress=None) -> np.ndarray:
    """Feed the prompts, then ``steps`` times append the argmax token (ties go to the lowest token id). The
    session's cache is emptied first.

    ``prompts``: (T,) for one sequence, returning (steps,), or (B, T) for a batch, returning (B, steps)."""
    sess.reset()
    prompts = np.asarray(prompts, dtype=np.int64)
    batch = np.atleast_2d(prompts)
    out = np.empty((batch.shape[0], steps), dtype=np.int64)
    tok = sess.next_tokens(batch) if steps else None
    for i in range(steps):
        out[:, i] = tok
        if progress is not None:
            progress(i + 1)
        if i + 1 < steps:
            tok = sess.next_tokens(out[:, i:i + 1])
    return out if prompts.ndim == 2 else out[0]


def teacher_forced(sess, tokens, at=None) -> np.ndarray:
    """One pass over the whole sequence: the argmax prediction after every position (or after those in ``at``).
    A torch session also takes a (B, T) batch of equal-length sequences."""
    return sess.predictions(tokens, at)


def teacher_forced_rows(sess, sequences: np.ndarray, at) -> Iterator[np.ndarray]:
    """Teacher-forced predictions after ``at`` for (B, L) equal-length sequences, one row at a time and lazily
    (a caller that stops at the first wrong row computes no more), as many rows per pass as the session takes."""
    per_pass = sess.rows_per_pass(sequences.shape[1])
    if per_pass == 1:
        for row in sequences:
            yield teacher_forced(sess, row, at)
        return
    for i in range(0, len(sequences), per_pass):
        yield from teacher_forced(sess, sequences[i:i + per_pass], at)


def as_numpy(x) -> np.ndarray:
    """What a foreign model returns (a torch tensor on any device, in any dtype, or an array) as a float array."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)
