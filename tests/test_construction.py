"""The constructions against direct circuit evaluation, step by step, in the finite mode, IEEE float32 and CVP mode."""
from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import ROOT, circuits, cli, cli_json
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grammar.codes import sbin
from grammar.errors import InputError
from grammar.evaluate import evaluate
from grammar.netlist import load_netlist
from grammar.normalize import normalize
from neural import checkpoint
from neural.construction.construct import build_cvp, build_thm33, code_width
from neural.construction.execute import (
    ExecMode,
    check_cvp_teacher_forced,
    check_thm33_teacher_forced,
    run_cvp,
    run_thm33,
)
from neural.construction.fp import FPFormat
from neural.cvp import CVPCircuit, check_cot
from neural.cvp import lower as lower_to_cvp

F511 = FPFormat(5, 11)
MODES = {"finite": ExecMode("finite", F511), "float32": ExecMode("ieee", F511, "float32")}


def truth(nc, bits):
    return evaluate(nc, np.asarray(bits, dtype=np.uint8)[None])[0][nc.n_inputs:]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(circuits(max_inputs=4, max_gates=8), st.data())
def test_thm33_every_step_equals_reference(circuit, data):
    nc = normalize(circuit)
    bits = np.array(data.draw(st.lists(st.integers(0, 1), min_size=nc.n_inputs, max_size=nc.n_inputs)))
    model = build_thm33(nc, F511)
    for name, mode in MODES.items():
        result = run_thm33(model, nc, bits, mode)
        assert np.array_equal(result.trace, truth(nc, bits)), name
        assert result.sound


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(circuits(max_inputs=3, max_gates=4, max_fan_in=3), st.data())
def test_cvp_every_step_equals_reference(circuit, data):
    nc = normalize(circuit)
    bits = np.array(data.draw(st.lists(st.integers(0, 1), min_size=nc.n_inputs, max_size=nc.n_inputs)))
    lowered = lower_to_cvp(nc, bits)
    model = build_cvp(lowered.size + data.draw(st.integers(0, 3)), F511)  # spare capacity must not matter
    for name, mode in MODES.items():
        result = run_cvp(model, nc, bits, mode)
        assert np.array_equal(result.trace, truth(nc, bits)), name
        assert result.sound


def test_width_is_logarithmic_and_depth_constant():
    for n_gates in (8, 64, 512):
        c17 = normalize(load_netlist(ROOT / "circuits/c17.bench"))
        model = build_cvp(n_gates, F511)
        assert model.config.n_layers == 1 and model.config.n_heads == 4
        assert model.config.d_model == 17 + 7 * code_width(8 * n_gates + 1)  # 7 code fields, 17 flags and bits
    m = build_thm33(c17, F511)
    assert (m.config.n_layers, m.config.n_heads) == (1, 2)


def test_teacher_forced_checks_every_step_at_once():
    nc = normalize(load_netlist(ROOT / "circuits/rca4.bench"))
    bits = np.array([1, 0, 1, 1, 0, 1, 1, 1, 0])
    model = build_thm33(nc, F511)
    assert check_thm33_teacher_forced(model, nc, bits, MODES["finite"]).ok.all()
    c = lower_to_cvp(nc, bits)
    assert check_cvp_teacher_forced(build_cvp(c.size, F511), c, MODES["float32"]).ok.all()


def test_bfloat16_runs_both_constructions_exactly():
    nc = normalize(load_netlist(ROOT / "circuits/c17.bench"))
    bits = np.array([1, 0, 1, 1, 0])
    mode = ExecMode("ieee", F511, "bfloat16")
    assert np.array_equal(run_thm33(build_thm33(nc, F511), nc, bits, mode).trace, truth(nc, bits))
    assert np.array_equal(run_cvp(build_cvp(lower_to_cvp(nc, bits).size, F511), nc, bits, mode).trace, truth(nc, bits))


OLD_SCALE = 32752.0  # B/2 of F(5,11): the saturating scale, and the default before c = 64


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_the_default_scale_runs_exactly_in_every_dtype_with_torchs_own_kernels(dtype):
    """c = 64: every partial sum is exact, so torch's fused attention gives every step right, CVP included."""
    nc = normalize(load_netlist(ROOT / "circuits/c17.bench"))
    rng = np.random.default_rng(3)
    cvp = build_cvp(64, F511)
    assert cvp.key_scale == 64.0
    for bits in rng.integers(0, 2, (4, nc.n_inputs)):
        mode = ExecMode("ieee", F511, dtype)
        assert run_cvp(cvp, nc, bits, mode).sound and run_thm33(build_thm33(nc, F511), nc, bits, mode).sound
        assert np.array_equal(run_cvp(cvp, nc, bits, mode).trace, truth(nc, bits))


def test_float16_breaks_the_old_saturating_scale_in_some_summation_order():
    """float16's largest value is 65504 = 2c at c = B/2. A matching key scores sum(+c, -c, +c, -c, ...) = 0, but a
    kernel that adds the +c terms first overflows to +inf, and the softmax of a row holding +inf is NaN. At the
    default c = 64 every order gives exactly 0. (torch's CPU kernels happen to be safe here;
    ``verify --ieee float16 --override key_scale=32752`` refutes the scale for every kernel: tests/test_ieee.py.)"""
    import torch

    for scale, broken in ((OLD_SCALE, True), (None, False)):
        model = build_cvp(4, F511, key_scale=scale)
        plan = model.heads[1]
        x = np.zeros(model.config.d_model)
        x[model.layout.cols(plan.query_field)] = sbin(5, model.code_bits)
        x[model.layout.cols(plan.key_field)] = sbin(5, model.code_bits)
        (wq, bq), (wk, bk) = model.head_slice(plan, "q"), model.head_slice(plan, "k")
        terms = torch.as_tensor((wq @ x + bq) * (wk @ x + bk), dtype=torch.float16)
        assert float(terms.to(torch.float64).sum()) == 0.0
        acc = torch.zeros((), dtype=torch.float16)
        for t in torch.sort(terms, descending=True).values:  # the positive terms first
            acc = acc + t
        assert bool(torch.isnan(acc) | torch.isinf(acc)) is broken


def test_key_scale_one_breaks_retrieval():
    nc = normalize(load_netlist(ROOT / "circuits/rca4.bench"))
    bits = np.array([1, 0, 1, 1, 0, 1, 1, 1, 0])
    result = run_thm33(build_thm33(nc, F511, key_scale=1.0), nc, bits, MODES["finite"])
    assert not np.array_equal(result.trace, truth(nc, bits))


def test_lowering_preserves_the_function():
    nc = normalize(load_netlist(ROOT / "circuits/rca4.bench"))
    rng = np.random.default_rng(0)
    for bits in rng.integers(0, 2, (20, nc.n_inputs)):
        c = lower_to_cvp(nc, bits)
        assert set(c.kinds) <= {"TRUE", "FALSE", "AND", "OR", "NOT"}
        assert np.array_equal(c.evaluate()[np.array(c.node_gate) - 1], evaluate(nc, bits[None])[0])
        assert check_cot(c.prompt()[None, :-1], c.cot()[None], c.size).all()


CVP_TOKEN_MUTATIONS = [
    # (what, CoT position, replacement token name, positions that must be flagged)
    ("v(2) flipped: wrong itself, and AND(1, v(2)) no longer follows", 7, "1", [7, 11]),
    ("@a_2 names the wrong gate", 4, "@2", [4]),
    ("b_3 dropped to NA", 10, "NA", [10]),
    ("the copy v(a_3) flipped: v(3) still follows from the trace's own v(1)", 9, "0", [9]),
    ("v(3) flipped", 11, "1", [11]),
]


@pytest.mark.parametrize("what,position,token,flagged", CVP_TOKEN_MUTATIONS, ids=[m[0] for m in CVP_TOKEN_MUTATIONS])
def test_cvp_soundness_is_checked_per_token(what, position, token, flagged):
    from neural import cvp

    c = CVPCircuit(("TRUE", "NOT", "AND"), (0, 1, 1), (0, 0, 2))  # CoT: NA 0 NA 1 | @1 1 NA 0 | @1 1 @2 0
    prompt, trace = c.prompt()[None, :-1], c.cot()[None]
    assert check_cot(prompt, trace, 3).all()
    bad = trace.copy()
    bad[0, position] = cvp.vocab(3).index(token)
    assert bad[0, position] != trace[0, position]
    assert np.flatnonzero(~check_cot(prompt, bad, 3)[0]).tolist() == flagged


# ---- CLI and checkpoints ------------------------------------------------------------------------------------

@pytest.mark.parametrize("extra", [[], ["--ieee", "float32", "--unproved"], ["--construction", "cvp"],
                                   ["--precision", "8,24"]])  # run --ieee's proof: tests/test_onepass.py
def test_cli_run_matches_reference(extra):
    out = cli_json("run", "circuits/c17.bench", "--inputs", "10110", *extra)
    nc = normalize(load_netlist(ROOT / "circuits/c17.bench"))
    assert out["trace"] == truth(nc, [1, 0, 1, 1, 0]).tolist() and out["sound"] is True
    assert out["outputs"] == {"22": 1, "23": 0}


@pytest.mark.parametrize("args,message", [
    (["--inputs", "1011"], "--inputs has 4 bits but 5 are needed"),
    (["--inputs", "10110", "--precision", "5,x"], "--precision"),
    (["--inputs", "10110", "--ieee", "float8"], "not a dtype cotproof proves"),
    (["--inputs", "10110", "--ieee", "float64"], "not a dtype cotproof proves"),
    (["--inputs", "10110", "--ieee", "float32", "--precision", "5,11"], "exclude each other"),
])
def test_cli_run_rejects_bad_flags(args, message):
    proc = cli("run", "circuits/c17.bench", *args)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def test_compile_writes_a_checkpoint_the_module_loads(tmp_path):
    import torch

    from neural.model import Decoder

    out = cli_json("compile", "specs/c17.lark", "--out", str(tmp_path / "ck"))
    assert out["layers"] == 1
    ck = checkpoint.load(tmp_path / "ck")
    model = build_thm33(normalize(load_netlist(ROOT / "circuits/c17.bench")), F511)
    assert all(np.array_equal(ck.weights[k], v) for k, v in model.weights.items())
    dec = Decoder.from_arrays(ck.config, ck.weights)
    assert isinstance(dec, torch.nn.Module) and ck.meta["construction"]["mode"] == "thm33"


def test_checkpoint_rejects_pickles_and_mismatches(tmp_path):
    model = build_cvp(4, F511)
    d = tmp_path / "ck"
    checkpoint.save(d, model.config, model.weights, {"kind": "construction"})
    cfg = json.loads((d / "config.json").read_text())
    cfg["model"]["d_model"] += 1
    cfg.pop("weights_sha256")
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(InputError, match="shape"):
        checkpoint.load(d)
    (d / "evil.pkl").write_bytes(b"cos\nsystem\n(S'touch /tmp/pwned'\ntR.")
    with pytest.raises(InputError, match="pickle"):
        checkpoint.load(d)


def test_a_wrong_run_exits_1_and_names_its_first_wrong_step():
    """Cold keys (c = 1) break CVP mode: the run must say so in its exit status, not only in its text."""
    proc = cli("run", "circuits/c17.bench", "--inputs", "10110", "--override", "key_scale=1", "--construction", "cvp",
               "--json")
    out = json.loads(proc.stdout)
    assert proc.returncode == 1 and out["sound"] is False
    assert out["first_unsound_step"] == 0 and out["gate"]["name"] == "10"
    good = cli("run", "circuits/c17.bench", "--inputs", "10110", "--construction", "cvp", "--json")
    assert good.returncode == 0 and json.loads(good.stdout)["first_unsound_step"] is None
