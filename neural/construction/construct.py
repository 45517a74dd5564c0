"""The constructions of Theorem 3.3, as named weight arrays plus a layout of named residual coordinates.

This module is the single source of truth for the weights: the torch module loads them,
``neural.construction.fp`` runs them, and ``formal`` proves them, always these exact arrays. It imports neither
torch nor z3.

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
from grammar.errors import ParameterError
from grammar.ir import GATE_OPS, TRUTH_TABLES, Mode, NormCircuit
from neural.config import Keys, ModelConfig, weight_shapes
from neural.construction.constructed import ConstructedModel, FFNPlan, HeadPlan, Layout
from neural.construction.fp import FPFormat
from neural.construction.tables import Fill, Rows, TableProgram, Weights, affine_code

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


def _empty(cfg: ModelConfig, dtype=np.float64, programs: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Zeros for every weight but the tables named in ``programs``, which are written as programs instead
    (``neural.construction.tables``)."""
    return {name: np.zeros(shape, dtype=dtype) for name, shape in weight_shapes(cfg).items() if name not in programs}


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
    """With ``plan.gate_field`` every minterm also needs that flag (one more input, one more -1 in the bias), and
    each ``copies`` pair (flag, source) adds a unit relu(source + flag - 1): the 0/1 source where the flag is set,
    else 0."""
    fc1, fc2 = Keys.ffn(plan.layer, "fc1"), Keys.ffn(plan.layer, "fc2")
    W1, b1, W2 = w[Keys.weight(fc1)], w[Keys.bias(fc1)], w[Keys.weight(fc2)]
    a, b, out = layout.col(plan.a_field), layout.col(plan.b_field), layout.col(plan.output_field)
    types = layout.cols(plan.type_field)
    units = minterm_units(plan.type_ops)
    for unit, (t, u, v) in enumerate(units):
        W1[unit, a] = 1.0 if u else -1.0
        W1[unit, b] = 1.0 if v else -1.0
        W1[unit, types[t]] = 1.0
        b1[unit] = (2 - u - v) - 2.0  # fires (=1) iff a == u, b == v and the type bit is set
        if plan.gate_field is not None:
            W1[unit, layout.col(plan.gate_field)] = 1.0
            b1[unit] -= 1.0
        W2[out, unit] = 1.0
    for unit, (flag, source) in enumerate(plan.copies, start=len(units)):
        W1[unit, layout.col(source)] = 1.0
        W1[unit, layout.col(flag)] = 1.0
        b1[unit] = -1.0
        W2[out, unit] = 1.0


def _check_representable(model: ConstructedModel, rows: int = 1 << 14) -> None:
    """Every weight on the format's grid; large tables a block of rows at a time (rounding makes float64 copies)."""
    for name in model.weights:
        arr = model.table(name)
        if isinstance(arr, TableProgram):
            arr = arr.distinct_values()
        for start in range(0, max(1, arr.shape[0]), rows):
            block = arr[start:start + rows]
            block = np.unique(block[block != 0])  # most entries are 0, which every format holds; few values recur
            ok = model.fmt.is_representable(block)
            if ok.all():
                continue
            bad = block[~ok][0]
            raise ParameterError(f"weight {name} holds {float(bad)!r}, which F({model.fmt.ebits},{model.fmt.sbits}) "
                                 f"cannot represent; choose another key_scale or format")


# ---- sizes, known before anything is built ----------------------------------------------------------------------

def _thm33_layout(k: int) -> Layout:
    return Layout.of([("tok", 1), ("type", len(GATE_OPS)), ("pred1", k), ("pred2", k), ("pos", k),
                      ("a", 1), ("b", 1), ("out", 1)])


def _cvp_layout(k: int) -> Layout:
    from neural import cvp

    T = len(cvp.TYPES)
    return Layout.of([("type", T), ("in_code", k), ("idq", k), ("value", 1),
                      ("pos", k), ("q_type", k), ("q_in", k), ("q_prev", k),
                      ("g_type", T), ("g_in", k), ("a", 1), ("b", 1),
                      ("role_id", 1), ("role_va", 1), ("role_vg", 1), ("out", 1)])


def construction_width(mode: Mode, length: int) -> int:
    """The residual width of the construction for ``length`` positions, from the builders' own layouts."""
    k = code_width(length + 1)
    return (_thm33_layout(k) if mode == Mode.THM33 else _cvp_layout(k)).width


def construction_bytes(mode: Mode, length: int, vocab_size: int, fmt: FPFormat,
                       key_scale: float | None = None, as_arrays: bool = True) -> float:
    """Peak memory of one construction for ``length`` positions, priced before it is built: its position, token and
    unembedding tables in the storage the format allows (``_storage``), and one copy of them while they are filled
    and checked (a 10^6-gate Theorem 3.3 model: 344 MB of float32 table, 0.5 GB added to the process). A CVP
    model's three tables are programs (``neural.construction.tables``), a few hundred bytes, until a command loads
    or writes them as arrays: ``as_arrays=False`` prices a model only proved."""
    k = code_width(length + 1)
    c = default_key_scale(fmt, k) if key_scale is None else float(key_scale)
    itemsize = np.dtype(_storage(fmt, c)).itemsize
    listed_rows = length + 2 * vocab_size if as_arrays or mode == Mode.THM33 else 0
    return 2.0 * itemsize * listed_rows * construction_width(mode, length)


# ---- Theorem 3.3 mode ------------------------------------------------------------------------------------------

def build_thm33(nc: NormCircuit, fmt: FPFormat, key_scale: float | None = None) -> ConstructedModel:
    """One circuit compiled into a 1-layer, 2-head transformer over the bit vocabulary {0, 1}.

    Position i holds node i (inputs, then gate values as CoT); its embedding announces node i+1: its type
    (one-hot), sbin of its two inputs, and sbin(i). Width 3k + 14 with k = ceil(log2(n + T + 1)).
    """
    if nc.n_inputs == 0:
        raise ParameterError("Theorem 3.3 mode needs at least one input to start the chain of thought from")
    n, T = nc.n_inputs, nc.n_gates
    length = n + T
    k = code_width(length + 1)
    c = default_key_scale(fmt, k) if key_scale is None else float(key_scale)
    layout = _thm33_layout(k)
    d_head = 2 * k
    units = minterm_units(GATE_OPS)
    cfg = ModelConfig(vocab_size=2, max_len=length, d_model=layout.width, n_layers=1, n_heads=2, d_head=d_head,
                      d_ff=len(units), activation="relu", layernorm=False, bias=True, attn_scale=1.0)
    w = _empty(cfg, _storage(fmt, c))
    w[Keys.TOK_EMB][1, layout.col("tok")] = 1.0
    pos = w[Keys.POS_EMB]
    pos[:, layout.cols("pos")] = sbin(np.arange(length), k)
    rows = n - 1 + np.arange(T)  # position n+t-1 announces gate t
    pos[rows, layout.cols("type")[[GATE_OPS.index(g.op) for g in nc.gates]]] = 1.0
    pos[rows[:, None], layout.cols("pred1")] = sbin([g.a for g in nc.gates], k)
    pos[rows[:, None], layout.cols("pred2")] = sbin([g.b for g in nc.gates], k)
    heads = (HeadPlan(0, 0, "pred1", "pos", "tok", "a"), HeadPlan(0, 1, "pred2", "pos", "tok", "b"))
    for plan in heads:
        _retrieval_head(w, layout, plan, d_head, k, c)
    ffn = FFNPlan(0, "a", "b", "type", GATE_OPS, "out")
    _minterm_ffn(w, layout, ffn)
    head_w, head_b = w[Keys.weight(Keys.HEAD)], w[Keys.bias(Keys.HEAD)]
    head_w[1, layout.col("out")] = 1.0  # logit(1) = ans
    head_w[0, layout.col("out")] = -1.0  # logit(0) = 1 - ans
    head_b[0] = 1.0
    model = ConstructedModel(Mode.THM33, cfg, w, layout, fmt, c, k, heads, ffn, ("0", "1"), circuit_name=nc.name,
                             n_inputs=n, n_gates=T)
    _check_representable(model)
    return model


# ---- CVP mode ----------------------------------------------------------------------------------------------------

def build_cvp(max_gates: int, fmt: FPFormat, key_scale: float | None = None) -> ConstructedModel:
    """One 1-layer, 4-head transformer for every circuit of <= max_gates gates over {TRUE, FALSE, AND, OR, NOT},
    in the format of ``neural.cvp``: prompt ``type a b id`` per gate, CoT ``@a v(a) @b v(g)`` per gate.

    The position embedding announces each position's role and its fixed queries; the token embedding gives a CoT id
    ``@j`` the query sbin(C(j)+3), where v(j) sits. The four heads, each one hop:
    - type:   at v(g)'s query position, gate g's type token (position 4(g-1));
    - id:     before @a_g and @b_g, the prompt's a_g / b_g slot (positions 4(g-1)+1, +2);
    - prev:   at v(g)'s query position, the token before it, v(a_g);
    - value:  at any ``@j``, the value v(j) at C(j)+3 (NA's query names position 0, which holds value 0).
    Every other query names position 0, so no row matches nothing (an average is exact in no arithmetic).
    The FFN, gated by the role flags, writes out = gate(type, v(a_g), v(b_g)) where v(g) is next, out = v(a_g)
    where v(a_g) is next, and 0 elsewhere. The unembedding is role-gated too: margin M = k on the role flags makes
    an id win where an id is next (logit k + M for the right one, at most k - 2 + M for another) and a value win
    where a value is next (2 + M against at most k).
    """
    from neural import cvp

    N = max_gates
    if N < 1:
        raise ParameterError("CVP mode needs max_gates >= 1")
    length = cvp.sequence_length(N)
    k = code_width(length + 1)  # positions 0..8N-1, and @N's query 8N
    c = default_key_scale(fmt, k) if key_scale is None else float(key_scale)
    T = len(cvp.TYPES)
    layout = _cvp_layout(k)
    vocab = cvp.Vocabulary(N)  # names on demand: 2N + 9 of them
    ops = tuple(cvp.TYPE_OP[t] for t in cvp.TYPES)
    units = minterm_units(ops)
    cfg = ModelConfig(vocab_size=len(vocab), max_len=length, d_model=layout.width, n_layers=1, n_heads=4,
                      d_head=2 * k, d_ff=len(units) + 1, activation="relu", layernorm=False, bias=True,
                      attn_scale=1.0)
    storage = _storage(fmt, c)
    tables = (Keys.POS_EMB, Keys.TOK_EMB, Keys.weight(Keys.HEAD))  # written as programs: they grow with N
    w = _empty(cfg, storage, programs=tables)
    shapes = weight_shapes(cfg)
    ids = np.arange(1, N + 1)
    words = Rows(0, 1, len(vocab))
    r = cvp.reads(N)
    token_table = TableProgram(shapes[Keys.TOK_EMB], np.dtype(storage).str, (
        *(Fill.of(layout.cols("type"), [cvp.type_token(i)], np.eye(T)[i]) for i in range(T)),
        Fill.of(layout.cols("in_code"), words, sbin(0, k)),  # NA, and every token that is no prompt id: id 0
        Fill.of(layout.cols("in_code"), cvp.id_token(ids), affine_code(ids)),
        Fill.of(layout.cols("idq"), words, sbin(0, k)),  # fetch position 0 (value 0): NA, and tokens naming none
        Fill.of(layout.cols("idq"), cvp.ref_token(ids, N), affine_code(r.value_position(ids))),
        Fill.of(layout.cols("value"), [cvp.value_token(1, N)], 1.0)))

    every = Rows(0, 1, length)
    fills = [Fill.of(layout.cols("pos"), every, affine_code([0, 1]))]  # sbin(t) on row t
    fills += [Fill.of(layout.cols(field), every, sbin(0, k)) for field in ("q_type", "q_in", "q_prev")]
    for field, rows, codes in (("q_in", r.before_a, r.in1_slot), ("q_in", r.before_b, r.in2_slot),
                               ("q_type", r.before_v, r.type_slot), ("q_prev", r.before_v, r.previous)):
        fills.append(Fill.of(layout.cols(field), rows, affine_code(codes)))
    for field, rows in (("role_id", r.before_a), ("role_id", r.before_b), ("role_va", r.at_a),
                        ("role_vg", r.before_v)):
        fills.append(Fill.of(layout.cols(field), rows, 1.0))
    position_table = TableProgram(shapes[Keys.POS_EMB], np.dtype(storage).str, tuple(fills))

    heads = (HeadPlan(0, 0, "q_type", "pos", "type", "g_type"),
             HeadPlan(0, 1, "q_in", "pos", "in_code", "g_in"),
             HeadPlan(0, 2, "q_prev", "pos", "value", "a"),
             HeadPlan(0, 3, "idq", "pos", "value", "b"))
    for plan in heads:
        _retrieval_head(w, layout, plan, 2 * k, k, c)
    ffn = FFNPlan(0, "a", "b", "g_type", ops, "out", gate_field="role_vg", copies=(("role_va", "b"),))
    _minterm_ffn(w, layout, ffn)
    head_b = w[Keys.bias(Keys.HEAD)]
    margin = float(k)
    one, zero = cvp.value_token(1, N), cvp.value_token(0, N)
    head_fills = [Fill.of(layout.cols("g_in"), [cvp.NA], sbin(0, k)),
                  Fill.of(layout.cols("g_in"), cvp.ref_token(ids, N), affine_code(ids)),
                  Fill.of(layout.cols("role_id"), [cvp.NA], margin),
                  Fill.of(layout.cols("role_id"), cvp.ref_token(ids, N), margin)]
    for row, sign in ((one, 1.0), (zero, -1.0)):
        head_fills += [Fill.of(layout.cols("out"), [row], 2.0 * sign),
                       Fill.of(layout.cols("role_va"), [row], margin),
                       Fill.of(layout.cols("role_vg"), [row], margin)]
    head_b[zero] = 2.0
    head_table = TableProgram(shapes[Keys.weight(Keys.HEAD)], np.dtype(storage).str, tuple(head_fills))
    programs = dict(zip(tables, (position_table, token_table, head_table)))
    model = ConstructedModel(Mode.CVP, cfg, Weights(w, programs, tuple(shapes)), layout, fmt, c, k, heads, ffn, vocab,
                             max_gates=N)
    _check_representable(model)
    return model
