"""bridge.commands.verifying: every spec proves; every sabotage is refuted with a counterexample that replays in
neural.construction.fp."""
from __future__ import annotations

import dataclasses
import json
import re

import pytest
import z3
from helpers import ROOT, cli

from bridge.proof import prove_model
from bridge.testing import assert_proved, assert_refuted
from formal.query import PROVED_FORMULAS
from grammar.netlist import load_netlist
from grammar.normalize import normalize
from neural.construction.construct import build_cvp, build_thm33
from neural.construction.fp import FPFormat

F511 = FPFormat(5, 11)
CLAIMS = {"retrieval": {"unrolled_k": 3}, "gate_ffn": {}, "readout": {}, "composition": {}}
SPECS = sorted(p.name for p in (ROOT / "specs").glob("*.lark"))


@pytest.mark.parametrize("spec", SPECS)
def test_every_shipped_spec_is_proved(spec):
    report = assert_proved(ROOT / "specs" / spec, random__instances=20)
    assert {r.name for r in report.lemmas} >= {"embedding", "retrieval", "gate_ffn", "readout", "composition"}


def test_cold_keys_are_refuted_and_replayed():
    report = assert_refuted(ROOT / "specs/cvp.lark", lemma="retrieval", key_scale=1)
    cex = report.counterexample
    assert cex["replay"]["head_output"] != 1.0 and cex["model_failure"] is not None


def test_a_smaller_but_still_cold_key_scale_is_proved():
    """c = 20 in F(5,11): a mismatch scores -40 <= T = -17.34, so the weights are still exact and must prove (end to
    end over circuits of one gate: what c changes is retrieval, which the lemma covers at every size)."""
    assert_proved(ROOT / "specs/cvp.lark", key_scale=20, random__instances=10, claims__end_to_end__max_gates=1)


def _c17():
    return normalize(load_netlist(ROOT / "circuits/c17.bench"))


def _mutate(model, name, index, fn):
    weights = {k: v.copy() for k, v in model.weights.items()}
    weights[name][index] = fn(weights[name][index])
    return dataclasses.replace(model, weights=weights)


SABOTAGE = [
    # (description, mode, tensor, index, mutation, lemma expected to refute)
    ("FFN unit bias off by one", "thm33", "blocks.0.ffn.fc1.bias", (0,), lambda x: x + 1, "gate_ffn"),
    ("FFN output weight doubled", "cvp", "blocks.0.ffn.fc2.weight", None, lambda x: 2 * x, "gate_ffn"),
    ("readout sign flipped", "thm33", "head.weight", (1,), lambda x: -x, "readout"),
    ("value weight halved", "thm33", "blocks.0.attn.v.weight", (0,), lambda x: x * 0.5, "retrieval"),
    ("key scale entry dropped", "cvp", "blocks.0.attn.k.weight", (0,), lambda x: 0 * x, "retrieval"),
    ("query bias doubled", "thm33", "blocks.0.attn.q.bias", (1,), lambda x: 2 * x, "retrieval"),
    ("position code flipped", "thm33", "pos_emb.weight", (3,), lambda x: -x, "embedding"),
    ("value query of @1 wrong", "cvp", "tok_emb.weight", (9 + 8,), lambda x: -x, "embedding"),  # @1
    # the token 1's out weight 0 (row 16 of the 8-gate vocabulary; out is the last column): where a value is next
    # and it is 1, the right token only ties with 0, which the readout's value-role queries must catch
    ("CVP value weight zeroed", "cvp", "head.weight", (16, -1), lambda x: 0 * x, "readout"),
    # row 23 of attn.o copies head dim 0 to its field: doubled, the output projection's replay shows 2 for 1
    ("attention output weight doubled", "thm33", "blocks.0.attn.o.weight", (23, 0), lambda x: 2 * x, "retrieval"),
]


@pytest.mark.parametrize("what,mode,name,index,fn,lemma", SABOTAGE, ids=[s[0] for s in SABOTAGE])
def test_sabotage_is_refuted_with_replayed_counterexample(what, mode, name, index, fn, lemma):
    nc = _c17()
    model = build_thm33(nc, F511) if mode == "thm33" else build_cvp(8, F511)
    if index is None:  # the output unit's row of fc2
        index = (model.layout.col(model.ffn.output_field),)
    bad = _mutate(model, name, index, fn)
    report = prove_model(bad, nc if mode == "thm33" else None, CLAIMS)
    assert report.status == "refuted", report.to_json()
    assert report.counterexample["lemma"] == lemma, report.counterexample
    assert report.counterexample["replayed"], report.counterexample
    if report.counterexample["kind"] == "output":  # the component replay itself reproduced it
        replay = report.counterexample["replay"]  # the witness's head dim, doubled, where it should be copied
        assert replay["replayed"] and replay["output"] == 2 * replay["expected"] != 0


def test_a_harmless_mutant_is_refuted_but_not_replayed():
    """Dropping a query bias makes the match score +c, not 0: the lemma's invariant is false, but [exp(c)] = B,
    and B*v/B = v exactly for v in {-1, 0, 1}, so the model is still exact. The report must say the replay did
    not reproduce a failure rather than claim one."""
    nc = _c17()
    bad = _mutate(build_thm33(nc, F511), "blocks.0.attn.q.bias", (1,), lambda x: 0 * x)
    report = prove_model(bad, nc, CLAIMS)
    assert report.status == "refuted"
    assert report.counterexample["replayed"] is False and report.counterexample["model_failure"] is None


def test_cli_contract_proved_refuted_bad_input_unknown(tmp_path):
    ok = cli("verify", "specs/c17.lark", "--json", "--override", "random.instances=5")
    assert ok.returncode == 0, ok.stderr
    payload = json.loads(ok.stdout)
    assert payload["status"] == "proved" and payload["counterexample"] is None
    assert all(set(lem) >= {"name", "status", "seconds"} for lem in payload["lemmas"])

    bad = cli("verify", "specs/c17.lark", "--json", "--override", "key_scale=1", "--override", "random.instances=5")
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["counterexample"]["replayed"] is True

    missing = cli("verify", "specs/nope.lark")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr

    PROVED_FORMULAS.clear()  # these queries were just proved: asked again, z3 must answer, in a time it cannot meet
    slow = cli("verify", "specs/c17.lark", "--timeout", "0.001", "--json", "--override", "random.instances=0")
    assert slow.returncode == 3 and json.loads(slow.stdout)["status"] == "unknown"


def test_verify_module_entry_point_and_netlist_argument():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "bridge.verify", "circuits/rca4.bench", "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"] == "proved"


def test_proof_path_never_imports_torch():
    """Without --ieee, torch is imported only when the bounded checks are large enough to pay for it."""
    import subprocess
    import sys

    code = ("import sys; from bridge.verify import main; rc = main(['specs/c17.lark', '--json', '--override', "
            "'random.instances=2']); assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr


def test_emit_smt2_writes_exactly_the_queries_z3_answered_and_each_resolves_unsat(tmp_path, monkeypatch):
    """``verify --emit-smt2`` on a spec whose unrolled bound is not the default: the hashes of the files written are
    the hashes of the queries the solver was given, one for one, and a fresh solver reading a file says unsat."""
    import hashlib

    from formal import obligations
    from formal.query import to_smt2

    solved = []
    real_solve = obligations.solve

    def recording_solve(item, timeout_s):
        outcome = real_solve(item, timeout_s)
        if outcome.query is not None:
            solved.append(hashlib.sha256(to_smt2(item).encode()).hexdigest())
        return outcome

    monkeypatch.setattr(obligations, "solve", recording_solve)
    proc = cli("verify", "specs/c17.lark", "--emit-smt2", str(tmp_path), "--override", "random.instances=0",
               "--override", "claims.retrieval.unrolled_k=2")
    assert proc.returncode == 0, proc.stderr
    files = sorted(tmp_path.glob("*.smt2"))
    assert len(files) >= 10 and sorted(hashlib.sha256(p.read_bytes()).hexdigest() for p in files) == sorted(solved)
    assert any(p.name.endswith("_k_2.smt2") for p in files)  # the unrolled query at the spec's bound, not k = 4
    for f in files[:6]:
        fresh = z3.Solver()
        fresh.from_file(str(f))
        assert fresh.check() == z3.unsat, f.name


def test_exported_smt2_is_strict_and_bitwuzla_proves_every_file(tmp_path):
    """Every exported file parses in bitwuzla (strict SMT-LIB 2.6: no one-argument 'and') and it says unsat to
    each; before the export was made strict, bitwuzla rejected 22 of the 45 files of specs/cvp.lark. (cvc5 is
    asked the same questions in test_cross_check_takes_several_solvers_and_refuses_unknown_ones.)"""
    pytest.importorskip("bitwuzla")
    proc = cli("verify", "specs/cvp.lark", "--emit-smt2", str(tmp_path), "--cross-check", "bitwuzla",
               "--timeout", "20", "--json", "--override", "random.instances=0")
    assert proc.returncode == 0, proc.stderr
    cc = json.loads(proc.stdout)["cross_check"]
    files = sorted(tmp_path.glob("*.smt2"))
    assert len(files) == cc["queries"] >= 40 and cc["disagreements"] == [] and cc["unanswered"] == []
    assert set(cc["answers"].values()) == {"unsat"}
    assert not any(re.search(r"\((and|or) [^()\s]+\)", f.read_text()) for f in files)


def test_cross_check_takes_several_solvers_and_refuses_unknown_ones():
    pytest.importorskip("bitwuzla")
    pytest.importorskip("cvc5")
    proc = cli("verify", "specs/c17.lark", "--cross-check", "cvc5,bitwuzla", "--timeout", "2", "--json",
               "--override", "random.instances=0", "--override", "claims.retrieval.unrolled_k=2")
    cc = json.loads(proc.stdout)["cross_check"]
    unrolled = [f for f in cc["solvers"]["bitwuzla"]["answers"] if "unrolled" in f]
    assert unrolled and all(f.endswith("_k_2.smt2") for f in unrolled)  # the queries z3 answered, not k = 4
    assert proc.returncode == 0 and set(cc["solvers"]) == {"cvc5", "bitwuzla"} and cc["disagreements"] == []
    for one in cc["solvers"].values():  # each solver answered unsat to every query it answered in time
        assert one["queries"] >= 10 and one["disagreements"] == []
        assert sum(a == "unsat" for a in one["answers"].values()) >= one["queries"] - len(one["unanswered"]) > 0
    bad = cli("verify", "specs/c17.lark", "--cross-check", "z4")
    assert bad.returncode == 2 and "unknown solver 'z4'" in bad.stderr


@pytest.mark.parametrize("ieee", [False, True])
@pytest.mark.parametrize("mode", ["thm33", "cvp"])
def test_every_query_has_a_kind_and_every_kind_replays_itself_or_says_why(mode, ieee):
    from formal.obligations import SOLVER_LEMMAS, lemma_items
    from formal.witness import REASONS, REPLAYABLE, Kind, witness

    assert set(REPLAYABLE) | set(REASONS) == set(Kind) and not set(REPLAYABLE) & set(REASONS)
    assert all(witness(k, {}).kind is k for k in Kind)
    nc = normalize(load_netlist(ROOT / "circuits/c17.bench"))
    model = build_thm33(nc, FPFormat(5, 11)) if mode == "thm33" else build_cvp(3, FPFormat(5, 11))
    items = [q for name in SOLVER_LEMMAS for q in lemma_items(model, name, 2, ieee)]
    kinds = {q.kind for q in items}
    assert None not in kinds and kinds, [q.name for q in items if q.kind is None][:5]
    for kind in REASONS:  # every other kind replays itself; these say why they cannot: never silence
        assert len(REASONS[kind]) > 20
    why = witness(Kind.SOFTMAX, {}).replay(model)
    assert why["replayed"] is False and why["why"].startswith("no component replay: ")
    assert witness(Kind.SOFTMAX, {"x": 1}).to_json() == {"kind": "softmax", "x": 1}


def test_heads_with_the_same_weights_share_one_unrolled_query_and_a_changed_head_gets_its_own():
    from formal.query import solve
    from formal.retrieval import retrieval_queries
    from neural.config import Keys

    model = build_cvp(16, FPFormat(5, 11))
    live = [[p.layer, p.head] for p in model.heads if p.query_field is not None]
    shared = [q for q in retrieval_queries(model, 2) if ".unrolled[" in q.name]
    assert len(live) > 1 and [q.context["heads"] for q in shared] == [live]
    weights = {k: v.copy() for k, v in model.weights.items()}
    key = Keys.weight(Keys.attn(0, "k"))
    weights[key][model.config.d_head] /= 64  # head 1's key dim 0 (bit 0): a match no longer scores 0
    split = [q for q in retrieval_queries(dataclasses.replace(model, weights=weights), 2) if ".unrolled[" in q.name]
    assert sorted(len(q.context["heads"]) for q in split) == [1, len(live) - 1]
    alone = next(q for q in split if q.context["heads"] == [[0, 1]])
    assert solve(alone, 60).status == "refuted"
