"""The paper's four tasks: seeded samplers, token formats for each setting, and each CoT step as a circuit.

Every task is a *fold*: state_0 is a start value, state_i = step(state_{i-1}, x_i), and the answer is the last
state. The three settings share one sequence layout, ``prompt`` then ``=`` then the targets:

- ``cot``:  x_1 .. x_n  =  s_1 .. s_n      the model writes every state and reads it back; loss on s_1..s_n
- ``base``: x_1 .. x_n  =  s_n             loss on the answer only
- ``hint``: x_1 .. x_n  =  s_n             as base, plus s_i as a label on the *output at x_i's position*
                                          (intermediate supervision, never fed back)

Tasks: ``modadd`` (x_i in Z_7, sum mod 7), ``s5`` (x_i a permutation of 5 elements, prefix compositions),
``isq`` (the prompt is a prime p, r and k ``^2`` tokens; s_i = r^(2^i) mod p) and ``cvp`` (4 tokens per gate, one CoT
token per gate value, the construction's own format). States have tokens of their own (``s3``, ``s01234``), as the CVP
CoT tokens do: with shared tokens, the query at step i must pick x_{i+1} out of i look-alike state tokens by
position alone, and a 240 s S5 run left the last step, which has the most look-alikes, at chance. The CoT step of
each is a function of (state, x) token codes; ``step_circuit`` compiles it into a NormCircuit over their bits, so the one trace checker of
``grammar.evaluate`` checks every task's traces.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from grammar.ir import NormCircuit, NormGate

SETTINGS = ("base", "cot", "hint")
IGNORE = -100  # label value that contributes no loss


@dataclass(frozen=True)
class Batch:
    tokens: np.ndarray  # (B, L) int64: the model's input (the full sequence)
    labels: np.ndarray  # (B, L) int64: the target at each position's output, IGNORE where none
    prompt_len: int  # tokens before the first generated one
    answer: np.ndarray  # (B,) the final answer token
    cot: np.ndarray | None  # (B, n) the true states (cot setting), for per-position accuracy


class FoldTask:
    """A task whose CoT is a left fold of ``step`` over the prompt symbols."""

    name: str
    params: dict

    # Subclasses set name, params, n_prompt, n_steps, prompt_tokens, state_tokens and start (the state token before
    # step 1), and define sample(rng, size) -> (prompts, states) as token ids and step_table(); a task whose prompt
    # supplies the first state overrides initial_states().
    @cached_property
    def vocab(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(("=",) + tuple(self.prompt_tokens) + tuple(self.state_tokens)))

    @cached_property
    def index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.vocab)}

    @property
    def eq(self) -> int:
        return self.index["="]

    def seq_len(self, setting: str) -> int:
        return self.n_prompt + 1 + (self.n_steps if setting == "cot" else 1) - 1  # the last target is not input

    def batch(self, rng: np.random.Generator, size: int, setting: str) -> Batch:
        prompts, states = self.sample(rng, size)  # token ids (B, n_prompt), (B, n_steps)
        B = size
        eq = np.full((B, 1), self.eq, dtype=np.int64)
        if setting == "cot":
            full = np.concatenate([prompts, eq, states], axis=1)
            labels = np.full_like(full, IGNORE)
            labels[:, self.n_prompt:self.n_prompt + self.n_steps] = states
        else:
            full = np.concatenate([prompts, eq, states[:, -1:]], axis=1)
            labels = np.full_like(full, IGNORE)
            labels[:, self.n_prompt] = states[:, -1]
            if setting == "hint":
                labels[:, self.hint_positions] = states
        return Batch(full[:, :-1], labels[:, :-1], self.n_prompt + 1, states[:, -1], states)

    @property
    def hint_positions(self) -> np.ndarray:
        """Prompt positions whose output is labelled with s_1..s_n in the hint setting."""
        return np.arange(self.n_steps)

    # ---- the CoT step as a circuit over token-code bits ---------------------------------------------------

    @cached_property
    def code_bits(self) -> int:
        return max(1, int(np.ceil(np.log2(len(self.vocab)))))

    def step_table(self) -> dict[tuple[int, int], int]:
        """(state token, input token) -> next state token, over every pair that can occur."""
        raise NotImplementedError

    @cached_property
    def step_circuit(self) -> NormCircuit:
        return lookup_circuit(f"{self.name}_step", self.code_bits, self.step_table())

    def initial_states(self, prompts: np.ndarray) -> np.ndarray:
        """(B,) the state token before step 1: a fixed start, unless the prompt supplies it."""
        return np.full(prompts.shape[0], self.index[self.start])

    def check_steps(self, prompts: np.ndarray, states: np.ndarray) -> np.ndarray:
        """(B, n) bool: state i equals step(state i-1 *as written*, x_i), evaluated by the step circuit."""
        from grammar.evaluate import evaluate

        prev = np.concatenate([self.initial_states(prompts)[:, None], states[:, :-1]], axis=1)
        xs = prompts[:, self.step_inputs]
        k = self.code_bits
        bits = np.concatenate([(prev[..., None] >> np.arange(k)) & 1, (xs[..., None] >> np.arange(k)) & 1], axis=-1)
        values = evaluate(self.step_circuit, bits.reshape(-1, 2 * k).astype(np.uint8))
        out = values[:, list(self.step_circuit.outputs)]
        got = (out * (1 << np.arange(k))).sum(axis=1).reshape(states.shape)
        return got == states

    @property
    def step_inputs(self) -> np.ndarray:
        """The prompt position that step i reads."""
        return np.arange(self.n_steps)

    def read_positions(self, prompts: np.ndarray) -> dict[str, np.ndarray]:
        """What a construction reads when it writes state i+1 (at query position n_prompt + i): name -> (B, n)
        key positions, -1 where nothing is read. A fold reads its input symbol and the state it just wrote."""
        B, q = prompts.shape[0], self.n_prompt + np.arange(self.n_steps)
        return {"input": np.broadcast_to(self.step_inputs, (B, self.n_steps)).copy(),
                "state": np.broadcast_to(q, (B, self.n_steps)).copy()}


def lookup_circuit(name: str, k: int, table: dict[tuple[int, int], int]) -> NormCircuit:
    """A circuit over (state bits, input bits), 2k inputs, k outputs, computing ``table`` (don't-care elsewhere).

    Each output bit is a MUX tree over the input bits, reduced and hash-consed as in a BDD: a node whose two
    children are equal is dropped and equal sub-functions are built once, so regular steps stay small."""
    n = 2 * k
    gates: list[NormGate] = []
    memo: dict = {}
    consts: dict[int, int] = {}

    def emit(op, a, b, label) -> int:
        gates.append(NormGate(op, a, b, f"{label}{len(gates)}", label))
        return n + len(gates) - 1

    def const(v: int) -> int:
        if v not in consts:
            consts[v] = emit("CONST1" if v else "CONST0", 0, 0, "c")
        return consts[v]

    nots: dict[int, int] = {}

    def mux(var: int, lo: int, hi: int) -> int:
        key = (var, lo, hi)
        if key not in memo:
            if var not in nots:
                nots[var] = emit("NOT", var, var, "n")
            memo[key] = emit("OR", emit("AND", var, hi, "m"), emit("AND", nots[var], lo, "m"), "m")
        return memo[key]

    inputs = [(s, x) for s, x in table]

    def build(bit: int, rows: list[tuple[int, int]], var: int):
        """rows: (input vector as int) for which the table is defined and reached this node."""
        values = {table[r] >> bit & 1 for r in rows}
        if len(values) <= 1:
            return ("c", values.pop() if values else 0)
        vec = lambda r: r[0] | (r[1] << k)  # noqa: E731
        lo = [r for r in rows if not (vec(r) >> var) & 1]
        hi = [r for r in rows if (vec(r) >> var) & 1]
        a, b = build(bit, lo, var + 1), build(bit, hi, var + 1)
        if a == b:
            return a
        return ("m", var, a, b)

    def realise(node) -> int:
        if node[0] == "c":
            return const(node[1])
        return mux(node[1], realise(node[2]), realise(node[3]))

    outputs = tuple(realise(build(bit, inputs, 0)) for bit in range(k))
    names = tuple(f"s{b}" for b in range(k)) + tuple(f"x{b}" for b in range(k))
    return NormCircuit(name, names, tuple(gates), outputs, tuple(f"y{b}" for b in range(k)))


# ---- the four tasks ----------------------------------------------------------------------------------------

class ModAdd(FoldTask):
    def __init__(self, length: int = 16, modulus: int = 7):
        self.name, self.params = "modadd", {"length": length, "modulus": modulus}
        self.n_prompt = self.n_steps = length
        self.m = modulus
        self.prompt_tokens = tuple(str(i) for i in range(modulus))
        self.state_tokens = tuple(f"s{i}" for i in range(modulus))
        self.start = "s0"

    def sample(self, rng, size):
        x = rng.integers(0, self.m, (size, self.n_prompt))
        s = np.cumsum(x, axis=1) % self.m
        return x + self.index["0"], s + self.index["s0"]

    def step_table(self):
        ox, os_ = self.index["0"], self.index["s0"]
        return {(a + os_, b + ox): (a + b) % self.m + os_ for a in range(self.m) for b in range(self.m)}


S5_PERMS = tuple(itertools.permutations(range(5)))


def _compose(p, q):
    """(p then q): apply p first, then q."""
    return tuple(q[p[i]] for i in range(5))


class S5(FoldTask):
    def __init__(self, length: int = 16):
        self.name, self.params = "s5", {"length": length}
        self.n_prompt = self.n_steps = length
        self.prompt_tokens = tuple("".join(map(str, p)) for p in S5_PERMS)
        self.state_tokens = tuple("s" + t for t in self.prompt_tokens)
        self.start = "s01234"
        table = np.array([[S5_PERMS.index(_compose(p, q)) for q in S5_PERMS] for p in S5_PERMS])
        self.table = table

    def sample(self, rng, size):
        x = rng.integers(0, 120, (size, self.n_prompt))
        s = np.empty_like(x)
        acc = np.zeros(size, dtype=np.int64)  # identity is permutation 0
        for i in range(self.n_prompt):
            acc = self.table[acc, x[:, i]]
            s[:, i] = acc
        return x + self.index["01234"], s + self.index["s01234"]

    def step_table(self):
        ox, os_ = self.index["01234"], self.index["s01234"]
        return {(a + os_, b + ox): int(self.table[a, b]) + os_ for a in range(120) for b in range(120)}


def primes_between(lo: int, hi: int) -> tuple[int, ...]:
    return tuple(p for p in range(max(lo, 2), hi + 1) if all(p % d for d in range(2, int(p ** 0.5) + 1)))


class ISq(FoldTask):
    """Iterated squaring as the paper poses it: the prompt is a prime p, a number r < p and k ``^2`` tokens, and
    the answer is r^(2^k) mod p. p is drawn uniformly from the primes in [min_prime, max_prime] (equal bounds fix
    it). With p in the prompt, a model without CoT must compute, or memorise every (p, r) pair; with one fixed p,
    base could memorise a p-entry table and the task would say nothing about seriality. r is state 0 of the fold,
    so it is written as a state token: every step, the first included, is then the one map (s, p) -> s^2 mod p."""

    def __init__(self, steps: int = 8, min_prime: int = 2, max_prime: int = 397):
        self.primes = primes_between(min_prime, max_prime)
        if not self.primes:
            raise ValueError(f"isq: no prime between min_prime = {min_prime} and max_prime = {max_prime}")
        self.name, self.params = "isq", {"steps": steps, "min_prime": min_prime, "max_prime": max_prime}
        self.n_steps = steps
        self.n_prompt = steps + 2  # p, r, then one '^2' per squaring
        self.prompt_tokens = tuple(f"p{p}" for p in self.primes) + ("^2",)
        self.state_tokens = tuple(f"s{i}" for i in range(self.primes[-1]))
        self.start = None

    def sample(self, rng, size):
        which = rng.integers(0, len(self.primes), size)
        p = np.array(self.primes)[which]
        r = rng.integers(0, p)
        s = np.empty((size, self.n_steps), dtype=np.int64)
        acc = r.copy()
        for i in range(self.n_steps):
            acc = acc * acc % p
            s[:, i] = acc
        prompt = np.concatenate([(which + self.index[self.prompt_tokens[0]])[:, None], (r + self.index["s0"])[:, None],
                                 np.full((size, self.n_steps), self.index["^2"])], axis=1)
        return prompt, s + self.index["s0"]

    @property
    def step_inputs(self):
        return np.zeros(self.n_steps, dtype=np.int64)  # every step reads p

    def initial_states(self, prompts):
        return prompts[:, 1]  # r

    @property
    def hint_positions(self):
        return np.arange(2, self.n_steps + 2)  # the output at the i-th '^2' is labelled r^(2^i)

    def read_positions(self, prompts):
        """Squaring reads p and the previous state: r (position 1) for the first step, then its own position."""
        reads = super().read_positions(prompts)
        reads["state"][:, 0] = 1
        return reads

    def step_table(self):
        """(state, p) -> state."""
        os_ = self.index["s0"]
        return {(a + os_, self.index[f"p{p}"]): a * a % p + os_ for p in self.primes for a in range(p)}


class CVPTask(FoldTask):
    """Random circuits of exactly ``gates`` gates (the paper's distribution) in the construction's token format."""

    def __init__(self, gates: int = 16):
        from neural.construct import cvp_vocab

        self.name, self.params = "cvp", {"gates": gates}
        self.N = gates
        self.n_prompt = 4 * gates
        self.n_steps = gates
        self._vocab = cvp_vocab(gates)

    @cached_property
    def vocab(self):
        return self._vocab

    @property
    def eq(self) -> int:
        return self.index["SEP"]

    @property
    def hint_positions(self):
        return 4 * np.arange(self.N) + 3  # the output at gate j's id token is labelled with gate j's value

    def sample(self, rng, size):
        from neural.encode import cvp_cot_tokens, cvp_prompt, random_cvp_circuit

        prompts, states = [], []
        for _ in range(size):
            c = random_cvp_circuit(rng, self.N)
            prompts.append(cvp_prompt(c)[:-1])  # without SEP: batch() adds it
            states.append(cvp_cot_tokens(c.evaluate(), self.N))
        return np.array(prompts), np.array(states)

    def read_positions(self, prompts):
        """The CVP construction: layer 1 reads gate i+1's type and input-id tokens, layer 2 the CoT tokens of its
        inputs (gate g's value sits at position n_prompt + g; -1 for an NA input)."""
        j = np.arange(self.N)
        B = prompts.shape[0]
        ref = np.vectorize(lambda t: 0 if self.vocab[t] == "NA" else int(self.vocab[t]))
        in1, in2 = ref(prompts[:, 4 * j + 1]), ref(prompts[:, 4 * j + 2])
        return {"type": np.broadcast_to(4 * j, (B, self.N)).copy(),
                "in1_id": np.broadcast_to(4 * j + 1, (B, self.N)).copy(),
                "in2_id": np.broadcast_to(4 * j + 2, (B, self.N)).copy(),
                "in1_value": np.where(in1 > 0, self.n_prompt + in1, -1),
                "in2_value": np.where(in2 > 0, self.n_prompt + in2, -1)}

    def gate_kinds(self, prompts) -> np.ndarray:
        return np.vectorize(lambda t: self.vocab[t])(prompts[:, 4 * np.arange(self.N)])

    def check_steps(self, prompts, states):
        from neural.encode import CVPCircuit, cvp_decode

        kinds_by_token = {self.index[t]: t for t in ("TRUE", "FALSE", "AND", "OR", "NOT")}
        out = np.zeros(states.shape, dtype=bool)
        for b in range(states.shape[0]):
            p = prompts[b]
            ref = lambda t: 0 if self.vocab[t] == "NA" else int(self.vocab[t])  # noqa: E731
            c = CVPCircuit(tuple(kinds_by_token[p[4 * j]] for j in range(self.N)),
                           tuple(ref(p[4 * j + 1]) for j in range(self.N)), tuple(ref(p[4 * j + 2]) for j in range(self.N)))
            ids, vals = cvp_decode(states[b], self.N)
            out[b] = c.check(vals) & (ids == np.arange(1, self.N + 1))
        return out


TASK_CLASSES: dict[str, type[FoldTask]] = {"modadd": ModAdd, "s5": S5, "isq": ISq, "cvp": CVPTask}
# The task names and their parameters are the spec language's (grammar.spec.TASK_DEFAULTS); a test keeps the two
# tables over the same names.


def make_task(kind: str, **params) -> FoldTask:
    if kind not in TASK_CLASSES:
        raise ValueError(f"unknown task {kind!r}; expected one of {sorted(TASK_CLASSES)}")
    return TASK_CLASSES[kind](**params)
