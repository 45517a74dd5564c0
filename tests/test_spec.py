import pytest
from helpers import ROOT, cli_json

from grammar.errors import InputError
from grammar.spec import parse_spec

SPECS = sorted((ROOT / "specs").glob("*.lark"))


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_every_shipped_spec_parses(path):
    spec = parse_spec(path)
    assert spec.name == path.stem


def test_cvp_spec_contents():
    spec = parse_spec(ROOT / "specs/cvp.lark")
    c = spec.construction
    assert (c.mode, c.precision.ebits, c.precision.sbits, c.key_scale, c.max_gates) == ("cvp", 5, 11, None, 16)
    assert [cl.lemma for cl in spec.claims] == ["retrieval", "gate_ffn", "readout", "composition", "end_to_end"]
    assert spec.claims[-1].get("max_gates") == 2
    assert (spec.random.instances, spec.random.seed) == (100, 0)
    assert spec.task.kind == "cvp" and spec.task.get("gates") == 16


def test_c17_spec_loads_its_netlist_relative_to_the_spec():
    spec = parse_spec(ROOT / "specs/c17.lark")
    assert spec.construction.mode == "thm33" and len(spec.circuit.gates) == 6


@pytest.mark.parametrize("override,check", [
    ({"key_scale": "1"}, lambda s: s.construction.key_scale == 1.0),
    ({"construction.ebits": "8", "sbits": "24"}, lambda s: s.construction.precision.sbits == 24),
    ({"max_gates": "32"}, lambda s: s.construction.max_gates == 32),
    ({"task.gates": "5"}, lambda s: s.task.get("gates") == 5),
    ({"seed": "7", "instances": "3"}, lambda s: (s.random.seed, s.random.instances) == (7, 3)),
    ({"claims.end_to_end.max_gates": "3"}, lambda s: s.claims[-1].get("max_gates") == 3),
    ({"mode": "thm33"}, None),
])
def test_every_parameter_can_be_overridden(override, check):
    if check is None:
        with pytest.raises(InputError, match="no 'circuit'"):
            parse_spec(ROOT / "specs/cvp.lark", override)
        return
    assert check(parse_spec(ROOT / "specs/cvp.lark", override))


def test_inline_circuit():
    spec = parse_spec("inline.lark", text="spec x circuit h { input a, b output s, c s = XOR(a, b) c = and(a, b) }")
    assert spec.circuit.outputs == ("s", "c") and spec.circuit.gates[1].op == "AND"
    assert spec.construction.mode == "thm33"


def test_spec_check_cli_json():
    out = cli_json("spec", "check", "specs/cvp.lark", "--override", "key_scale=1")
    assert out["key_scale"] == 1.0 and out["mode"] == "cvp"
