"""verify --ieee: the lemmas in torch's IEEE arithmetic, for every summation order.

- the Z3 IEEE encoding against torch, bit for bit (inf and NaN included);
- the order-independence lemma against mutations (an overflowing key scale, too many terms for the exact range);
- every IEEE query non-vacuous (its assumptions alone are satisfiable);
- the old saturating scale refuted in float16 and replayed in torch float16, the new default proved everywhere.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import z3
from helpers import ROOT, cli

from bridge.testing import assert_proved, assert_refuted
from formal.exactness import DotProduct, check, representable
from formal.fp_theory import Z3Format
from formal.obligations import lemma_items
from formal.query import Query
from neural.construction.construct import build_cvp
from neural.construction.fp import IEEE_FORMATS, FPFormat

OLD_SCALE = "32752"  # B/2 of F(5,11): the paper's saturating scale, the default before c = 64


# ---- the encoding, bit for bit against torch ------------------------------------------------------------------

def _edge_values(dtype) -> list[float]:
    info = torch.finfo(dtype)
    return [0.0, -0.0, 1.0, -1.0, 0.5, 3.0, info.max, -info.max, info.tiny, info.smallest_normal / 4, 64.0, -128.0,
            float("inf"), float("-inf"), float("nan"), 1 + info.eps, 2.0 ** 10 + 1]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_z3_ieee_arithmetic_is_torchs_bit_for_bit(dtype):
    fmt = Z3Format(*IEEE_FORMATS[dtype], ieee=True)
    tdt = getattr(torch, dtype)
    rng = np.random.default_rng(0)
    vals = [float(torch.tensor(v, dtype=tdt)) for v in _edge_values(tdt)]
    vals += [float(torch.tensor(v, dtype=tdt)) for v in rng.normal(0, 300, 12)]
    for a in vals:
        for b in vals:
            ta, tb = torch.tensor(a, dtype=tdt), torch.tensor(b, dtype=tdt)
            for op, want in (("add", ta + tb), ("mul", ta * tb), ("div", ta / tb), ("sub", ta - tb)):
                got = z3.simplify(getattr(fmt, op)(fmt.val(a), fmt.val(b)))
                w = float(want)
                if np.isnan(w):
                    assert got.isNaN(), (op, a, b)
                else:
                    g = fmt.to_float(got) if not got.isInf() else (float("inf") if got.isPositive() else float("-inf"))
                    assert g == w and (g != 0 or got.isNegative() == (np.copysign(1, w) < 0)), (op, a, b, g, w)


# ---- the order-independence lemma -----------------------------------------------------------------------------

def _score(c: float, k: int) -> DotProduct:
    """A score's 2k terms: +-c for the code bits, -c for the interleaved ones."""
    return DotProduct("score", (frozenset({-c, 0.0, c}),) * k + (frozenset({-c}),) * k)


def test_order_independence_proves_the_default_scale_in_every_format():
    for fmt in [FPFormat(5, 11), *(FPFormat.ieee(d) for d in IEEE_FORMATS)]:
        assert check(_score(64.0, 17), fmt).status == "proved"


@pytest.mark.parametrize("c, k, dtype, why", [
    (32752.0, 2, "float16", "overflows"),  # 2c > B: the old scale's partial sums leave the format
    (129.0, 2, "bfloat16", "significant bits"),  # 3 * 129 = 387 needs 9 bits; bfloat16 has 8
    (1.0, 300, "bfloat16", "significant bits"),  # k too large for the exact-integer range: 257 is not on the grid
])
def test_order_independence_goes_red_when_a_partial_sum_is_not_exact(c, k, dtype, why):
    result = check(_score(c, k), FPFormat.ieee(dtype))
    assert result.status == "refuted" and why in result.witness["why"]
    witness_sum = sum(result.witness["terms"].values())
    assert witness_sum == result.witness["partial_sum"]  # the named terms really add up to it
    assert check(_score(c, k), FPFormat.ieee("float32")).status == "proved"  # float32 holds them all


def test_representable_agrees_with_the_format_grid():
    rng = np.random.default_rng(1)
    for fmt in (FPFormat(5, 11), FPFormat(8, 8), FPFormat(4, 4)):
        for M in list(rng.integers(-5000, 5000, 300)) + [2 ** 11 + 1, 2 ** 12, 65504, 65520]:
            for E in (0, 3, 20, 26):
                x = float(M) / 2 ** E
                assert representable(int(M), E, fmt) == bool(fmt.is_representable(x)), (fmt, M, E)


# ---- the IEEE queries are not vacuous -------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["retrieval", "gate_ffn", "readout"])
def test_every_ieee_query_has_satisfiable_assumptions(name):
    """A query is (assumptions, negated claim); if the assumptions alone were unsatisfiable, it would 'prove'
    anything. Dropping the last conjunct must leave something satisfiable."""
    model = build_cvp(8, FPFormat.ieee("float16"))
    checked = 0
    for q in lemma_items(model, name, 3, ieee=True):
        if not isinstance(q, Query) or not z3.is_and(q.formula):
            continue
        s = z3.Then("simplify", "fpa2bv", "simplify", "bit-blast", "sat").solver()
        s.add(*q.formula.children()[:-1])
        assert s.check() == z3.sat, q.name
        checked += 1
    assert checked >= 2


# ---- end to end -----------------------------------------------------------------------------------------------

def test_float16_refutes_the_old_scale_and_replays_the_overflow_in_torch():
    """The one-layer construction's every query names a position, so torch's own CPU kernels happen to survive the
    old scale; a kernel that adds the witness's terms in the order the lemma names overflows. The replay does that
    addition in torch float16."""
    proc = cli("verify", "specs/cvp.lark", "--ieee", "float16", "--override", f"key_scale={OLD_SCALE}", "--json",
               "--override", "random.instances=5")
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "refuted" and out["ieee"] == "float16"
    cex = out["counterexample"]
    assert cex["lemma"] == "order_independence" and cex["replayed"] is True
    replay = cex["replay"]
    assert replay["dtype"] == "float16"
    in_order = replay["partial_sum_in_order"]
    assert in_order["replayed"] is True and in_order["computed"] in ("inf", "-inf")
    assert abs(in_order["exact"]) > 65504 and in_order["terms_in_order"]


def test_float16_is_proved_at_the_new_default():
    proc = cli("verify", "specs/cvp.lark", "--ieee", "float16", "--json")
    assert proc.returncode == 0, proc.stdout[-2000:]
    out = json.loads(proc.stdout)
    assert out["key_scale"] == 64.0 and "any summation order" in out["arithmetic"]
    names = {lemma["name"] for lemma in out["lemmas"]}
    assert {"order_independence", "retrieval", "composition", "random"} <= names
    assert "torch float16" in next(lemma for lemma in out["lemmas"] if lemma["name"] == "random")["method"]


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_other_dtypes_are_proved_through_the_pytest_helper(dtype):
    assert_proved(ROOT / "specs/cvp.lark", ieee=dtype, random__instances=10, claims__end_to_end__max_gates=1)


def test_theorem_3_3_mode_is_proved_in_float16():
    assert_proved(ROOT / "specs/c17.lark", ieee="float16", random__instances=10)


def test_a_refuted_ieee_spec_goes_through_assert_refuted():
    assert_refuted(ROOT / "specs/c17.lark", ieee="bfloat16", lemma="order_independence", key_scale=129,
                   random__instances=5)


def test_verify_refuses_an_unknown_dtype():
    proc = cli("verify", "specs/cvp.lark", "--ieee", "float8")
    assert proc.returncode == 2 and "float8" in proc.stderr and "Traceback" not in proc.stderr


def test_the_default_scale_is_64_in_every_dtype_and_b_over_2_where_64_cannot_be_exact():
    for dtype in IEEE_FORMATS:
        assert build_cvp(32, FPFormat.ieee(dtype)).key_scale == 64.0
    tiny = FPFormat(4, 4)  # B = 240: 64 is on the grid, but 2k * 64 is not
    assert build_cvp(4, tiny).key_scale == tiny.max_value / 2


def test_ieee_queries_are_exported_and_rechecked_by_bitwuzla():
    proc = cli("verify", "specs/c17.lark", "--ieee", "float16", "--cross-check", "bitwuzla", "--timeout", "20",
               "--json", "--override", "random.instances=3")
    assert proc.returncode == 0, proc.stdout[-2000:]
    cc = json.loads(proc.stdout)["cross_check"]
    assert cc["queries"] > 40 and not cc["disagreements"] and not cc["unanswered"]


NETLISTS = [ROOT / "circuits/c880.bench"]  # ISCAS-85, 383 gates: each run proves its model in float16 first


@pytest.mark.parametrize("path", NETLISTS, ids=[p.name for p in NETLISTS])
@pytest.mark.parametrize("construction", ["cvp", "thm33"])
def test_torch_float16_runs_real_netlists_exactly(path, construction):
    """The default scale in float16 with torch's own kernels: every step sound, exit 0, in both constructions."""
    info = json.loads(cli("circuit", "info", str(path), "--json").stdout)
    bits = "".join(np.random.default_rng(7).choice(["0", "1"], len(info["inputs"])))
    proc = cli("run", str(path), "--inputs", bits, "--ieee", "float16", "--construction", construction, "--json")
    out = json.loads(proc.stdout)
    assert proc.returncode == 0 and out["sound"] is True and out["mode"] == "IEEE float16", proc.stdout[-500:]
    ref = json.loads(cli("circuit", "eval", str(path), "--inputs", bits, "--json").stdout)
    assert out["outputs"] == ref["outputs"]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_no_attention_row_is_nan_anywhere(dtype):
    """The written-out softmax (what the audit reads) on a whole CVP run: every query names one position, so every
    row of every head, prompt positions included, is exactly one-hot: no NaN, and no average."""
    from neural import cvp
    from neural.model import Decoder

    model = build_cvp(16, FPFormat(5, 11))
    c = cvp.random_circuit(np.random.default_rng(5), 16)
    tokens = torch.as_tensor(np.concatenate([c.prompt(), c.cot()[:-1]]))[None]
    net = Decoder.from_arrays(model.config, model.weights, getattr(torch, dtype))
    with torch.inference_mode():
        _, weights = net(tokens, need_weights=True)
    for w in weights:
        assert torch.isfinite(w).all()
        assert (w.float().max(-1).values == 1).all() and ((w == 0) | (w == 1)).all()
