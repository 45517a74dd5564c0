"""The CVP format, in one place: vocabulary, prompt and CoT slots, parsing tokens back, gate semantics, per-token
soundness, lowering of netlists and the circuit generators. The construction, the ``cvp`` task, the trace checker,
``run``, ``audit`` and the bounded checks all use it, so there is one CVP format in the project.

A model for N gates reads a fixed layout (README, "The constructions", CVP mode):
- **prompt**, gate g in 1..N at positions 4(g-1)+{0,1,2,3}: ``type_g a_g b_g g`` (types TRUE, FALSE, AND, OR, NOT;
  ids written ``g1``..``gN``; NA in an unused input slot), then SEP at 4N: ``OR g1 g2 g3`` is gate 3 = OR(1, 2);
- **CoT**, 4 tokens per gate at C(g) = 4N+1+4(g-1)+{0,1,2,3}: ``@a_g v(a_g) @b_g v(g)``, where ``@j`` names gate j
  (NA for an unused slot) and ``0``/``1`` are values. The answer is v(N), the last token.

Every CoT token needs one attention hop, so one layer suffices: a_g and b_g are read from the prompt at positions
fixed by g; v(a_g) is read at C(a_g)+3, a position named by the token @a_g itself; v(g) combines the type (a fixed
position), v(a_g) (the previous token) and v(b_g) (named by the token @b_g). The CoT's ids are tokens of their own
(``@j``, not the prompt's ``gj``): a prompt's ``gj`` precedes the value it names, so if the two shared a token its
query would name a future position and match no key.

A circuit with fewer than N gates is padded *in front* with FALSE gates and renumbered, so each position's role is
a function of the position alone: the model may depend on N, as the paper's construction does.

Lowering: any normalised circuit becomes one over {TRUE, FALSE, AND, OR, NOT} with its input values baked in as
TRUE/FALSE gates: NAND = NOT(AND), NOR = NOT(OR), BUF(a) = AND(a, a), XOR(a, b) = OR(AND(a, NOT b), AND(NOT a, b)),
XNOR = NOT(XOR). ``node_gate`` remembers which gate holds each normalised node, so traces are reported in the
user's order.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from grammar.errors import ParameterError
from grammar.ir import TRUTH_TABLES, NormCircuit, build

TYPES = ("TRUE", "FALSE", "AND", "OR", "NOT")
TYPE_OP = {"TRUE": "CONST1", "FALSE": "CONST0", "AND": "AND", "OR": "OR", "NOT": "NOT"}
NA, SEP = 0, 1
COT_SLOTS = ("a", "value_a", "b", "value")  # the four CoT tokens of a gate


def vocab(n_gates: int) -> tuple[str, ...]:
    """NA, SEP, the five types, prompt ids g1..gN, the values 0 and 1, CoT ids @1..@N. The token functions below
    are this layout's offsets, named once."""
    return tuple(Vocabulary(n_gates))


class Vocabulary(Sequence):
    """``vocab(n_gates)`` as a sequence that names its tokens when asked: a model for 10^6 gates has 2N + 9 tokens,
    and a tuple of them takes longer to make than its proof. The layout is read from its runs (fixed names, or a
    prefix numbered 1..N), not from the token functions below, so a check that finds rows by name here tests them."""

    def __init__(self, n_gates: int):
        self.n_gates = n_gates
        self.runs = (("NA", "SEP") + TYPES, "g", ("0", "1"), "@")  # a tuple of names, or a prefix numbered 1..N

    def _spans(self):
        start = 0
        for run in self.runs:
            size = len(run) if isinstance(run, tuple) else self.n_gates
            yield run, start, size
            start += size

    def __len__(self) -> int:
        return sum(size for _, _, size in self._spans())

    def __getitem__(self, i):
        if isinstance(i, slice):
            return tuple(self[j] for j in range(*i.indices(len(self))))
        i = int(i)
        if i < 0:
            i += len(self)
        for run, start, size in self._spans():
            if start <= i < start + size:
                return run[i - start] if isinstance(run, tuple) else f"{run}{i - start + 1}"
        raise IndexError(i)

    def __iter__(self):
        for run, _, size in self._spans():
            yield from run if isinstance(run, tuple) else (f"{run}{j}" for j in range(1, size + 1))

    def rows(self, prefix: str, numbers) -> np.ndarray:
        """The rows of the names prefix<number> (numbers in 1..N): a ValueError where one is no token."""
        numbers = np.asarray(numbers, dtype=np.int64)
        for run, start, _ in self._spans():
            if run == prefix:
                if numbers.size and (numbers.min() < 1 or numbers.max() > self.n_gates):
                    raise ValueError(f"no token {prefix}{int(numbers.max())}")
                return start + numbers - 1
        raise ValueError(f"no tokens named {prefix}<j>")

    def index(self, name, start: int = 0, stop=None) -> int:
        row = self._row(name)
        if row is None or not start <= row < (len(self) if stop is None else stop):
            raise ValueError(f"{name!r} is not in the vocabulary")
        return row

    def _row(self, name) -> int | None:
        for run, first, size in self._spans():
            if isinstance(run, tuple):
                if name in run:
                    return first + run.index(name)
            elif isinstance(name, str) and name.startswith(run):
                digits = name[len(run):]
                if digits.isdigit() and str(int(digits)) == digits and 1 <= int(digits) <= size:
                    return first + int(digits) - 1
        return None

    def __contains__(self, name) -> bool:
        try:
            self.index(name)
            return True
        except ValueError:
            return False

    def __eq__(self, other) -> bool:
        """Equal to a vocabulary of as many gates; compared with a tuple, as a tuple compares with a list (unequal),
        so that equal objects hash alike without hashing 2N names: ``list(v) == list(t)`` compares the names."""
        return self.n_gates == other.n_gates if isinstance(other, Vocabulary) else NotImplemented

    def __hash__(self) -> int:
        return hash(("cvp.Vocabulary", self.n_gates))

    def __repr__(self) -> str:
        return f"cvp.Vocabulary({self.n_gates})"


TYPE_BASE = 2  # the first type token, after NA and SEP
ID_BASE = TYPE_BASE + len(TYPES) - 1  # prompt id g_j is ID_BASE + j, for j >= 1


def value_base(n_gates: int) -> int:
    """The token of the value 0 (1 follows it): after the N prompt ids."""
    return ID_BASE + n_gates + 1


def ref_base(n_gates: int) -> int:
    """CoT id @j is ref_base + j, for j >= 1: after the two values."""
    return value_base(n_gates) + 1


def _offset(base: int, x):
    return base + (np.asarray(x) if not isinstance(x, int) else x)


def type_token(kind):
    """The token of a type (a name, or an index into TYPES; arrays allowed)."""
    return _offset(TYPE_BASE, TYPES.index(kind) if isinstance(kind, str) else kind)


def id_token(j):
    """The prompt token of gate id j >= 1 (arrays allowed)."""
    return _offset(ID_BASE, j)


def value_token(v, n_gates: int):
    return _offset(value_base(n_gates), v)


def ref_token(j, n_gates: int):
    """The CoT token naming gate j: ``@j``, or NA for j = 0 (arrays allowed)."""
    j = np.asarray(j)
    out = np.where(j > 0, ref_base(n_gates) + j, NA)
    return int(out) if out.ndim == 0 else out


def sequence_length(n_gates: int) -> int:
    """Positions a model for N gates reads: the prompt, SEP and every CoT token but the last."""
    return 8 * n_gates


def cot_position(g, slot: int, n_gates: int):
    """The absolute position of CoT token ``slot`` (0..3) of gate g (1-based)."""
    return 4 * n_gates + 1 + 4 * (np.asarray(g) - 1) + slot


@dataclass(frozen=True)
class Reads:
    """The CVP construction's read schedule for gates 1..N: at the position *before* each CoT token of gate g, what
    its heads fetch. Written once, here, and read by the construction's position tables (``construct.build_cvp``),
    its mechanism manifest (``bridge.manifest``), a learned model's read positions (``tasks.CVPTask``) and the
    attention roles (``mechanism.role_masks``). Each field is an array over g."""

    n_gates: int
    gates: np.ndarray  # 1..N
    type_slot: np.ndarray  # prompt position of g's type token
    in1_slot: np.ndarray  # ... of its first input's id
    in2_slot: np.ndarray  # ... of its second input's id
    before_a: np.ndarray  # predicts @a_g (the SEP, or v(g-1)): the id head reads in1_slot
    at_a: np.ndarray  # holds @a_g, predicts v(a_g): the value head reads value_position(a_g), found by the token
    before_b: np.ndarray  # predicts @b_g: the id head reads in2_slot
    before_v: np.ndarray  # predicts v(g): the type head reads type_slot, the prev head ``previous``
    previous: np.ndarray  # v(a_g)'s position, the token before before_v

    def value_position(self, j):
        """Where the CoT holds v(j), which a later gate naming j reads (arrays allowed)."""
        return cot_position(j, 3, self.n_gates)


def reads(n_gates: int) -> Reads:
    g = np.arange(1, n_gates + 1)
    slot = 4 * (g - 1)
    before_v = cot_position(g, 2, n_gates)
    return Reads(n_gates, g, slot, slot + 1, slot + 2, cot_position(g, 0, n_gates) - 1, cot_position(g, 0, n_gates),
                 cot_position(g, 1, n_gates), before_v, before_v - 1)


# ---- circuits -------------------------------------------------------------------------------------------------

_TABLE = np.array([TRUTH_TABLES[TYPE_OP[t]] for t in TYPES], dtype=np.int64)  # each type's row of TRUTH_TABLES


def apply(kind, x, y):
    """The gate's value; ``kind`` a name or an index into TYPES, x and y bits (arrays broadcast)."""
    k = TYPES.index(kind) if isinstance(kind, str) else np.asarray(kind)
    out = _TABLE[k, 2 * np.asarray(x, dtype=np.int64) + np.asarray(y, dtype=np.int64)]
    return int(out) if np.ndim(out) == 0 else out


@dataclass(frozen=True)
class CVPCircuit:
    """Gates 1..m over TYPES; an input reference 0 means NA (an unused slot)."""

    kinds: tuple[str, ...]
    in1: tuple[int, ...]
    in2: tuple[int, ...]
    node_gate: tuple[int, ...] = ()  # normalised node -> gate id (lowered circuits only)

    @property
    def size(self) -> int:
        return len(self.kinds)

    def evaluate(self) -> np.ndarray:
        """Values of gates 1..m (index 0 is gate 1)."""
        vals = [0]
        for kind, a, b in zip(self.kinds, self.in1, self.in2):
            vals.append(apply(kind, vals[a], vals[b]))
        return np.array(vals[1:], dtype=np.uint8)

    def padded(self, n_gates: int) -> "CVPCircuit":
        """The same circuit as N gates: N - m FALSE gates in front, every reference shifted past them."""
        pad = n_gates - self.size
        if pad < 0:
            raise ParameterError(f"the circuit has {self.size} gates but the model takes at most {n_gates}")
        shift = lambda refs: tuple(r + pad if r else 0 for r in refs)  # noqa: E731
        return CVPCircuit(("FALSE",) * pad + self.kinds, (0,) * pad + shift(self.in1), (0,) * pad + shift(self.in2),
                          tuple(g + pad for g in self.node_gate))

    def prompt(self) -> np.ndarray:
        """``type a b id`` per gate, then SEP (the circuit's own size: pad it first to fit a model)."""
        N = self.size
        kinds = np.array([TYPES.index(k) for k in self.kinds])
        ref = lambda r: np.where(np.asarray(r) > 0, id_token(np.maximum(np.asarray(r), 1)), NA)  # noqa: E731
        toks = np.stack([type_token(kinds), ref(self.in1), ref(self.in2), id_token(np.arange(1, N + 1))], axis=1)
        return np.concatenate([toks.reshape(-1), [SEP]]).astype(np.int64)

    def cot(self) -> np.ndarray:
        """The correct CoT: ``@a v(a) @b v(g)`` per gate."""
        N = self.size
        vals = np.concatenate([[0], self.evaluate()]).astype(np.int64)
        a, b = np.array(self.in1), np.array(self.in2)
        toks = np.stack([ref_token(a, N), value_token(vals[a], N), ref_token(b, N), value_token(vals[1:], N)], axis=1)
        return toks.reshape(-1).astype(np.int64)


# ---- parsing tokens back, and soundness per token ----------------------------------------------------------------

@dataclass(frozen=True)
class Parsed:
    """Prompts (B, 4N) read back: type indices, and input references (0 for NA), each (B, N)."""

    kinds: np.ndarray
    in1: np.ndarray
    in2: np.ndarray


def parse_prompts(prompts: np.ndarray, n_gates: int) -> Parsed:
    p = np.asarray(prompts, dtype=np.int64).reshape(len(prompts), n_gates, 4)
    ref = lambda t: np.where(t == NA, 0, t - ID_BASE)  # noqa: E731
    return Parsed(p[..., 0] - TYPE_BASE, ref(p[..., 1]), ref(p[..., 2]))


def cot_values(cot: np.ndarray, n_gates: int) -> np.ndarray:
    """(B, N) the values the trace gives its gates (the ``v(g)`` tokens), -1 where that token is no value."""
    v = np.asarray(cot, dtype=np.int64).reshape(len(cot), n_gates, 4)[..., 3] - value_token(0, n_gates)
    return np.where((v == 0) | (v == 1), v, -1)


def expected_cot(prompts: np.ndarray, cot: np.ndarray, n_gates: int) -> np.ndarray:
    """(B, 4N): what a sound step writes at each CoT token, given the trace's *own* earlier tokens:
    - ``@a_g`` and ``@b_g`` are the description's inputs;
    - ``v(a_g)`` is the trace's own value of a_g (its ``v(a_g)`` token; 0 for NA);
    - ``v(g)`` is gate g applied to the trace's own values of a_g and b_g.
    -1 where no token is right (an input whose value the trace wrote as something other than a value)."""
    N = n_gates
    c = parse_prompts(prompts, N)
    B = len(prompts)
    vals = np.concatenate([np.zeros((B, 1), dtype=np.int64), cot_values(cot, N)], axis=1)  # vals[:, 0]: NA's 0
    rows = np.arange(B)[:, None]
    x, y = vals[rows, c.in1], vals[rows, c.in2]
    known = (x >= 0) & (y >= 0)
    v = np.where(known, apply(c.kinds, np.maximum(x, 0), np.maximum(y, 0)), -1)
    value_a = np.where(x >= 0, value_token(np.maximum(x, 0), N), -1)
    out = np.stack([ref_token(c.in1, N), value_a, ref_token(c.in2, N), np.where(v >= 0, value_token(np.maximum(v, 0),
                                                                                                   N), -1)], axis=2)
    return out.reshape(B, 4 * N)


def check_cot(prompts: np.ndarray, cot: np.ndarray, n_gates: int) -> np.ndarray:
    """(B, 4N) bool: each CoT token sound (``expected_cot``)."""
    return expected_cot(prompts, cot, n_gates) == np.asarray(cot)


# ---- lowering --------------------------------------------------------------------------------------------------

def lower(nc: NormCircuit, bits) -> CVPCircuit:
    kinds: list[str] = []
    in1: list[int] = []
    in2: list[int] = []

    def gate(kind: str, a: int = 0, b: int = 0) -> int:
        kinds.append(kind)
        in1.append(a)
        in2.append(b)
        return len(kinds)

    node = [gate("TRUE" if int(v) else "FALSE") for v in np.asarray(bits).reshape(-1)]
    for g in nc.gates:
        a, b = node[g.a], node[g.b]
        out = build(g.op, a, b, AND=lambda x, y: gate("AND", x, y), OR=lambda x, y: gate("OR", x, y),
                    NOT=lambda x: gate("NOT", x), const=lambda v: gate("TRUE" if v else "FALSE"))
        if out in (a, b):  # a BUF: every normalised node gets a CVP gate of its own, so each gate is a CoT step
            out = gate("AND", out, out)
        node.append(out)
    return CVPCircuit(tuple(kinds), tuple(in1), tuple(in2), tuple(node))


# ---- generators ------------------------------------------------------------------------------------------------

def random_circuit(rng: np.random.Generator, n_gates: int, p_const: float = 0.2, p_not: float = 0.2) -> CVPCircuit:
    """The paper's CVP distribution: gates 1 and 2 are constants; later gates are constants with p_const, NOT with
    p_not, AND or OR otherwise, with inputs drawn uniformly from earlier gates (NA in unused slots)."""
    kinds, in1, in2 = [], [], []
    for j in range(1, n_gates + 1):
        u = rng.random()
        if j <= 2 or u < p_const:
            kinds.append("TRUE" if rng.random() < 0.5 else "FALSE")
            in1.append(0)
            in2.append(0)
        elif u < p_const + p_not:
            kinds.append("NOT")
            in1.append(int(rng.integers(1, j)))
            in2.append(0)
        else:
            kinds.append("AND" if rng.random() < 0.5 else "OR")
            in1.append(int(rng.integers(1, j)))
            in2.append(int(rng.integers(1, j)))
    return CVPCircuit(tuple(kinds), tuple(in1), tuple(in2))


def all_circuits(max_gates: int):
    """Every circuit of 1..max_gates gates: any type, each input NA or any earlier gate (5 * j^2 choices for gate j)."""
    def extend(prefix):
        j = len(prefix[0]) + 1
        for kind in TYPES:
            for a in range(j):
                for b in range(j):
                    yield (prefix[0] + (kind,), prefix[1] + (a,), prefix[2] + (b,))

    level = [((), (), ())]
    for _ in range(max_gates):
        level = list(c for p in level for c in extend(p))
        yield from (CVPCircuit(*c) for c in level)


def sample_task(rng: np.random.Generator, size: int, n_gates: int, p_const: float = 0.2,
                p_not: float = 0.2, balanced: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(prompts without SEP (B, 4N), CoTs (B, 4N)) for the ``cvp`` task, vectorised over the batch.

    Gates 1..N-1 follow ``random_circuit``'s distribution. The last gate, whose value is the answer, is AND, OR or
    NOT with equal odds, and its inputs are drawn among the earlier gates so that its value is a fair coin *given
    its type*: a guess from the last gate's type alone (the shallow baseline) scores 0.5, not the 0.71 of the
    unconditioned distribution, so accuracy above chance has to come from evaluating the circuit. With
    ``balanced=False`` the last gate is drawn like every other (the paper's distribution, constants included)."""
    N = n_gates
    if N < 3:
        raise ParameterError("cvp: a task circuit needs at least 3 gates")
    if not balanced:
        return _sample_unconditioned(rng, size, N, p_const, p_not)
    B = size
    T = {t: TYPES.index(t) for t in TYPES}
    kinds, in1, in2, vals = _draw_gates(rng, B, N, N - 1, p_const, p_not)
    rows = np.arange(B)
    last = rng.choice([T["AND"], T["OR"], T["NOT"]], B)
    target = rng.integers(0, 2, B)
    x, y = vals[:, 1:N, None], vals[:, None, 1:N]  # (B, N-1, N-1) over input pairs (a, b)
    fits = apply(last[:, None, None], x, y) == target[:, None, None]
    # a uniformly random fitting pair (NOT ignores b); a circuit whose gates are all equal may fit none: redrawn
    pick = (rng.random(fits.shape) * fits).reshape(B, -1).argmax(axis=1)
    ok = fits.reshape(B, -1)[rows, pick]
    kinds[:, N - 1], in1[:, N - 1] = last, pick // (N - 1) + 1
    in2[:, N - 1] = np.where(last == T["NOT"], 0, pick % (N - 1) + 1)
    vals[:, N] = target
    prompts, cot = gate_tokens(kinds, in1, in2, vals)
    if not ok.all():
        again = np.flatnonzero(~ok)
        prompts[again], cot[again] = sample_task(rng, again.size, N, p_const, p_not)
    return prompts, cot


def _draw_gates(rng: np.random.Generator, B: int, N: int, drawn: int, p_const: float, p_not: float):
    """Gates 1..``drawn`` of B circuits of N gates from ``random_circuit``'s distribution (the first two are
    constants): kinds, first and second inputs (0 for NA) and values, the rest left for the caller to fill."""
    T = {t: TYPES.index(t) for t in TYPES}
    kinds = np.empty((B, N), dtype=np.int64)
    in1 = np.zeros((B, N), dtype=np.int64)
    in2 = np.zeros((B, N), dtype=np.int64)
    vals = np.zeros((B, N + 1), dtype=np.int64)  # vals[:, 0] is NA's 0
    rows = np.arange(B)
    for j in range(1, drawn + 1):
        u, coin = rng.random(B), rng.random(B) < 0.5
        const = (u < p_const) | (j <= 2)
        is_not = ~const & (u < p_const + p_not)
        a = rng.integers(1, max(j, 2), B)
        b = rng.integers(1, max(j, 2), B)
        kinds[:, j - 1] = np.where(const, np.where(coin, T["TRUE"], T["FALSE"]),
                                   np.where(is_not, T["NOT"], np.where(coin, T["AND"], T["OR"])))
        in1[:, j - 1] = np.where(const, 0, a)
        in2[:, j - 1] = np.where(const | is_not, 0, b)
        vals[:, j] = apply(kinds[:, j - 1], vals[rows, in1[:, j - 1]], vals[rows, in2[:, j - 1]])
    return kinds, in1, in2, vals


def _sample_unconditioned(rng: np.random.Generator, B: int, N: int, p_const: float, p_not: float):
    kinds, in1, in2, vals = _draw_gates(rng, B, N, N, p_const, p_not)
    return gate_tokens(kinds, in1, in2, vals)


def gate_tokens(kinds, in1, in2, vals) -> tuple[np.ndarray, np.ndarray]:
    """(prompts, CoTs) as token ids from the gates' kinds, inputs and values."""
    B, N = kinds.shape
    rows = np.arange(B)
    ref = lambda r: np.where(r > 0, id_token(np.maximum(r, 1)), NA)  # noqa: E731
    ids = np.broadcast_to(id_token(np.arange(1, N + 1)), (B, N))
    prompts = np.stack([type_token(kinds), ref(in1), ref(in2), ids], axis=2).reshape(B, 4 * N)
    cot = np.stack([ref_token(in1, N), value_token(vals[rows[:, None], in1], N), ref_token(in2, N),
                    value_token(vals[:, 1:], N)], axis=2).reshape(B, 4 * N)
    return prompts.astype(np.int64), cot.astype(np.int64)
