import itertools

import numpy as np
import pytest
from helpers import ROOT, circuits, naive_eval
from hypothesis import given, settings

from grammar.aiger import parse_aag, write_aag
from grammar.bench import parse_bench, write_bench
from grammar.errors import InputError
from grammar.evaluate import check_trace, evaluate, evaluate_outputs
from grammar.netlist import load_netlist
from grammar.normalize import normalize


def all_inputs(n):
    return np.array(list(itertools.product([0, 1], repeat=n)), dtype=np.uint8)


def test_c17_matches_its_definition():
    nc = normalize(load_netlist(ROOT / "circuits/c17.bench"))
    assert (nc.n_inputs, nc.n_gates, nc.output_names) == (5, 6, ("22", "23"))
    for bits in all_inputs(5):
        i1, i2, i3, i6, i7 = bits
        n10, n11 = 1 - (i1 & i3), 1 - (i3 & i6)
        n16, n19 = 1 - (i2 & n11), 1 - (n11 & i7)
        assert list(evaluate_outputs(nc, bits)[0]) == [1 - (n10 & n16), 1 - (n16 & n19)]


def test_full_adder_aag_adds():
    nc = normalize(load_netlist(ROOT / "circuits/full_adder.aag"))
    assert nc.input_names == ("a", "b", "cin") and nc.output_names == ("sum", "cout")
    for bits in all_inputs(3):
        total = int(bits.sum())
        assert list(evaluate_outputs(nc, bits)[0]) == [total % 2, total // 2]


def test_ripple_carry_adder_adds():
    nc = normalize(load_netlist(ROOT / "circuits/rca4.bench"))
    for bits in all_inputs(9)[::7]:
        a = sum(int(b) << i for i, b in enumerate(bits[:4]))
        b = sum(int(x) << i for i, x in enumerate(bits[4:8]))
        out = evaluate_outputs(nc, bits)[0]
        assert sum(int(v) << i for i, v in enumerate(out)) == a + b + int(bits[8])


@settings(max_examples=60, deadline=None)
@given(circuits())
def test_vectorised_evaluator_matches_naive_recursive(circuit):
    nc = normalize(circuit)
    xs = all_inputs(len(circuit.inputs))
    got = evaluate_outputs(nc, xs)
    for row, bits in zip(got, xs):
        assert dict(zip(circuit.outputs, map(int, row))) == naive_eval(circuit, bits)


@settings(max_examples=60, deadline=None)
@given(circuits())
def test_bench_round_trip_preserves_function(circuit):
    back = parse_bench(write_bench(circuit), "rt.bench")
    xs = all_inputs(len(circuit.inputs))
    assert np.array_equal(evaluate_outputs(normalize(back), xs), evaluate_outputs(normalize(circuit), xs))


@settings(max_examples=60, deadline=None)
@given(circuits())
def test_aag_round_trip_preserves_function(circuit):
    back = parse_aag(write_aag(circuit), "rt.aag")
    assert back.inputs == circuit.inputs and back.outputs == circuit.outputs
    xs = all_inputs(len(circuit.inputs))
    assert np.array_equal(evaluate_outputs(normalize(back), xs), evaluate_outputs(normalize(circuit), xs))


def test_normalisation_decomposes_fan_in_and_keeps_names():
    c = parse_bench("INPUT(a)\nINPUT(b)\nINPUT(c)\nINPUT(d)\nOUTPUT(y)\ny = NAND(a, b, c, d)\nz = NOT(a)\n")
    nc = normalize(c)
    assert [(g.op, g.name, g.origin) for g in nc.gates] == [
        ("AND", "y~1", "y"), ("AND", "y~2", "y"), ("NAND", "y", "y"), ("NOT", "z", "z")]
    assert [g.used for g in nc.gates] == [True, True, True, False]
    assert all(g.a < nc.n_inputs + t and g.b < nc.n_inputs + t for t, g in enumerate(nc.gates))


def test_out_of_order_file_is_sorted_topologically():
    nc = normalize(parse_bench("INPUT(a)\nOUTPUT(y)\ny = NOT(x)\nx = BUF(a)\n"))
    assert [g.name for g in nc.gates] == ["x", "y"]


def test_trace_checker_uses_the_traces_own_values():
    nc = normalize(parse_bench("INPUT(a)\nOUTPUT(z)\nx = NOT(a)\ny = NOT(x)\nz = NOT(y)\n"))
    # true trace for a=0 is 1,0,1. A wrong first step followed by steps consistent with it is unsound only at 0.
    assert check_trace(nc, [[0]], [[1, 0, 1]]).all()
    assert check_trace(nc, [[0]], [[0, 1, 0]]).tolist() == [[False, True, True]]


@pytest.mark.parametrize("text", ["INPUT(a)\nOUTPUT(a)\n", "input(a)\noutput(y)\ny = buff(a) # comment\n"])
def test_bench_accepts_any_case_comments_and_wires(text):
    c = parse_bench(text)
    assert evaluate_outputs(normalize(c), [[1]])[0].tolist() == [1]


def test_latches_are_not_supported():
    with pytest.raises(InputError, match="latches are not supported"):
        parse_aag("aag 3 1 1 1 1\n2\n4 6\n6\n6 2 4\n", "x.aag")


def test_evaluator_handles_large_batches():
    nc = normalize(load_netlist(ROOT / "circuits/rca4.bench"))
    xs = all_inputs(9)
    assert evaluate(nc, xs).shape == (512, nc.n_nodes)


def test_every_lowering_form_computes_its_truth_table():
    """grammar.ir.FORMS is the one decomposition the CVP, AIGER and aigverse lowerings build from; each form, built
    with plain bit operations, is the op's row of TRUTH_TABLES."""
    from grammar.ir import FORMS, TRUTH_TABLES, build

    assert set(FORMS) == set(TRUTH_TABLES)
    for op, table in TRUTH_TABLES.items():
        got = tuple(build(op, a, b, AND=lambda x, y: x & y, OR=lambda x, y: x | y, NOT=lambda x: 1 - x,
                          const=int) for a in (0, 1) for b in (0, 1))
        assert got == table, op


def test_every_gate_written_as_blif_reads_back_as_itself(tmp_path):
    from grammar.blif import parse_blif, write_blif
    from grammar.evaluate import evaluate
    from grammar.ir import CONST_OPS, GATE_OPS, UNARY_OPS, Circuit, Gate

    for op in GATE_OPS:
        args = () if op in CONST_OPS else ("a",) if op in UNARY_OPS else ("a", "b")
        c = Circuit(op.lower(), ("a", "b"), ("y",), (Gate("y", op, args),))
        back = normalize(parse_blif(write_blif(c), str(tmp_path / "g.blif")))
        x = np.array([[a, b] for a in (0, 1) for b in (0, 1)], dtype=np.uint8)
        assert np.array_equal(evaluate(back, x)[:, back.outputs[0]], evaluate(normalize(c), x)[:, 2]), op
