"""What a construction is: the typed contract between ``neural.construction.construct``, which fills it, and
``formal``, which proves it. Torch-free and z3-free, so both sides import it.

A ``ConstructedModel`` is a set of named weight arrays (named by ``neural.config.Keys``; a CVP model's large tables
are programs until read, ``neural.construction.tables.Weights``), a ``Layout`` of named residual fields, and the plan
of every head and of the FFN: which field each reads and writes. The proofs check the weights against the plans,
never against the code that built them.
"""
from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from grammar.ir import Mode
from neural.config import Keys, ModelConfig
from neural.construction.fp import FPFormat
from neural.construction.tables import Weights


@dataclass(frozen=True)
class Layout:
    """Named residual coordinates, in order: field name -> (start, size)."""

    fields: tuple[tuple[str, int, int], ...]

    @classmethod
    def of(cls, sizes: list[tuple[str, int]]) -> "Layout":
        out, start = [], 0
        for name, size in sizes:
            out.append((name, start, size))
            start += size
        return cls(tuple(out))

    @property
    def width(self) -> int:
        return sum(size for _, _, size in self.fields)

    def cols(self, name: str) -> np.ndarray:
        for n, start, size in self.fields:
            if n == name:
                return np.arange(start, start + size)
        raise KeyError(name)

    def col(self, name: str) -> int:
        cols = self.cols(name)
        assert cols.size == 1, name
        return int(cols[0])

    def to_dict(self) -> dict:
        return {name: [start, size] for name, start, size in self.fields}


@dataclass(frozen=True)
class HeadPlan:
    """What one attention head is built to do; the proofs check the weights against it."""

    layer: int
    head: int
    query_field: str | None  # residual field holding the query code; None for an idle head
    key_field: str | None  # residual field holding the key code (sbin of position or id)
    value_field: str | None
    output_field: str | None


@dataclass(frozen=True)
class FFNPlan:
    """A minterm FFN: out = op(a, b) for the op the type field names. With ``gate_field``, only where that 0/1 flag
    is set (out = 0 elsewhere); each ``copies`` pair (flag, source) adds the 0/1 source to out where flag is set.
    The flags of one position are never set together (``embedding`` checks the position table)."""

    layer: int
    a_field: str
    b_field: str
    type_field: str
    type_ops: tuple[str, ...]  # op of each coordinate of the type field
    output_field: str
    gate_field: str | None = None
    copies: tuple[tuple[str, str], ...] = ()

    @property
    def roles(self) -> tuple[str | None, ...]:
        """The role cases a position can be in: each flag alone, or none set (None); just None without flags."""
        flags = ([self.gate_field] if self.gate_field else []) + [flag for flag, _ in self.copies]
        return (*flags, None) if flags else (None,)


@dataclass(frozen=True)
class ConstructedModel:
    mode: Mode
    config: ModelConfig
    weights: MutableMapping[str, np.ndarray] = field(compare=False)  # a dict, or Weights holding programs
    layout: Layout
    fmt: FPFormat
    key_scale: float
    code_bits: int
    heads: tuple[HeadPlan, ...]
    ffn: FFNPlan
    vocab: Sequence[str]  # a tuple, or CVP's cvp.Vocabulary (names on demand)
    max_gates: int | None = None  # CVP mode: the largest circuit the one model takes
    circuit_name: str | None = None  # Theorem 3.3 mode: the circuit compiled in, its inputs and gates
    n_inputs: int | None = None
    n_gates: int | None = None

    @property
    def cot_steps(self) -> int:
        """CoT tokens of the longest run: one per gate (Theorem 3.3), four per gate (CVP)."""
        return self.n_gates if self.mode == Mode.THM33 else 4 * self.max_gates

    def describe(self) -> dict:
        """The mode's own fields, as they appear in a compiled checkpoint's config.json."""
        if self.mode == Mode.CVP:
            return {"max_gates": self.max_gates}
        return {"circuit": self.circuit_name, "n_inputs": self.n_inputs, "n_gates": self.n_gates}

    def table(self, name: str):
        """A weight as a check that reads programs should see it: the ``TableProgram`` while the table is one (never
        turned into an array), else the array (``neural.construction.tables.Weights``)."""
        return self.weights.table(name) if isinstance(self.weights, Weights) else self.weights[name]

    def linear(self, module: str) -> tuple[np.ndarray, np.ndarray]:
        """(weight, bias) of a linear layer named by ``Keys``."""
        return self.weights[Keys.weight(module)], self.weights[Keys.bias(module)]

    def head_slice(self, plan: "HeadPlan", proj: str) -> tuple[np.ndarray, np.ndarray]:
        """The rows of q/k/v (``proj``) that belong to ``plan``'s head: (weight, bias)."""
        W, b = self.linear(Keys.attn(plan.layer, proj))
        sl = slice(plan.head * self.config.d_head, (plan.head + 1) * self.config.d_head)
        return W[sl], b[sl]
