"""formal.sat: the PySAT trace checker against the numpy checker, the flip property, and equivalence miters."""
from __future__ import annotations

import json

import numpy as np
from helpers import ROOT, circuits, cli, cli_json
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.benchmarks.gen import random_circuit
from formal.sat import check_trace, equivalent
from grammar.aiger import write_aag
from grammar.bench import write_bench
from grammar.evaluate import evaluate, first_unsound
from grammar.ir import Gate
from grammar.netlist import load_netlist
from grammar.normalize import normalize


@settings(max_examples=60, deadline=None)
@given(circuits(max_inputs=4, max_gates=10), st.data())
def test_sat_checker_agrees_with_numpy(circuit, data):
    nc = normalize(circuit)
    bits = np.array(data.draw(st.lists(st.integers(0, 1), min_size=nc.n_inputs, max_size=nc.n_inputs)), np.uint8)
    trace = np.array(data.draw(st.lists(st.integers(0, 1), min_size=nc.n_gates, max_size=nc.n_gates)), np.uint8)
    verdict = check_trace(nc, bits, trace)
    assert verdict.first_unsound_step == first_unsound(nc, bits, trace)
    assert verdict.sound == (first_unsound(nc, bits, trace) is None)


def test_every_single_flip_is_caught_at_its_step():
    nc = normalize(random_circuit(8, 120, seed=5))
    rng = np.random.default_rng(0)
    for _ in range(3):
        bits = rng.integers(0, 2, nc.n_inputs).astype(np.uint8)
        trace = evaluate(nc, bits[None])[0][nc.n_inputs:]
        assert check_trace(nc, bits, trace).sound
        for t in range(nc.n_gates):
            flipped = trace.copy()
            flipped[t] ^= 1
            assert check_trace(nc, bits, flipped).first_unsound_step == t


def test_aiger_rewrite_is_equivalent_and_a_one_gate_mutant_is_not(tmp_path):
    original = random_circuit(10, 200, seed=11)
    (tmp_path / "a.bench").write_text(write_bench(original))
    (tmp_path / "b.aag").write_text(write_aag(original))
    a, b = normalize(load_netlist(tmp_path / "a.bench")), normalize(load_netlist(tmp_path / "b.aag"))
    assert equivalent(a, b).status == "equivalent"
    gates = list(original.gates)
    last = gates[-1]
    gates[-1] = Gate(last.name, "NOR" if last.op != "NOR" else "OR", last.inputs)
    mutant = normalize(original.__class__(original.name, original.inputs, original.outputs, tuple(gates)))
    verdict = equivalent(a, mutant)
    assert verdict.status == "different"
    x = np.array([verdict.counterexample[n] for n in a.input_names], dtype=np.uint8)
    assert not np.array_equal(evaluate(a, x[None])[0][list(a.outputs)],
                              evaluate(mutant, x[None])[0][list(mutant.outputs)])


def test_cli_check_and_equiv(tmp_path):
    good = cli_json("check", "circuits/c17.bench", "--inputs", "10110", "--trace", "001110")
    assert good == {"sound": True, "first_unsound_step": None}
    proc = cli("check", "circuits/c17.bench", "--inputs", "10110", "--trace", "001010", "--json")
    bad = json.loads(proc.stdout)  # an unsound trace is exit 1, like an unsound run
    assert proc.returncode == 1 and bad["sound"] is False and bad["first_unsound_step"] == 3
    (tmp_path / "c17.aag").write_text(write_aag(load_netlist(ROOT / "circuits/c17.bench")))
    same = cli_json("equiv", "circuits/c17.bench", str(tmp_path / "c17.aag"))
    assert same["equivalent"] is True and same["status"] == "equivalent" and same["counterexample"] is None
    text = (ROOT / "circuits/c17.bench").read_text().replace("23 = NAND(16, 19)", "23 = AND(16, 19)")
    (tmp_path / "m.bench").write_text(text)
    proc = cli("equiv", "circuits/c17.bench", str(tmp_path / "m.bench"), "--json")
    assert proc.returncode == 1
    out = json.loads(proc.stdout)
    assert out["equivalent"] is False and out["outputs"]["a"] != out["outputs"]["b"]
    assert out["differing_outputs"] == ["23"] and set(out["outputs"]["a"]) == {"22", "23"}  # outputs by name
    wrong = cli("check", "circuits/c17.bench", "--inputs", "10110", "--trace", "0011")
    assert wrong.returncode == 2 and "--trace has 4 bits but 6 are needed" in wrong.stderr


def test_equiv_exits_3_when_its_two_checkers_disagree(monkeypatch, capsys):
    """Sweeping and the miter answer in one type; a decided contradiction between them is unknown, never a verdict."""
    import formal.sat
    from bridge.commands.main import main as cli_main
    from formal.equivalence import DIFFERENT, EQUIVALENT, UNKNOWN, Equivalence

    monkeypatch.setattr(formal.sat, "equivalent", lambda a, b, t: Equivalence(DIFFERENT, {"1": 0}, "fake miter"))
    rc = cli_main(["equiv", str(ROOT / "circuits/c17.bench"), str(ROOT / "circuits/c17.bench")])
    assert rc == 3 and "the two checkers disagree" in capsys.readouterr().err
    assert not Equivalence(EQUIVALENT).contradicts(Equivalence(UNKNOWN))
    assert Equivalence(EQUIVALENT).contradicts(Equivalence(DIFFERENT))
