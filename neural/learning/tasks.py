"""The paper's four tasks: seeded samplers, token formats for each setting, and each CoT step as a circuit.

Every task is a *fold*: state_0 is a start value, state_i = step(state_{i-1}, x_i), and the answer is the last
state. The three settings share one sequence layout, ``prompt`` then ``=`` then the targets:

- ``cot``:  x_1 .. x_n  =  s_1 .. s_n      the model writes every state and reads it back; loss on s_1..s_n
- ``base``: x_1 .. x_n  =  s_n             loss on the answer only
- ``hint``: x_1 .. x_n  =  s_n             as base, plus s_i as a label on the *output at x_i's position*
                                          (intermediate supervision, never fed back)

Tasks: ``modadd`` (x_i in Z_7, sum mod 7), ``s5`` (x_i a permutation of 5 elements, prefix compositions),
``isq`` (the prompt is a prime p, r and k ``^2`` tokens; s_i = r^(2^i) mod p) and ``cvp`` (4 prompt and 4 CoT tokens per
gate, the construction's own format, ``neural.cvp``). States have tokens of their own (``s3``, ``s01234``), as the CVP
CoT tokens do: with shared tokens, the query at step i must pick x_{i+1} out of i look-alike state tokens by
position alone, and a 240 s S5 run left the last step, which has the most look-alikes, at chance. The CoT step of
each is a function of (state, x) token codes; ``step_circuit`` compiles it into a NormCircuit over their bits, so
the one trace checker of ``grammar.evaluate`` checks every task's traces (CVP's per-token check is ``neural.cvp``).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from grammar.errors import ParameterError
from grammar.ir import NormCircuit, NormGate

SETTINGS = ("base", "cot", "hint")
IGNORE = -100  # label value that contributes no loss
SPLITS = ("train", "valid", "test")
TEST_SEED = 1234  # the draw of test prompts every score is taken on (reproduce, ablations, mechanism reports)
HELDOUT_PER_MILLE = 100  # valid and test each take this share of the prompt space (per 1,000), by prompt hash


def prompt_hash(rows: np.ndarray) -> np.ndarray:
    """(B,) uint64: splitmix64 folded over each row's tokens. A fixed function of the tokens alone, the same on
    every machine, run and numpy version, so a prompt's split never depends on how or when it was drawn."""
    rows = np.asarray(rows, dtype=np.uint64).reshape(len(rows), -1)
    h = np.full(rows.shape[0], 0x9E3779B97F4A7C15, dtype=np.uint64)
    for col in rows.T:
        h = _splitmix(h ^ col)
    return h


def _splitmix(z: np.ndarray) -> np.ndarray:
    z = z + np.uint64(0x9E3779B97F4A7C15)  # uint64 arrays wrap around, which is what the mixer wants
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@dataclass(frozen=True)
class Batch:
    tokens: np.ndarray  # (B, L) int64: the model's input (the full sequence)
    labels: np.ndarray  # (B, L) int64: the target at each position's output, IGNORE where none
    prompt_len: int  # tokens before the first generated one
    answer: np.ndarray  # (B,) the final answer token
    cot: np.ndarray | None  # (B, n) the true states (cot setting), for per-position accuracy


_STEP_CIRCUITS: dict[tuple, NormCircuit] = {}  # (task name, parameters) -> the step circuit (FoldTask.step_circuit)


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

    # ---- the held-out split ------------------------------------------------------------------------------

    def split_of(self, prompts: np.ndarray) -> np.ndarray:
        """(B,) index into SPLITS of each prompt: a fixed hash split of the prompt space, so no test prompt is ever
        trained on. Tasks whose steps could go unseen override it (``ISq``)."""
        bucket = prompt_hash(prompts) % np.uint64(1000)
        return np.where(bucket < HELDOUT_PER_MILLE, 2, np.where(bucket < 2 * HELDOUT_PER_MILLE, 1, 0))

    def sample_split(self, rng: np.random.Generator, size: int, split: str = "train"):
        """``sample`` restricted to one split, by rejection: draws until ``size`` prompts of that split are in."""
        want = SPLITS.index(split)
        got_p, got_s, n = [], [], 0
        for _ in range(10_000):
            prompts, states = self.sample(rng, max(size, 16))
            if split == "train":
                prompts, states = self.augment(rng, prompts, states)
            keep = self.split_of(prompts) == want
            got_p.append(prompts[keep])
            got_s.append(states[keep])
            n += int(keep.sum())
            if n >= size:
                return np.concatenate(got_p)[:size], np.concatenate(got_s)[:size]
        raise ParameterError(f"{self.name}: the {split} split is too small to draw {size} prompts from")

    def augment(self, rng: np.random.Generator, prompts: np.ndarray, states: np.ndarray):
        """What only training prompts get (before the split filter, so they stay training prompts): nothing, unless
        a task's parameters ask (``ModAdd(mixed=True)``). Validation and test prompts are never augmented."""
        return prompts, states

    def answer_parts(self, answers: np.ndarray) -> np.ndarray | None:
        """(B, k) parts of each answer token (-1 where the token is not an answer), for a task whose answer has
        parts that can be right alone (S5: the image of each of 0..4); None where it has none."""
        return None

    def batch(self, rng: np.random.Generator, size: int, setting: str, split: str = "train") -> Batch:
        prompts, states = self.sample_split(rng, size, split)  # token ids (B, n_prompt), (B, n_steps)
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

    @property
    def step_circuit(self) -> NormCircuit:
        """The step as a circuit, built once per process for each task and parameters (S5's has 21,077 gates;
        every checkpoint loaded makes a new task)."""
        key = (self.name, tuple(sorted(self.params.items())))
        if key not in _STEP_CIRCUITS:
            _STEP_CIRCUITS[key] = lookup_circuit(f"{self.name}_step", self.code_bits, self.step_table())
        return _STEP_CIRCUITS[key]

    def initial_states(self, prompts: np.ndarray) -> np.ndarray:
        """(B,) the state token before step 1: a fixed start, unless the prompt supplies it."""
        return np.full(prompts.shape[0], self.index[self.start])

    def copy_steps(self, prompts: np.ndarray) -> np.ndarray:
        """(B, n) bool: steps that copy the previous state (padding, in tasks whose prompts vary in length)."""
        return np.zeros((prompts.shape[0], self.n_steps), dtype=bool)

    def expected_states(self, prompts: np.ndarray, states: np.ndarray) -> np.ndarray:
        """(B, n): the step applied to the *written* previous state, state i-1 of ``states``, by the step circuit."""
        from grammar.evaluate import evaluate_packed, pack_bits, unpack_bits

        prev = np.concatenate([self.initial_states(prompts)[:, None], states[:, :-1]], axis=1)
        xs = prompts[:, self.step_inputs]
        k = self.code_bits
        bits = np.concatenate([(prev[..., None] >> np.arange(k)) & 1, (xs[..., None] >> np.arange(k)) & 1], axis=-1)
        rows = bits.reshape(-1, 2 * k)
        # bit-parallel, 64 rows a word: S5's step circuit has tens of thousands of gates
        words = evaluate_packed(self.step_circuit, pack_bits(rows))[list(self.step_circuit.outputs)]
        out = unpack_bits(words, rows.shape[0]).astype(np.int64)
        stepped = (out * (1 << np.arange(k))).sum(axis=1).reshape(states.shape)
        return np.where(self.copy_steps(prompts), prev, stepped)

    def check_steps(self, prompts: np.ndarray, states: np.ndarray) -> np.ndarray:
        """(B, n) bool: state i equals step(state i-1 *as written*, x_i), evaluated by the step circuit."""
        return self.expected_states(prompts, states) == states

    def shallow_feature(self, prompts: np.ndarray) -> np.ndarray | None:
        """(B,) the one prompt token a shallow guess may use (CVP: the last gate's type); None where none."""
        return None

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

    Each output bit is a MUX tree over the input bits, variable 0 at the root, reduced and hash-consed as in a BDD:
    a sub-cube whose defined rows agree is a constant, a node whose two children are equal is dropped, and equal
    sub-functions are built once, so regular steps stay small."""
    n = 2 * k
    vectors = np.array([s | (x << k) for s, x in table], dtype=np.int64)  # each defined row's input vector
    values = np.array(list(table.values()), dtype=np.int64)
    nodes: list[tuple[int, int, int]] = []  # node id - 2 -> (variable, low child, high child); ids 0, 1: constants

    def diagram(bit: int) -> int:
        """The reduced tree of output ``bit``, built bottom-up over whole levels at once (numpy: S5's table has
        14,400 rows): the sub-cubes at depth d fix variables 0..d-1 and are indexed by those low bits."""
        has = np.zeros((2, 1 << n), dtype=bool)  # has[v, cube]: some defined row of the cube has value v
        has[(values >> bit) & 1, vectors] = True
        ids = has[1].astype(np.int64)  # a leaf: 1 if defined as 1, else 0 (an undefined row reads as 0)
        interned: dict[tuple[int, int, int], int] = {}
        for var in range(n - 1, -1, -1):
            half = 1 << var
            low, high = ids[:half], ids[half:]
            has = has[:, :half] | has[:, half:]
            mixed = has[0] & has[1]
            ids = np.where(mixed, low, has[1].astype(np.int64))  # an unmixed cube is its constant
            split = np.flatnonzero(mixed & (low != high))
            for cube in split:  # a mixed cube whose children differ: a node, once per distinct (var, low, high)
                key = (var, int(low[cube]), int(high[cube]))
                if key not in interned:
                    nodes.append(key)
                    interned[key] = len(nodes) + 1
                ids[cube] = interned[key]
        return int(ids[0])

    gates: list[NormGate] = []
    memo: dict = {}
    consts: dict[int, int] = {}
    nots: dict[int, int] = {}
    realised: dict[int, int] = {}

    def emit(op, a, b, label) -> int:
        gates.append(NormGate(op, a, b, f"{label}{len(gates)}", label))
        return n + len(gates) - 1

    def const(v: int) -> int:
        if v not in consts:
            consts[v] = emit("CONST1" if v else "CONST0", 0, 0, "c")
        return consts[v]

    def mux(var: int, lo: int, hi: int) -> int:
        key = (var, lo, hi)
        if key not in memo:
            if var not in nots:
                nots[var] = emit("NOT", var, var, "n")
            memo[key] = emit("OR", emit("AND", var, hi, "m"), emit("AND", nots[var], lo, "m"), "m")
        return memo[key]

    def realise(node: int) -> int:
        """Gates for a node, low child first, each gate emitted once."""
        if node < 2:
            return const(node)
        if node not in realised:
            var, lo, hi = nodes[node - 2]
            realised[node] = mux(var, realise(lo), realise(hi))
        return realised[node]

    outputs = tuple(realise(diagram(bit)) for bit in range(k))
    names = tuple(f"s{b}" for b in range(k)) + tuple(f"x{b}" for b in range(k))
    return NormCircuit(name, names, tuple(gates), outputs, tuple(f"y{b}" for b in range(k)))


# ---- the four tasks ----------------------------------------------------------------------------------------

class ModAdd(FoldTask):
    """Addition mod m, one digit per step. With ``mixed``, each training prompt keeps a random number (1 to n) of
    its digits and zeroes the rest, a suffix: 0 is the identity, so the answer is that of the shorter sum, and
    the model trains on every length up to n. (Fixed-length base gets no partial signal: the answer is independent
    of any n - 1 of the digits.) Test prompts are always full length."""

    def __init__(self, length: int = 16, modulus: int = 7, mixed: bool = False):
        if not isinstance(mixed, bool):
            raise ParameterError(f"modadd: mixed must be true or false, not {mixed!r}")
        self.name, self.params = "modadd", {"length": length, "modulus": modulus, **({"mixed": True} if mixed else {})}
        self.mixed = mixed
        self.n_prompt = self.n_steps = length
        self.m = modulus
        self.prompt_tokens = tuple(str(i) for i in range(modulus))
        self.state_tokens = tuple(f"s{i}" for i in range(modulus))
        self.start = "s0"

    def sample(self, rng, size):
        return self._encoded(rng.integers(0, self.m, (size, self.n_prompt)))

    def _encoded(self, digits: np.ndarray):
        """(prompt tokens, state tokens) of rows of digits: the states are the running sums mod m."""
        return digits + self.index["0"], np.cumsum(digits, axis=1) % self.m + self.index["s0"]

    def augment(self, rng, prompts, states):
        if not self.mixed:
            return prompts, states
        keep = rng.integers(1, self.n_prompt + 1, prompts.shape[0])
        return self._encoded(np.where(np.arange(self.n_prompt)[None, :] < keep[:, None], prompts - self.index["0"], 0))

    def step_table(self):
        ox, os_ = self.index["0"], self.index["s0"]
        return {(a + os_, b + ox): (a + b) % self.m + os_ for a in range(self.m) for b in range(self.m)}


S5_PERMS = tuple(itertools.permutations(range(5)))


def _compose(p, q):
    """(p then q): apply p first, then q."""
    return tuple(q[p[i]] for i in range(5))


def _s5_table() -> np.ndarray:
    """table[i, j] = the index of (S5_PERMS[i] then S5_PERMS[j]): the group's multiplication table, made once (a
    grid plans hundreds of S5 tasks)."""
    index = {p: i for i, p in enumerate(S5_PERMS)}
    table = np.array([[index[_compose(p, q)] for q in S5_PERMS] for p in S5_PERMS])
    table.setflags(write=False)
    return table


S5_TABLE = _s5_table()


class S5(FoldTask):
    def __init__(self, length: int = 16):
        self.name, self.params = "s5", {"length": length}
        self.n_prompt = self.n_steps = length
        self.prompt_tokens = tuple("".join(map(str, p)) for p in S5_PERMS)
        self.state_tokens = tuple("s" + t for t in self.prompt_tokens)
        self.start = "s01234"
        self.table = S5_TABLE

    def sample(self, rng, size):
        x = rng.integers(0, 120, (size, self.n_prompt))
        s = np.empty_like(x)
        acc = np.zeros(size, dtype=np.int64)  # identity is permutation 0
        for i in range(self.n_prompt):
            acc = self.table[acc, x[:, i]]
            s[:, i] = acc
        return x + self.index["01234"], s + self.index["s01234"]

    def answer_parts(self, answers):
        """The image of each of 0..4 under the answer permutation (chance 1/5 each, where the whole is 1/120)."""
        images = np.full((len(self.vocab), 5), -1)
        first = self.index["s01234"]
        images[first:first + 120] = np.array(S5_PERMS)
        return images[np.asarray(answers)]

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
    so it is written as a state token: every step, the first included, is then the one map (s, p) -> s^2 mod p.

    k varies per sample, 1..``steps``, as the paper's input length does. Every prompt has one layout: p, r, then
    ``steps - k`` padding tokens ``_`` and k ``^2`` tokens. A padding step copies the state, so the CoT is always
    ``steps`` tokens long and the answer always sits at the same position.

    The held-out split is by whole prompt (p, r, k), but never all of a pair's k: each (p, r) holds out exactly one
    k, chosen by hash (the same for p - r, whose prompts have the same answers). So every step (s, p) of a test
    prompt is the first step of the *training* prompt (p, s, k') for another k', and only the composite answer is
    unseen. With a fixed k, holding out (p, r) would leave CoT's first step unseen whenever r is a non-residue mod p
    (every later state is a square), and CoT would fail there for a reason that has nothing to do with depth."""

    def __init__(self, steps: int = 8, min_prime: int = 2, max_prime: int = 397):
        if steps < 2:
            raise ParameterError(f"isq: steps = {steps}; the held-out split needs at least 2 values of k")
        self.primes = primes_between(min_prime, max_prime)
        if not self.primes:
            raise ParameterError(f"isq: no prime between min_prime = {min_prime} and max_prime = {max_prime}")
        self.name, self.params = "isq", {"steps": steps, "min_prime": min_prime, "max_prime": max_prime}
        self.n_steps = steps
        self.n_prompt = steps + 2  # p, r, then padding and one '^2' per squaring
        self.prompt_tokens = tuple(f"p{p}" for p in self.primes) + ("^2", "_")
        self.state_tokens = tuple(f"s{i}" for i in range(self.primes[-1]))
        self.start = None

    def sample(self, rng, size):
        which = rng.integers(0, len(self.primes), size)
        p = np.array(self.primes)[which]
        r = rng.integers(0, p)
        k = rng.integers(1, self.n_steps + 1, size)
        squares = np.arange(self.n_steps) >= (self.n_steps - k)[:, None]  # (B, steps): padding first
        s = np.empty((size, self.n_steps), dtype=np.int64)
        acc = r.copy()
        for i in range(self.n_steps):
            acc = np.where(squares[:, i], acc * acc % p, acc)
            s[:, i] = acc
        xs = np.where(squares, self.index["^2"], self.index["_"])
        prompt = np.concatenate([(which + self.index[self.prompt_tokens[0]])[:, None],
                                 (r + self.index["s0"])[:, None], xs], axis=1)
        return prompt, s + self.index["s0"]

    def split_of(self, prompts):
        # r and p - r square to the same value, so (p, r, k) and (p, p - r, k) share their answer: they are held
        # out together, or a model could answer one by recalling the other
        p = np.array(self.primes)[prompts[:, 0] - self.index[self.prompt_tokens[0]]]
        r = prompts[:, 1] - self.index["s0"]
        pair = prompt_hash(np.stack([prompts[:, 0], np.minimum(r, (p - r) % p)], axis=1))
        k = (prompts[:, 2:] == self.index["^2"]).sum(axis=1)
        held = k == 1 + (pair % np.uint64(self.n_steps)).astype(np.int64)
        return np.where(held, np.where(_splitmix(pair) & np.uint64(1), 2, 1), 0)

    def copy_steps(self, prompts):
        return prompts[:, 2:] == self.index["_"]

    @property
    def step_inputs(self):
        return np.zeros(self.n_steps, dtype=np.int64)  # every squaring reads p

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
        """(state, p) -> state: the squaring step (a padding step copies the state instead)."""
        os_ = self.index["s0"]
        return {(a + os_, self.index[f"p{p}"]): a * a % p + os_ for p in self.primes for a in range(p)}


class CVPTask(FoldTask):
    """Random circuits of exactly ``gates`` gates in the one CVP format (``neural.cvp``): 4 prompt tokens and 4 CoT
    tokens per gate. The circuits follow the paper's distribution, with the last gate's value balanced given its
    type (``neural.cvp.sample_task``); ``last_gate="unconditioned"`` draws it like every other gate instead (the
    paper's distribution: its type alone then predicts the answer better than chance). Each CoT token is one step,
    checked per token (``neural.cvp.check_cot``)."""

    LAST_GATE = ("balanced", "unconditioned")

    def __init__(self, gates: int = 16, last_gate: str = "balanced"):
        from neural import cvp

        if last_gate not in self.LAST_GATE:
            raise ParameterError(f"cvp: last_gate must be one of {', '.join(self.LAST_GATE)}, not {last_gate!r}")
        self.name = "cvp"
        self.params = {"gates": gates, **({"last_gate": last_gate} if last_gate != "balanced" else {})}
        self.N = gates
        self.balanced = last_gate == "balanced"
        self.n_prompt = 4 * gates
        self.n_steps = 4 * gates
        self._vocab = cvp.vocab(gates)

    @cached_property
    def vocab(self):
        return self._vocab

    @property
    def eq(self) -> int:
        return self.index["SEP"]

    @property
    def hint_positions(self):
        return np.arange(4 * self.N)  # the output at gate g's prompt slot r is labelled with its CoT token r

    def sample(self, rng, size):
        from neural import cvp

        return cvp.sample_task(rng, size, self.N, balanced=self.balanced)

    def shallow_feature(self, prompts):
        return prompts[:, 4 * (self.N - 1)]  # the last gate's type token

    def expected_states(self, prompts, states):
        from neural import cvp

        return cvp.expected_cot(prompts, states, self.N)

    def read_positions(self, prompts):
        """What the construction reads for each CoT token (-1 where nothing: NA's value is read at position 0):
        the prompt's input slot before @a_g and @b_g; v(j) at C(j)+3 for v(a_g) and v(g); for v(g) also the type
        slot and the token before (v(a_g))."""
        from neural import cvp

        N, B = self.N, prompts.shape[0]
        c, r = cvp.parse_prompts(prompts, N), cvp.reads(N)
        none = np.full((B, N), -1)

        def at(*by_slot):  # the four CoT slots' reads, interleaved per gate: (B, 4N)
            return np.stack([np.broadcast_to(x, (B, N)) for x in by_slot], 2).reshape(B, 4 * N)

        def value_of(j):
            return np.where(j > 0, r.value_position(np.maximum(j, 1)), -1)

        return {"input_slot": at(r.in1_slot, none, r.in2_slot, none),
                "input_value": at(none, value_of(c.in1), none, value_of(c.in2)),
                "type": at(none, none, none, r.type_slot),
                "previous": at(none, none, none, r.previous)}

    def gate_kinds(self, prompts) -> np.ndarray:
        """(B, 4N): the type of the gate each CoT token belongs to."""
        from neural import cvp

        kinds = np.array(cvp.TYPES)[cvp.parse_prompts(prompts, self.N).kinds]
        return np.repeat(kinds, 4, axis=1)


TASK_CLASSES: dict[str, type[FoldTask]] = {"modadd": ModAdd, "s5": S5, "isq": ISq, "cvp": CVPTask}
# The task names and their parameters are the spec language's (grammar.spec.TASK_DEFAULTS); a test keeps the two
# tables over the same names.


def task_from_description(doc) -> FoldTask:
    """A task from its description ``{"kind": ..., **params}``, as a checkpoint's config.json or a vocabulary file
    names it; anything this version cannot build is a ParameterError saying why."""
    if not isinstance(doc, dict) or not isinstance(doc.get("kind"), str):
        raise ParameterError(f"a task is named as an object with a \"kind\", not {doc!r}")
    params = {k: v for k, v in doc.items() if k != "kind"}
    try:
        return make_task(doc["kind"], **params)
    except TypeError as err:  # a parameter the task does not take
        raise ParameterError(str(err)) from None


def make_task(kind: str, **params) -> FoldTask:
    if kind not in TASK_CLASSES:
        raise ParameterError(f"unknown task {kind!r}; expected one of {sorted(TASK_CLASSES)}")
    return TASK_CLASSES[kind](**params)
