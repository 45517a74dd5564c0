"""The constructions of Theorem 3.3, as named weight arrays plus a layout of named residual coordinates.

This module is the single source of truth for the weights: the torch module loads them, ``neural.fp`` runs them,
and ``formal`` proves them, always these exact arrays. It imports neither torch nor z3.

Shared mechanisms:
- ``sbin(j) = 2*bin_k(j) - 1`` codes positions and gate ids with +-1 entries.
- A *retrieval head* puts ``interleave(code, 1)`` in the query and ``c * interleave(sbin(j), -1)`` in the key, so the
  score is 0 on a match and -2c per mismatched bit pair. The default c = 64 keeps every partial sum exact (see
  ``default_key_scale``), so the same weights are exact in F(5,11), float16, bfloat16 and float32 in any order.
- A *minterm FFN* computes any gate from (a, b, type): one ReLU unit relu(+-a +- b + t_op + beta) per true row of
  the op's truth table, each exactly 0 or 1, so the sum is the gate value.
"""
from __future__ import annotations

import numpy as np

from grammar.codes import code_width, sbin
from grammar.ir import GATE_OPS, TRUTH_TABLES, NormCircuit
from neural.config import Keys, ModelConfig, weight_shapes
from neural.constructed import ConstructedModel, FFNPlan, HeadPlan, Layout
from neural.fp import FPFormat

CVP_TYPES = ("TRUE", "FALSE", "AND", "OR", "NOT")
CVP_TYPE_OP = {"TRUE": "CONST1", "FALSE": "CONST0", "AND": "AND", "OR": "OR", "NOT": "NOT"}
CVP_SPECIAL = ("NA", "SEP")


EXACT_KEY_SCALE = 64.0  # [exp(-128)] = 0 in float16, bfloat16 and float32, and 64 * 2k stays exact in all three


def default_key_scale(fmt: FPFormat, code_bits: int) -> float:
    """c = 64 where the format holds it exactly: [exp(-2c)] = 0, and every multiple of c up to 2kc (the score's
    partial sums over any subset of its 2k terms) is representable, so no score ever rounds and any summation order
    gives the same exact score. Else B/2, the paper's choice: [c + c] = B, exact only under F(e,s)'s saturation."""
    c = EXACT_KEY_SCALE
    span = 2 * code_bits
    if fmt.exp(np.array(-2 * c)) == 0 and span <= fmt.exact_integers and span * c <= fmt.max_value:
        return c
    return fmt.max_value / 2


def _storage(fmt: FPFormat, key_scale: float) -> type:
    """float32 when it holds every value of the format (and the key scale) exactly: half the memory of float64,
    and what torch loads without a copy. A 65,536-gate CVP model's tables are about 1 GiB in float64."""
    fits = fmt.ebits <= 8 and fmt.sbits <= 24 and float(np.float32(key_scale)) == key_scale
    return np.float32 if fits else np.float64


def _empty(cfg: ModelConfig, dtype=np.float64) -> dict[str, np.ndarray]:
    return {name: np.zeros(shape, dtype=dtype) for name, shape in weight_shapes(cfg).items()}


def _retrieval_head(w: dict, layout: Layout, plan: HeadPlan, d_head: int, k: int, c: float) -> None:
    W, B = {}, {}
    for proj in "qkvo":
        module = Keys.attn(plan.layer, proj)
        W[proj], B[proj] = w[Keys.weight(module)], w[Keys.bias(module)]
    base = plan.head * d_head
    if plan.query_field is None:
        return  # idle head: q = k = v = 0, and its output columns in attn.o stay zero
    q_cols, k_cols = layout.cols(plan.query_field), layout.cols(plan.key_field)
    for bit in range(k):
        W["q"][base + 2 * bit, q_cols[bit]] = 1.0
        B["q"][base + 2 * bit + 1] = 1.0
        W["k"][base + 2 * bit, k_cols[bit]] = c
        B["k"][base + 2 * bit + 1] = -c
    v_cols, o_cols = layout.cols(plan.value_field), layout.cols(plan.output_field)
    for i, (vc, oc) in enumerate(zip(v_cols, o_cols)):
        W["v"][base + i, vc] = 1.0
        W["o"][oc, base + i] = 1.0


def minterm_units(ops: tuple[str, ...]) -> list[tuple[int, int, int]]:
    """(type index, a bit, b bit) for every true row of every op's truth table: one ReLU unit each."""
    return [(t, u, v) for t, op in enumerate(ops) for u in (0, 1) for v in (0, 1) if TRUTH_TABLES[op][2 * u + v]]


def _minterm_ffn(w: dict, layout: Layout, plan: FFNPlan) -> None:
    fc1, fc2 = Keys.ffn(plan.layer, "fc1"), Keys.ffn(plan.layer, "fc2")
    W1, b1, W2 = w[Keys.weight(fc1)], w[Keys.bias(fc1)], w[Keys.weight(fc2)]
    a, b, out = layout.col(plan.a_field), layout.col(plan.b_field), layout.col(plan.output_field)
    types = layout.cols(plan.type_field)
    for unit, (t, u, v) in enumerate(minterm_units(plan.type_ops)):
        W1[unit, a] = 1.0 if u else -1.0
        W1[unit, b] = 1.0 if v else -1.0
        W1[unit, types[t]] = 1.0
        b1[unit] = (2 - u - v) - 2.0  # fires (=1) iff a == u, b == v and the type bit is set
        W2[out, unit] = 1.0


def _check_representable(model: ConstructedModel, rows: int = 1 << 14) -> None:
    """Every weight on the format's grid; large tables a block of rows at a time (rounding makes float64 copies)."""
    for name, arr in model.weights.items():
        for start in range(0, max(1, arr.shape[0]), rows):
            block = arr[start:start + rows]
            block = np.unique(block[block != 0])  # most entries are 0, which every format holds; few values recur
            ok = model.fmt.is_representable(block)
            if ok.all():
                continue
            bad = block[~ok][0]
            raise ValueError(f"weight {name} holds {float(bad)!r}, which F({model.fmt.ebits},{model.fmt.sbits}) cannot "
                             f"represent; choose another key_scale or format")


# ---- Theorem 3.3 mode ------------------------------------------------------------------------------------------

def build_thm33(nc: NormCircuit, fmt: FPFormat, key_scale: float | None = None) -> ConstructedModel:
    """One circuit compiled into a 1-layer, 2-head transformer over the bit vocabulary {0, 1}.

    Position i holds node i (inputs, then gate values as CoT); its embedding announces node i+1: its type
    (one-hot), sbin of its two inputs, and sbin(i). Width 3k + 14 with k = ceil(log2(n + T + 1)).
    """
    if nc.n_inputs == 0:
        raise ValueError("Theorem 3.3 mode needs at least one input to start the chain of thought from")
    n, T = nc.n_inputs, nc.n_gates
    length = n + T
    k = code_width(length + 1)
    c = default_key_scale(fmt, k) if key_scale is None else float(key_scale)
    layout = Layout.of([("tok", 1), ("type", len(GATE_OPS)), ("pred1", k), ("pred2", k), ("pos", k),
                        ("a", 1), ("b", 1), ("out", 1)])
    d_head = 2 * k
    units = minterm_units(GATE_OPS)
    cfg = ModelConfig(vocab_size=2, max_len=length, d_model=layout.width, n_layers=1, n_heads=2, d_head=d_head,
                      d_ff=len(units), activation="relu", layernorm=False, bias=True, attn_scale=1.0)
    w = _empty(cfg, _storage(fmt, c))
    w[Keys.TOK_EMB][1, layout.col("tok")] = 1.0
    pos = w[Keys.POS_EMB]
    pos[:, layout.cols("pos")] = sbin(np.arange(length), k)
    for t, g in enumerate(nc.gates):  # position n+t-1 announces gate t
        row = n + t - 1
        pos[row, layout.cols("type")[GATE_OPS.index(g.op)]] = 1.0
        pos[row, layout.cols("pred1")] = sbin(g.a, k)
        pos[row, layout.cols("pred2")] = sbin(g.b, k)
    heads = (HeadPlan(0, 0, "pred1", "pos", "tok", "a"), HeadPlan(0, 1, "pred2", "pos", "tok", "b"))
    for plan in heads:
        _retrieval_head(w, layout, plan, d_head, k, c)
    ffn = FFNPlan(0, "a", "b", "type", GATE_OPS, "out")
    _minterm_ffn(w, layout, ffn)
    head_w, head_b = w[Keys.weight(Keys.HEAD)], w[Keys.bias(Keys.HEAD)]
    head_w[1, layout.col("out")] = 1.0  # logit(1) = ans
    head_w[0, layout.col("out")] = -1.0  # logit(0) = 1 - ans
    head_b[0] = 1.0
    model = ConstructedModel("thm33", cfg, w, layout, fmt, c, k, heads, ffn, ("0", "1"), circuit_name=nc.name,
                             n_inputs=n, n_gates=T)
    _check_representable(model)
    return model


# ---- CVP mode ----------------------------------------------------------------------------------------------------

def cvp_vocab(max_gates: int) -> tuple[str, ...]:
    ids = tuple(str(j) for j in range(1, max_gates + 1))
    cot = tuple(f"g{j}={v}" for j in range(1, max_gates + 1) for v in (0, 1))
    return CVP_SPECIAL + CVP_TYPES + ids + cot


def cvp_id_token(j: int) -> int:
    return len(CVP_SPECIAL) + len(CVP_TYPES) + j - 1


def cvp_cot_token(j, v, max_gates: int):
    """The token ``g{j}={v}``; ``j`` and ``v`` may be arrays."""
    return len(CVP_SPECIAL) + len(CVP_TYPES) + max_gates + 2 * (j - 1) + v


def build_cvp(max_gates: int, fmt: FPFormat, key_scale: float | None = None) -> ConstructedModel:
    """One 2-layer transformer for every circuit of <= max_gates gates over {TRUE, FALSE, AND, OR, NOT}.

    Input: 4 tokens per gate ``type in1 in2 id`` (NA in unused slots), SEP, then CoT tokens ``g{j}={v}``. Each CoT
    token names its gate rather than carrying only its value, so its embedding can hold sbin(j+1) and the absolute
    positions of gate j+1's type/in1/in2 tokens: finding the next gate is a table lookup, with no counter carried
    across steps.
    Layer 1 (3 heads) fetches gate j+1's type and input ids by position; layer 2 (2 heads, 1 idle) fetches the
    input values by matching sbin(id) against the CoT tokens' own ids; its FFN computes the gate.
    """
    N = max_gates
    length = 5 * N + 1
    k = code_width(max(length, N + 2))
    c = default_key_scale(fmt, k) if key_scale is None else float(key_scale)
    layout = Layout.of([("type", len(CVP_TYPES)), ("in_code", k), ("self_code", k), ("value", 1), ("next_code", k),
                        ("addr_type", k), ("addr_in1", k), ("addr_in2", k), ("pos", k),
                        ("g_type", len(CVP_TYPES)), ("g_in1", k), ("g_in2", k), ("a", 1), ("b", 1), ("out", 1)])
    vocab = cvp_vocab(N)
    d_head = 2 * k
    ops = tuple(CVP_TYPE_OP[t] for t in CVP_TYPES)
    units = minterm_units(ops)
    cfg = ModelConfig(vocab_size=len(vocab), max_len=length, d_model=layout.width, n_layers=2, n_heads=3,
                      d_head=d_head, d_ff=len(units), activation="relu", layernorm=False, bias=True, attn_scale=1.0)
    w = _empty(cfg, _storage(fmt, c))
    tok = w[Keys.TOK_EMB]
    tok[:, layout.cols("self_code")] = sbin(0, k)  # every token that is not a CoT value carries id 0
    tok[0, layout.cols("in_code")] = sbin(0, k)  # NA fetches id 0: only non-CoT tokens match, and their value is 0
    sep = 1
    for i, t in enumerate(CVP_TYPES):
        tok[len(CVP_SPECIAL) + i, layout.cols("type")[i]] = 1.0
    ids = np.arange(1, N + 1)
    tok[cvp_id_token(1):cvp_id_token(N) + 1, layout.cols("in_code")] = sbin(ids, k)

    def announce(rows, next_gate):
        """Rows whose next step computes gate ``next_gate`` (1-based): its id and the positions of its tokens."""
        slot = 4 * (next_gate - 1)
        tok[np.ix_(rows, layout.cols("next_code"))] = sbin(next_gate, k)
        for name, offset in (("addr_type", 0), ("addr_in1", 1), ("addr_in2", 2)):
            tok[np.ix_(rows, layout.cols(name))] = sbin(slot + offset, k)

    announce(np.array([sep]), np.array([1]))
    # A prompt token has nothing to fetch: it fetches position 0, so that every layer-1 query names exactly one
    # position and nothing averages (an average is exact in no arithmetic, and in IEEE 0 * NaN would carry it on).
    prompt_rows = np.array([0, *range(len(CVP_SPECIAL), len(CVP_SPECIAL) + len(CVP_TYPES) + N)])  # NA, types, ids
    for name in ("addr_type", "addr_in1", "addr_in2"):
        tok[np.ix_(prompt_rows, layout.cols(name))] = sbin(0, k)
    for v in (0, 1):
        rows = cvp_cot_token(ids, v, N)
        tok[np.ix_(rows, layout.cols("self_code"))] = sbin(ids, k)
        tok[rows, layout.col("value")] = float(v)
        announce(rows, ids + 1)
    w[Keys.POS_EMB][:, layout.cols("pos")] = sbin(np.arange(length), k)

    heads = (HeadPlan(0, 0, "addr_type", "pos", "type", "g_type"),
             HeadPlan(0, 1, "addr_in1", "pos", "in_code", "g_in1"),
             HeadPlan(0, 2, "addr_in2", "pos", "in_code", "g_in2"),
             HeadPlan(1, 0, "g_in1", "self_code", "value", "a"),
             HeadPlan(1, 1, "g_in2", "self_code", "value", "b"),
             HeadPlan(1, 2, None, None, None, None))
    for plan in heads:
        _retrieval_head(w, layout, plan, d_head, k, c)
    ffn = FFNPlan(1, "a", "b", "g_type", ops, "out")
    _minterm_ffn(w, layout, ffn)
    # logit(g_j = v) = <sbin(j), next_code> + 2 * [v ? out : 1 - out]: k + 2 exactly for the right token, <= k else.
    head_w, head_b = w[Keys.weight(Keys.HEAD)], w[Keys.bias(Keys.HEAD)]
    out = layout.col("out")
    for v in (0, 1):
        rows = cvp_cot_token(ids, v, N)
        head_w[np.ix_(rows, layout.cols("next_code"))] = sbin(ids, k)
        head_w[rows, out] = 2.0 if v else -2.0
        head_b[rows] = 0.0 if v else 2.0
    model = ConstructedModel("cvp", cfg, w, layout, fmt, c, k, heads, ffn, vocab, max_gates=N)
    _check_representable(model)
    return model
