"""Circuits as people have them: binary AIGER, BLIF and structural Verilog in; every writable format out.

Each reader is checked against an *independent* evaluation: aigverse's own AIGER and Verilog readers (mockturtle),
simulated here node by node, and the other formats of the same design. Round trips are property-tested and proved
with the SAT miter.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT, cli
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.benchmarks.gen import array_multiplier, random_circuit
from formal.aig import equivalent, optimize
from formal.sat import equivalent as miter_equivalent
from grammar.evaluate import (
    evaluate,
    evaluate_outputs,
    evaluate_packed,
    pack_bits,
    unpack_bits,
)
from grammar.netlist import FORMATS, formats, load_netlist, netlist_bytes
from grammar.normalize import normalize

LOCAL = ROOT / "circuits"  # the EPFL designs, each as .aig, .blif and .v (circuits/SOURCES.md)
DESIGNS = ["ctrl", "int2float", "router"]
WRITABLE = [f for f in FORMATS if formats()[f].write is not None]


def listed(attr):
    return attr() if callable(attr) else attr


def simulate_aigverse(aig, x: np.ndarray) -> np.ndarray:
    """Outputs of an aigverse network for vectors x (B, n): a plain node-by-node evaluation of mockturtle's graph."""
    value = {0: np.zeros(len(x), dtype=np.uint8)}
    for i, pi in enumerate(listed(aig.pis)):
        value[aig.node_to_index(pi)] = x[:, i]

    def sig(s):
        v = value[aig.node_to_index(aig.get_node(s))]
        return 1 - v if aig.is_complemented(s) else v

    for g in listed(aig.gates):
        a, b = aig.fanins(g)
        value[aig.node_to_index(g)] = sig(a) & sig(b)
    return np.stack([sig(po) for po in listed(aig.pos)], axis=1)


def design_files(stem: str) -> dict[str, Path]:
    return {ext: LOCAL / f"{stem}.{ext}" for ext in ("aig", "blif", "v")}  # a missing one fails, never skips


@pytest.mark.parametrize("stem", DESIGNS)
def test_every_format_of_a_real_design_matches_an_independent_evaluation(stem):
    from aigverse import io

    files = design_files(stem)
    reference = io.read_aiger_into_aig(str(files["aig"]))
    x = np.random.default_rng(7).integers(0, 2, (400, listed(reference.num_pis))).astype(np.uint8)
    want = simulate_aigverse(reference, x)
    names = [reference.get_name(reference.make_signal(pi)) for pi in listed(reference.pis)]
    for ext, path in files.items():
        nc = normalize(load_netlist(path))
        assert list(nc.input_names) == names, ext  # symbol names kept, in order
        assert (evaluate_outputs(nc, x) == want).all(), ext
    if "v" in files:  # aigverse's own Verilog reader agrees with ours
        assert (simulate_aigverse(io.read_verilog_into_aig(str(files["v"])), x) == want).all()


def test_shipped_ctrl_in_three_formats_is_one_function_and_keeps_names():
    circuits = {ext: normalize(load_netlist(LOCAL / f"ctrl.{ext}")) for ext in ("aig", "blif", "v")}
    assert circuits["aig"].input_names[:2] == ("opcode[0]", "opcode[1]")
    assert circuits["blif"].output_names == circuits["aig"].output_names == circuits["v"].output_names
    for other in ("blif", "v"):
        assert equivalent(circuits["aig"], circuits[other]).status == "equivalent"
        assert miter_equivalent(circuits["aig"], circuits[other], 60).status == "equivalent"


def test_aiger_outputs_that_are_constants_or_inverted_literals():
    # inputs x (2), y (4); AND 6 = x & !y; outputs: 0, 1, !6, 3 (= !x), 6, with names
    data = (b"aig 3 2 0 5 1\n0\n1\n7\n3\n6\n" + bytes([6 - 5, 5 - 2])
            + b"i0 x\ni1 y\no0 zero\no1 one\no2 nand\no3 nx\no4 g\n")
    nc = normalize(formats()["aig"].read(data, "t.aig"))
    assert nc.input_names == ("x", "y") and nc.output_names == ("zero", "one", "nand", "nx", "g")
    x = np.array([[a, b] for a in (0, 1) for b in (0, 1)], dtype=np.uint8)
    got = evaluate_outputs(nc, x)
    g = x[:, 0] & (1 - x[:, 1])
    assert (got == np.stack([0 * g, 0 * g + 1, 1 - g, 1 - x[:, 0], g], axis=1)).all()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n_inputs=st.integers(1, 8), n_gates=st.integers(1, 60),
       fmt=st.sampled_from(WRITABLE))
def test_round_trips_preserve_the_function(tmp_path_factory, seed, n_inputs, n_gates, fmt):
    circuit = random_circuit(n_inputs, n_gates, seed=seed, n_outputs=4)
    path = tmp_path_factory.mktemp("rt") / f"c.{fmt}"
    path.write_bytes(netlist_bytes(circuit, fmt))
    back = load_netlist(path)
    assert back.inputs == circuit.inputs and len(back.outputs) == len(circuit.outputs)
    x = np.random.default_rng(seed).integers(0, 2, (64, n_inputs)).astype(np.uint8)
    assert (evaluate_outputs(normalize(back), x) == evaluate_outputs(normalize(circuit), x)).all()


@pytest.mark.parametrize("fmt", WRITABLE)
def test_round_trips_of_real_sizes_are_proved_by_the_miter(tmp_path, fmt):
    original = load_netlist(LOCAL / "ctrl.aig")
    path = tmp_path / f"ctrl.{fmt}"
    assert cli("circuit", "convert", str(LOCAL / "ctrl.aig"), str(path)).returncode == 0
    back = normalize(load_netlist(path))
    assert back.input_names == normalize(original).input_names
    assert miter_equivalent(normalize(original), back, 60).status == "equivalent"


def test_format_flag_overrides_the_extension_and_specs_name_any_format(tmp_path):
    shutil.copy(LOCAL / "ctrl.blif", tmp_path / "ctrl.txt")
    proc = cli("circuit", "info", str(tmp_path / "ctrl.txt"), "--format", "blif", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["inputs"][0] == "opcode[0]"
    assert cli("circuit", "info", str(tmp_path / "ctrl.txt")).returncode == 2
    bad = cli("circuit", "info", str(tmp_path / "ctrl.txt"), "--format", "vhdl")
    assert bad.returncode == 2 and "unknown netlist format 'vhdl'" in bad.stderr
    (tmp_path / "s.lark").write_text(f'spec s\ncircuit c from "{LOCAL / "int2float.aig"}"\n')
    proc = cli("spec", "check", str(tmp_path / "s.lark"), "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["circuit"] == "int2float"


def test_circuit_info_reports_symbol_names():
    proc = cli("circuit", "info", str(LOCAL / "int2float.aig"), "--json")
    info = json.loads(proc.stdout)
    assert info["inputs"][:2] == ["B[0]", "B[1]"] and info["outputs"][-1] == "E[2]"
    assert "B[0]" in cli("circuit", "info", str(LOCAL / "int2float.aig")).stdout


def test_equiv_proves_aig_equals_blif_and_finds_a_replayed_difference(tmp_path):
    proc = cli("equiv", str(LOCAL / "ctrl.aig"), str(LOCAL / "ctrl.blif"), "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["equivalent"] is True
    text = (LOCAL / "ctrl.blif").read_text().replace(".names n35 n36 n37\n11 1", ".names n35 n36 n37\n00 1", 1)
    (tmp_path / "mutant.blif").write_text(text)
    proc = cli("equiv", str(LOCAL / "ctrl.aig"), str(tmp_path / "mutant.blif"), "--json")
    out = json.loads(proc.stdout)
    assert proc.returncode == 1 and out["equivalent"] is False
    assert out["outputs"]["a"] != out["outputs"]["b"]  # the counterexample replays through both circuits


def test_a_multiplier_is_proved_equivalent_to_itself_and_its_optimised_form():
    m = normalize(array_multiplier(8))
    assert equivalent(m, m).status == "equivalent"
    opt = optimize(m)
    assert equivalent(m, opt).status == "equivalent"
    # a multiplier miter is hard for SAT (about 9 s alone here); the limit is for a loaded machine, not a bound
    assert miter_equivalent(m, opt, 600).status == "equivalent"


def test_optimize_shrinks_a_real_design_and_proves_it(tmp_path):
    proc = cli("compile", str(LOCAL / "ctrl.aig"), "--optimize", "--out", str(tmp_path / "ck"), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)["optimize"]
    assert report["equivalent"] is True and report["gates_after"] < report["gates_before"]
    assert report["cot_steps_after"] < report["cot_steps_before"]
    bits = "1011001"
    runs = [json.loads(cli("run", str(LOCAL / "ctrl.aig"), "--inputs", bits, "--json", *flag).stdout)
            for flag in ((), ("--optimize",))]
    assert runs[0]["outputs"] == runs[1]["outputs"] and runs[1]["sound"]
    assert len(runs[1]["trace"]) == report["cot_steps_after"] < len(runs[0]["trace"])


def test_packed_evaluation_equals_the_reference_evaluator():
    nc = normalize(random_circuit(12, 400, seed=3))
    for count in (1, 63, 64, 65, 1000):
        x = np.random.default_rng(count).integers(0, 2, (count, 12)).astype(np.uint8)
        assert (unpack_bits(pack_bits(x), count) == x).all()
        assert (unpack_bits(evaluate_packed(nc, pack_bits(x)), count) == evaluate(nc, x)).all()


def test_batch_eval_from_a_file_and_random_vectors(tmp_path):
    nc = normalize(load_netlist(LOCAL / "int2float.aig"))
    x = np.random.default_rng(0).integers(0, 2, (130, nc.n_inputs)).astype(np.uint8)
    vectors = tmp_path / "v.txt"
    vectors.write_text("# one vector per line\n" + "\n".join("".join(map(str, r)) for r in x) + "\n\n")
    proc = cli("circuit", "eval", str(LOCAL / "int2float.aig"), "--vectors", str(vectors))
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    want = evaluate_outputs(nc, x)
    assert len(rows) == 130 and all(r["inputs"] == "".join(map(str, v)) for r, v in zip(rows, x))
    assert all([r["outputs"][n] for n in nc.output_names] == list(w) for r, w in zip(rows, want))
    rows = [json.loads(line) for line in cli("circuit", "eval", str(LOCAL / "int2float.aig"), "--random", "70",
                                             "--seed", "5").stdout.splitlines()]
    got_x = np.array([[int(c) for c in r["inputs"]] for r in rows], dtype=np.uint8)
    assert len(rows) == 70 and all([r["outputs"][n] for n in nc.output_names] == list(w)
                                   for r, w in zip(rows, evaluate_outputs(nc, got_x)))


def test_bad_vectors_and_flag_combinations_exit_2(tmp_path):
    vectors = tmp_path / "v.txt"
    vectors.write_text("00000000000\n0000x000000\n")
    proc = cli("circuit", "eval", str(LOCAL / "int2float.aig"), "--vectors", str(vectors))
    assert proc.returncode == 2 and f"{vectors}:2:5:" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("circuit", "eval", str(LOCAL / "int2float.aig"), "--random", "3", "--inputs", "0" * 11)
    assert proc.returncode == 2 and "exactly one of" in proc.stderr
    proc = cli("circuit", "convert", str(LOCAL / "ctrl.aig"), str(tmp_path / "out.v"))
    assert proc.returncode == 2 and "not supported yet" in proc.stderr and not (tmp_path / "out.v").exists()
    (tmp_path / "file").write_text("")
    proc = cli("circuit", "convert", str(LOCAL / "ctrl.aig"), str(tmp_path / "file" / "out.bench"))
    assert proc.returncode == 2 and "cannot write" in proc.stderr and "Traceback" not in proc.stderr


SEED_TEXT = {"blif": (LOCAL / "ctrl.blif").read_text()[:900] + "\n.end\n",
             "v": "module top ( a , b , c , y , z );\n  input a , b , c ;\n  output y , z ;\n  wire n1 ;\n"
                  "  assign n1 = a & ~( b | c ) ;\n  assign y = n1 ^ 1'b1 ;\n  assign z = \\b  ;\nendmodule\n"}
SEED_AIG = (LOCAL / "int2float.aig").read_bytes()


@settings(max_examples=150, deadline=None)
@given(fmt=st.sampled_from(("blif", "v", "aig")), data=st.data())
def test_fuzzed_netlists_give_one_located_error_or_a_circuit(tmp_path_factory, fmt, data):
    from grammar.errors import InputError

    if fmt == "aig":
        raw = bytearray(SEED_AIG)
        for _ in range(data.draw(st.integers(1, 4))):
            pos = data.draw(st.integers(0, len(raw) - 1))
            op = data.draw(st.sampled_from(("flip", "cut", "insert")))
            if op == "flip":
                raw[pos] = data.draw(st.integers(0, 255))
            elif op == "cut":
                del raw[pos:]
                if not raw:
                    raw = bytearray(b"a")
            else:
                raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=4))
        content = bytes(raw)
    else:
        text = SEED_TEXT[fmt]
        for _ in range(data.draw(st.integers(1, 4))):
            pos = data.draw(st.integers(0, len(text)))
            chunk = data.draw(st.text(alphabet="().=,;#\\\n -~&|^01abxyn[]", min_size=1, max_size=5))
            text = text[:pos] + chunk + text[pos + data.draw(st.integers(0, 3)):]
        content = text.encode()
    path = tmp_path_factory.mktemp("fz") / f"f.{fmt}"
    path.write_bytes(content)
    try:
        normalize(load_netlist(path))
    except InputError as err:
        assert err.loc is not None and err.loc.path == str(path)
        assert err.loc.line > 0 or err.loc.byte is not None or "cannot read" in err.message


def test_an_unproved_optimisation_exits_3_and_uses_nothing(tmp_path, monkeypatch, capsys):
    """If sweeping cannot finish the proof, --optimize must not hand the construction an unproved circuit."""
    import formal.aig
    from bridge.commands.main import main as cli_main
    from formal.equivalence import Equivalence

    monkeypatch.setattr(formal.aig, "equivalent", lambda a, b, *rest: Equivalence("unknown", reason="budget"))
    rc = cli_main(["compile", str(LOCAL / "ctrl.aig"), "--optimize", "--out", str(tmp_path / "ck")])
    err = capsys.readouterr().err
    assert rc == 3 and "could not be proved equivalent" in err and "Traceback" not in err
    assert not (tmp_path / "ck").exists()


def test_compile_to_an_unwritable_place_exits_2(tmp_path):
    (tmp_path / "file").write_text("")
    proc = cli("compile", str(LOCAL / "ctrl.aig"), "--out", str(tmp_path / "file" / "ck"))
    assert proc.returncode == 2 and "cannot write the checkpoint" in proc.stderr and "Traceback" not in proc.stderr
