"""Every prompt of a task at one size, in one canonical order, each with the task's reference CoT.

A space is a list of mixed-radix *segments* (one per size under ``--up-to``; one per prime for ``isq``): prompt i of
the space is a function of i alone (``decode``), so a range of indices is a shard, a uniform index is a uniform
prompt, and ``count`` is a closed form, not a tally. Within a segment the order is lexicographic in the prompt's
tokens (the first token is the most significant digit), so consecutive prompts share their longest prefixes, which
is what ``neural.prefix_forcing`` exploits.

- ``modadd`` (length L): every L-digit string, m^L prompts. ``s5`` (length L): every L-tuple of permutations, 120^L.
  Their prompts have exactly the model's length, so ``length`` must be it.
- ``isq`` (steps K): at size k (1..K) every (p, r) with p among the model's primes and 0 <= r < p, padded as the
  task pads, sum(p) prompts per k.
- ``cvp`` (gates N): at size n (1..N) every circuit of n gates (any type; each input NA or an earlier gate, 5 j^2
  choices for gate j: 5^n (n!)^2 circuits), padded in front to N gates as every CVP model reads it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from grammar.errors import ParameterError
from neural import cvp
from neural.learning.tasks import S5_TABLE, FoldTask


@dataclass(frozen=True)
class Segment:
    """The prompts of one ``size``: one digit per place, digit i in [0, radices[i]), the first most significant;
    ``key`` is what decoding needs besides (isq: the prime)."""

    size: int
    radices: tuple[int, ...]
    key: int = 0

    @property
    def count(self) -> int:
        return math.prod(self.radices)


ENUMERABLE = 2 ** 62  # spaces up to this many prompts have int64 indices; larger ones can only be sampled


class PromptSpace:
    """The prompts of ``task`` at the sizes asked for. ``decode(indices)`` (int64, for an enumeration),
    ``decode_one(i)`` (any Python int) and ``draw(rng, n)`` (uniform, any size of space) give token ids: prompts
    (B, n_prompt) and their reference CoTs (B, n_steps)."""

    def __init__(self, task: FoldTask, segments: list[Segment], sizes: tuple[int, ...]):
        self.task = task
        self.segments = tuple(segments)
        self.sizes = sizes
        self.starts = [0]
        for seg in segments:
            self.starts.append(self.starts[-1] + seg.count)  # Python ints: a space may exceed int64
        self.count = self.starts[-1]

    def describe(self) -> dict:
        return {"sizes": list(self.sizes), "count": self.count,
                "formula": FORMULAS[self.task.name], "segments": [[s.size, s.count] for s in self.segments]}

    def decode(self, indices) -> tuple[np.ndarray, np.ndarray]:
        """Prompts and reference CoTs of these indices (any order, repeats allowed; the space under ENUMERABLE)."""
        if self.count > ENUMERABLE:
            raise ParameterError(f"a space of {self.count:.3g} prompts is too large to index; draw from it instead")
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= self.count):
            raise IndexError(f"prompt indices must lie in [0, {self.count})")
        which = np.searchsorted(np.asarray(self.starts, dtype=np.int64), indices, side="right") - 1
        out = self._empty(indices.size)
        for s in np.unique(which):
            rows = which == s
            seg = self.segments[s]
            digits = _mixed_radix(indices[rows] - self.starts[s], seg.radices)
            out[0][rows], out[1][rows] = DECODERS[self.task.name](self.task, seg, digits)
        return out

    def decode_one(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The prompt (1, n_prompt) and reference (1, n_steps) of one index, however large."""
        s = max(i for i, start in enumerate(self.starts[:-1]) if start <= index)
        seg, rest, digits = self.segments[s], index - self.starts[s], []
        for radix in reversed(seg.radices):
            digits.append(rest % radix)
            rest //= radix
        return DECODERS[self.task.name](self.task, seg, np.array([digits[::-1]], dtype=np.int64))

    def draw(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """n prompts drawn uniformly with replacement (a segment with odds count/total, then every digit uniform):
        prompts, reference CoTs, and each draw's index (Python ints)."""
        weights = np.array([seg.count / self.count for seg in self.segments], dtype=np.float64)
        which = rng.choice(len(self.segments), size=n, p=weights / weights.sum())
        out, index = self._empty(n), [0] * n
        for s in np.unique(which):
            rows = np.flatnonzero(which == s)
            seg = self.segments[s]
            digits = np.stack([rng.integers(0, r, rows.size) for r in seg.radices], axis=1)
            out[0][rows], out[1][rows] = DECODERS[self.task.name](self.task, seg, digits)
            for row, ds in zip(rows, digits.tolist()):
                value = 0
                for d, r in zip(ds, seg.radices):
                    value = value * r + d
                index[row] = self.starts[s] + value
        return out[0], out[1], index

    def _empty(self, n: int):
        return (np.empty((n, self.task.n_prompt), dtype=np.int64), np.empty((n, self.task.n_steps), dtype=np.int64))

    def trie_nodes(self) -> int:
        """Distinct prompt prefixes in the space (each segment's trie; what shared-prefix forcing computes)."""
        total = 0
        for seg in self.segments:
            width = 1
            for radix in _token_radices(self.task, seg):
                width *= radix
                total += width
        return total


FORMULAS = {"modadd": "m^L", "s5": "120^L", "isq": "sum of p over the primes, per k", "cvp": "5^n (n!)^2 per n"}


def prompt_space(task: FoldTask, length: int | None = None, up_to: bool = False) -> PromptSpace:
    """The space of ``task``'s prompts at size ``length`` (default: the task's own), or at every size 1..length."""
    own = model_size(task)
    length = own if length is None else length
    if task.name in ("modadd", "s5"):
        if length != own:
            raise ParameterError(f"{task.name}: this model reads prompts of exactly {own} symbols, so --length must "
                                 f"be {own}, not {length}")
        sizes = (own,)
    else:
        if not 1 <= length <= own:
            unit = "gates" if task.name == "cvp" else "squarings"
            raise ParameterError(f"{task.name}: --length must be 1 to {own} ({unit}; this model's size), not {length}")
        sizes = tuple(range(1, length + 1)) if up_to else (length,)
    return PromptSpace(task, [seg for n in sizes for seg in _segments(task, n)], sizes)


def model_size(task: FoldTask) -> int:
    """The size a model was trained at: gates (cvp), else CoT steps (digits, permutations, squarings)."""
    return task.N if task.name == "cvp" else task.n_steps


def _segments(task: FoldTask, n: int) -> list[Segment]:
    if task.name == "isq":
        return [Segment(n, (p,), key=p) for p in task.primes]  # the one digit is r
    if task.name == "cvp":
        return [Segment(n, tuple(5 * j * j for j in range(1, n + 1)))]  # gate j: type, first input, second
    return [Segment(n, (task.m if task.name == "modadd" else 120,) * n)]


def _token_radices(task: FoldTask, seg: Segment) -> list[int]:
    """How many values each prompt token takes within the segment, given the tokens before it."""
    if task.name in ("modadd", "s5"):
        return list(seg.radices)  # one prompt token per digit
    if task.name == "isq":
        return [1, seg.key] + [1] * task.n_steps
    return [1] * 4 * (task.N - seg.size) + [r for j in range(1, seg.size + 1) for r in (5, j, j, 1)]


# ---- decoding one segment's indices -------------------------------------------------------------------------

def _mixed_radix(indices: np.ndarray, radices: tuple[int, ...]) -> np.ndarray:
    """(B, places) digits of int64 indices, the first place most significant."""
    digits = np.empty((indices.size, len(radices)), dtype=np.int64)
    rest = indices.copy()
    for place in range(len(radices) - 1, -1, -1):
        digits[:, place], rest = rest % radices[place], rest // radices[place]
    return digits


def _modadd(task, seg: Segment, digits: np.ndarray):
    return task._encoded(digits)


def _s5(task, seg: Segment, x: np.ndarray):
    s = np.empty_like(x)
    acc = np.zeros(len(x), dtype=np.int64)  # the identity is permutation 0
    for j in range(seg.size):
        acc = S5_TABLE[acc, x[:, j]]
        s[:, j] = acc
    return x + task.index["01234"], s + task.index["s01234"]


def _isq(task, seg: Segment, digits: np.ndarray):
    r = digits[:, 0]
    p, k, K = seg.key, seg.size, task.n_steps
    squares = np.arange(K) >= K - k  # padding first, as the task lays prompts out
    s = np.empty((len(r), K), dtype=np.int64)
    acc = r.copy()
    for j in range(K):
        acc = acc * acc % p if squares[j] else acc
        s[:, j] = acc
    xs = np.broadcast_to(np.where(squares, task.index["^2"], task.index["_"]), (len(r), K))
    prompt = np.concatenate([np.full((len(r), 1), task.index[f"p{p}"]), (r + task.index["s0"])[:, None], xs], axis=1)
    return prompt, s + task.index["s0"]


def _cvp(task, seg: Segment, gates: np.ndarray):
    """Gate j (1-based) is one digit in [0, 5 j^2): type, then first input, then second (0 = NA), so the order is
    the prompt tokens' order. Padded in front with FALSE gates to the model's N."""
    n, N, B = seg.size, task.N, len(gates)
    pad = N - n
    kinds = np.full((B, N), cvp.TYPES.index("FALSE"), dtype=np.int64)
    in1 = np.zeros((B, N), dtype=np.int64)
    in2 = np.zeros((B, N), dtype=np.int64)
    for j in range(1, n + 1):
        digit = gates[:, j - 1]
        a, b = (digit // j) % j, digit % j
        kinds[:, pad + j - 1] = digit // (j * j)
        in1[:, pad + j - 1] = np.where(a > 0, a + pad, 0)
        in2[:, pad + j - 1] = np.where(b > 0, b + pad, 0)
    vals = np.zeros((B, N + 1), dtype=np.int64)
    rows = np.arange(B)
    for g in range(1, N + 1):
        vals[:, g] = cvp.apply(kinds[:, g - 1], vals[rows, in1[:, g - 1]], vals[rows, in2[:, g - 1]])
    return cvp.gate_tokens(kinds, in1, in2, vals)


DECODERS = {"modadd": _modadd, "s5": _s5, "isq": _isq, "cvp": _cvp}
