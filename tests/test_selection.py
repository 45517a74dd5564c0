"""The attention the retrieval lemma licenses (``neural.construction.selection``, ``neural.selected``): the same
logits as the dense kernel on every construction, dense where the lemma fails, and a spot check that catches a
gathered row altered on purpose."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import ROOT, in_process

from formal.query import PROVED_FORMULAS
from grammar.netlist import load_netlist
from grammar.normalize import normalize
from neural import cvp
from neural.construction.construct import build_cvp, build_thm33
from neural.construction.execute import ExecMode, cvp_teacher_forcing, session, thm33_teacher_forcing
from neural.construction.fp import FPFormat
from neural.construction.selection import KeySelection, _match, proved_selection
from neural.selected import NO_KEY, SpotCheck, UnsoundAttention, finite_selected, torch_selected

ARITHMETICS = [ExecMode("finite", FPFormat(5, 11)), ExecMode("finite", FPFormat(4, 8)),
               *(ExecMode("ieee", FPFormat.ieee(d), d) for d in ("float16", "bfloat16", "float32"))]
CONSTRUCTIONS = ["c17.bench", "rca4.bench", "full_adder.aag", "c880.bench", "cvp-16"]


def _case(name: str, mode: ExecMode):
    """The construction in ``mode``'s format and teacher-forced sequences for it (one for F(e,s))."""
    rng = np.random.default_rng(3)
    if name.startswith("cvp"):
        n = int(name.split("-")[1])
        model = build_cvp(n, mode.fmt)
        tokens = cvp_teacher_forcing([cvp.random_circuit(rng, n) for _ in range(2)], n).tokens
    else:
        nc = normalize(load_netlist(ROOT / "circuits" / name))
        model = build_thm33(nc, mode.fmt)
        tokens = thm33_teacher_forcing(nc, rng.integers(0, 2, (2, nc.n_inputs))).tokens
    return model, tokens[:1] if mode.kind == "finite" else tokens


def _logits(model, mode: ExecMode, tokens, selection=None) -> np.ndarray:
    sess = session(model.config, model.weights, mode, selection=selection)
    if mode.kind == "finite":
        return sess.decoder.forward(tokens[0])[None]
    with torch.inference_mode():
        return sess.model(torch.as_tensor(tokens))[0].float().numpy()


@pytest.mark.parametrize("mode", ARITHMETICS, ids=str)
@pytest.mark.parametrize("name", CONSTRUCTIONS)
def test_proved_and_dense_attention_give_identical_logits(name, mode):
    model, tokens = _case(name, mode)
    selection = proved_selection(model)
    dense, proved = _logits(model, mode, tokens), _logits(model, mode, tokens, selection)
    assert np.array_equal(dense, proved, equal_nan=True)
    assert np.array_equal(dense.argmax(-1), proved.argmax(-1))
    assert selection.check.checked > 0


def test_a_selected_key_is_the_one_visible_key_with_the_query_code():
    """Against a brute-force search: codes with repeats, fields that are not +-1 codes, keys after the query."""
    rng = np.random.default_rng(0)
    for _ in range(100):
        T, k = int(rng.integers(1, 40)), int(rng.integers(1, 4))
        keys = np.where(rng.random((T, k)) < 0.5, 1.0, -1.0)
        queries = np.where(rng.random((T, k)) < 0.5, 1.0, -1.0)
        keys[rng.random(T) < 0.1, 0] = 0.0  # not a code
        queries[rng.random(T) < 0.1, 0] = 0.5
        got = _match(queries, keys)
        for i in range(T):
            valid = lambda f: np.all(np.abs(f) == 1.0)  # noqa: E731
            same = [j for j in range(T) if valid(keys[j]) and np.array_equal(keys[j], queries[i])]
            want = same[0] if valid(queries[i]) and len(same) == 1 and same[0] <= i else NO_KEY
            assert got[i] == want, (i, queries[i], keys)


def _layer0(model, tokens):
    """The residual layer 0 reads, and its q, k, v, as the finite decoder computes them."""
    from neural.config import Keys
    from neural.construction.finite import FiniteDecoder

    dec = FiniteDecoder(model.config, model.weights, model.fmt)
    x = dec.fmt.add(dec.w[Keys.TOK_EMB][tokens], dec.w[Keys.POS_EMB][:len(tokens)])
    return dec, x, [dec._linear(x, Keys.attn(0, proj)) for proj in "qkv"]


def _altered(model, x, v_head, head: int):
    """The selected keys of ``head``, with the last row that can be moved pointed at a key holding another value."""
    keys = KeySelection(model)(0, x[None])[0, head].copy()
    for i in range(len(keys) - 1, -1, -1):
        other = [j for j in range(i + 1) if keys[i] != NO_KEY and not np.array_equal(v_head[j], v_head[keys[i]])]
        if other:
            keys[i] = other[0]
            return keys, i
    raise AssertionError("no row to alter")


def test_the_spot_check_catches_a_gathered_row_altered_on_purpose():
    model, tokens = _case("c17.bench", ExecMode("finite", FPFormat(5, 11)))
    dec, x, (q, k, v) = _layer0(model, tokens[0])
    sl = slice(0, model.config.d_head)
    keys, row = _altered(model, x, v[:, sl], head=0)
    with pytest.raises(UnsoundAttention) as err:  # few rows: every gathered row is checked
        finite_selected(dec.fmt, q[:, sl], k[:, sl], v[:, sl], keys, 1.0, SpotCheck(), 0, 0)
    assert err.value.position == row
    split = lambda a: torch.as_tensor(a[None, None, :, sl], dtype=torch.float32)  # noqa: E731
    with pytest.raises(UnsoundAttention) as err:
        torch_selected(split(q), split(k), split(v), keys[None, None], 1.0, SpotCheck(), 0)
    assert err.value.position == row
    unaltered = KeySelection(model)(0, x[None])[0, 0]
    finite_selected(dec.fmt, q[:, sl], k[:, sl], v[:, sl], unaltered, 1.0, SpotCheck(), 0, 0)  # and it passes


def test_run_uses_proved_attention_where_the_lemma_holds_and_dense_where_it_fails():
    proved = json.loads(in_process("run", "circuits/c17.bench", "--inputs", "10101", "--json").stdout)
    assert proved["attention"]["kernel"] == "proved" and proved["attention"]["lemma"] == "retrieval"
    assert proved["attention"]["spot_checked_rows"] > 0 and proved["sound"]
    cold = in_process("run", "circuits/c17.bench", "--inputs", "10101", "--override", "key_scale=4", "--json")
    out = json.loads(cold.stdout)
    assert out["attention"]["kernel"] == "dense" and "retrieval lemma is refuted" in out["attention"]["why"]
    refused = in_process("run", "circuits/c17.bench", "--inputs", "10101", "--override", "key_scale=4",
                         "--attention", "proved")
    assert refused.returncode == 2 and "--attention proved" in refused.stderr
    unproved = json.loads(in_process("run", "circuits/c17.bench", "--inputs", "10101", "--ieee", "float16",
                                     "--unproved", "--json").stdout)
    assert unproved["attention"]["kernel"] == "dense"
    dense = json.loads(in_process("run", "circuits/c17.bench", "--inputs", "10101", "--attention", "dense",
                                  "--json").stdout)
    assert dense["attention"] == {"kernel": "dense", "why": "--attention dense"}
    assert dense["trace"] == proved["trace"] and dense["outputs"] == proved["outputs"]


def test_a_run_whose_spot_check_fails_stops_as_unsound(monkeypatch):
    from neural.construction import selection

    real = selection.KeySelection.__call__

    def shifted(self, layer, x):  # every selected key moved one position back, where there is one
        keys = real(self, layer, x)
        return np.where(keys > 0, keys - 1, keys)

    monkeypatch.setattr(selection.KeySelection, "__call__", shifted)
    proc = in_process("run", "circuits/c17.bench", "--inputs", "10101", "--json")
    assert proc.returncode == 1
    out = json.loads(proc.stdout)
    assert out["sound"] is False and out["unsound_attention"]["layer"] == 0 and "stopped as unsound" in out["error"]


def test_proved_attention_is_priced_linear_in_the_length():
    """The run's work limit reads the kernel it will use: dense grows with L², proved with L (and code width).
    (Theorem 3.3 models: a CVP model's vocabulary, and so its unembedding, grows with its size too.)"""
    from bridge.benchmarks.gen import random_circuit
    from bridge.estimates import instance_work

    small, big = (build_thm33(normalize(random_circuit(16, n, seed=1)), FPFormat(5, 11)) for n in (500, 4000))
    length = big.config.max_len / small.config.max_len
    assert instance_work(big) / instance_work(small) > 0.9 * length ** 2
    assert instance_work(big, True) / instance_work(small, True) < 1.5 * length


@pytest.fixture(scope="module")
def long_circuit():
    """Long enough (3,064 positions) that gathering beats scoring every key in verify's checks."""
    from bridge.benchmarks.gen import random_circuit

    nc = normalize(random_circuit(64, 3000, seed=2, max_fan_in=2))
    return build_thm33(nc, FPFormat(5, 11)), nc


def _random_check(model, nc, claims, timeout_s: float = 60.0):
    from bridge.proof import prove_model

    report = prove_model(model, nc, claims, instances=4, seed=0, timeout_s=timeout_s)
    if "retrieval" in claims:
        assert report.lemmas[[r.name for r in report.lemmas].index("retrieval")].status == \
            ("proved" if timeout_s >= 1 else "unknown")
    return next(r for r in report.lemmas if r.name == "random")


def test_verify_gathers_attention_in_its_checks_only_where_its_own_report_proves_retrieval(long_circuit):
    model, nc = long_circuit
    licensed = _random_check(model, nc, {"retrieval": {}})
    assert licensed.status == "proved" and "attention gathered" in licensed.method, licensed
    unclaimed = _random_check(model, nc, {})
    assert unclaimed.status == "proved" and "attention gathered" not in unclaimed.method
    PROVED_FORMULAS.clear()  # proved just above: asked again, z3 itself must run out of time
    unknown = _random_check(model, nc, {"retrieval": {}}, timeout_s=1e-6)  # claimed, but the solver timed out
    assert unknown.status == "proved" and "attention gathered" not in unknown.method


def test_verify_reports_a_failed_spot_check_in_its_checks_as_refuted(long_circuit, monkeypatch):
    from neural.construction import selection

    real = selection.KeySelection.__call__
    monkeypatch.setattr(selection.KeySelection, "__call__",
                        lambda self, layer, x: np.where((k := real(self, layer, x)) > 0, k - 1, k))
    model, nc = long_circuit
    result = _random_check(model, nc, {"retrieval": {}})
    assert result.status == "refuted" and "unsound_attention" in result.failure, result
