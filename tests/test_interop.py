"""Interoperability: constructions in TransformerLens (bit-identical logits, attention one-hot where the manifest
says), trained models through TransformerLens and Hugging Face GPT-2, and audits of models cotproof did not train."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import ROOT, cli

from bridge.export import load_source
from bridge.manifest import attention_targets, manifest
from grammar.normalize import normalize
from neural import checkpoint, cvp
from neural.construction.construct import build_cvp, build_thm33
from neural.construction.execute import cvp_teacher_forcing, thm33_teacher_forcing
from neural.construction.fp import IEEE_FORMATS, FPFormat
from neural.model import Decoder
from neural.tlens import load_transformer_lens, save_transformer_lens, to_transformer_lens

FP32 = FPFormat(*IEEE_FORMATS["float32"])
NETLISTS = ("c17.bench", "full_adder.aag", "rca4.bench", "ctrl.aig", "int2float.aig", "c499.bench", "c880.bench")


def _random_netlist(n_inputs: int, n_gates: int, seed: int):
    from bridge.benchmarks.gen import random_circuit

    return normalize(random_circuit(n_inputs, n_gates, seed=seed))


def _netlist(name: str):
    from grammar.netlist import load_netlist

    return normalize(load_netlist(str(ROOT / "circuits" / name)))


def _thm33_case(nc, fmt=FP32, rows: int = 6, seed: int = 0):
    model = build_thm33(nc, fmt)
    bits = np.random.default_rng(seed).integers(0, 2, (rows, nc.n_inputs))
    return model, nc, thm33_teacher_forcing(nc, bits).tokens


def _cvp_case(max_gates: int, fmt=FP32, rows: int = 12, seed: int = 0):
    model = build_cvp(max_gates, fmt)
    rng = np.random.default_rng(seed)
    circuits = [cvp.random_circuit(rng, int(rng.integers(1, max_gates + 1))) for _ in range(rows)]
    return model, None, cvp_teacher_forcing(circuits, max_gates).tokens


CASES = {
    **{f"random-{n}x{g}-{s}": (lambda n=n, g=g, s=s: _thm33_case(_random_netlist(n, g, s), seed=s))
       for n, g, s in ((3, 5, 0), (6, 40, 1), (12, 200, 2))},
    **{f"netlist-{name}": (lambda name=name: _thm33_case(_netlist(name))) for name in NETLISTS},
    "random-F(5,11)": lambda: _thm33_case(_random_netlist(5, 30, 3), FPFormat(5, 11)),
    "cvp-4": lambda: _cvp_case(4),
    "cvp-16": lambda: _cvp_case(16),
    "cvp-8-F(5,11)": lambda: _cvp_case(8, FPFormat(5, 11)),
}


def _logits_and_patterns(bridge, tokens):
    logits, cache = bridge.run_with_cache(torch.as_tensor(tokens))
    n_layers = bridge.cfg.n_layers
    return logits, [cache[f"blocks.{i}.attn.hook_pattern"] for i in range(n_layers)]


@pytest.mark.parametrize("case", sorted(CASES))
def test_constructions_in_transformer_lens_are_bit_identical_and_one_hot_where_the_manifest_says(case):
    model, nc, tokens = CASES[case]()
    decoder = Decoder.from_arrays(model.config, model.weights)
    bridge = to_transformer_lens(decoder)
    with torch.inference_mode():
        ours, _ = decoder(torch.as_tensor(tokens))
        theirs, patterns = _logits_and_patterns(bridge, tokens)
    assert ours.dtype == theirs.dtype == torch.float32
    assert torch.equal(ours, theirs), f"largest difference {(ours - theirs).abs().max().item()}"
    targets = attention_targets(manifest(model, nc, {"status": "not run"}), tokens)
    claimed = 0
    for (layer, head), target in targets.items():
        b, q = np.nonzero(target >= 0)
        at = patterns[layer][b, head, q, target[b, q]]
        assert torch.all(at == 1.0), f"L{layer}H{head}: mass {at.min().item()} at a manifest target"
        claimed += len(q)
    assert claimed >= tokens.shape[0] * (tokens.shape[1] - nc.n_inputs if nc else tokens.shape[1])


def test_a_wrong_manifest_target_is_caught():
    """The check above can fail: move one claimed target and the attention there is 0."""
    model, nc, tokens = _thm33_case(_random_netlist(4, 10, 0))
    doc = manifest(model, nc, {"status": "not run"})
    first = doc["heads"][0]["at_position"]
    p = next(iter(first))
    first[p] = (first[p] + 1) % (int(p) + 1)
    bridge = to_transformer_lens(Decoder.from_arrays(model.config, model.weights))
    with torch.inference_mode():
        _, patterns = _logits_and_patterns(bridge, tokens)
    target = attention_targets(doc, tokens)[(0, 0)]
    assert (patterns[0][:, 0, int(p), target[0, int(p)]] == 0).all()


def test_export_writes_a_loadable_bridge_and_a_proved_manifest(tmp_path):
    proc = cli("export", "circuits/c17.bench", "--to", "transformer-lens", str(tmp_path / "c17"), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["proof"] == "proved"
    m = json.loads((tmp_path / "c17/manifest.json").read_text())
    # the compiled checkpoint stores its circuit, so exporting it exports the same model (and the same proof, which
    # is not run a second time here)
    assert cli("compile", "circuits/c17.bench", "--out", str(tmp_path / "compiled")).returncode == 0
    again = load_source(str(tmp_path / "compiled"))
    save_transformer_lens(again.cfg, again.arrays, tmp_path / "again", again.vocab)
    assert (tmp_path / "again/model.safetensors").read_bytes() == (tmp_path / "c17/model.safetensors").read_bytes()
    assert manifest(again.construction, again.circuit, {})["circuit"] == m["circuit"]
    bridge, _ = load_transformer_lens(tmp_path / "c17")
    assert m["proof"]["status"] == "proved" and m["proof"]["lemmas"] and m["circuit"]["name"]
    assert {f["field"] for f in m["residual"]} >= {"pos", "a", "b", "out"}
    assert {g["computes"] for g in m["ffn"]["groups"]} >= {"AND", "OR", "XOR"}
    model, _, tokens = _thm33_case(_netlist("c17.bench"))
    with torch.inference_mode():
        ours, _ = Decoder.from_arrays(model.config, model.weights)(torch.as_tensor(tokens))
        assert torch.equal(ours, bridge(torch.as_tensor(tokens)))


def _check_manifest_against_attention(bridge, doc: dict, rng) -> int:
    """Sample CoT sequences for the manifest's model (from its own circuit or CVP format), run them through the
    TransformerLens bridge, and check its attention is exactly one-hot at every claimed target. Returns the number
    of queries checked."""
    if doc["mode"] == "cvp":
        n = doc["circuit"]["max_gates"]
        tokens = cvp_teacher_forcing([cvp.random_circuit(rng, n) for _ in range(4)], n).tokens
    else:
        bits = rng.integers(0, 2, (4, len(doc["circuit"]["inputs"])))
        tokens = _evaluate_from_manifest(doc, [[int(x) for x in row] for row in bits])
    with torch.inference_mode():
        _, patterns = _logits_and_patterns(bridge, tokens)
    checked = 0
    for (layer, head), target in attention_targets(doc, tokens).items():
        b, q = np.nonzero(target >= 0)
        assert torch.all(patterns[layer][b, head, q, target[b, q]] == 1.0), (doc["circuit"], layer, head)
        checked += len(q)
    return checked


def test_every_suite_manifest_matches_its_models_attention():
    """Every member of the suite, built as ``export --suite`` builds it; the proofs are the slow test below."""
    from bridge.export import _suite_source, suite_members

    rng = np.random.default_rng(0)
    members = suite_members()
    assert len(members) >= 10
    for name, spec in members:
        source, _ = _suite_source(spec)
        doc = manifest(source.construction, source.circuit, {"status": "not run"})
        bridge = to_transformer_lens(Decoder.from_arrays(source.cfg, source.arrays))
        assert _check_manifest_against_attention(bridge, doc, rng) > 0, name


@pytest.mark.slow  # eleven proofs, about two minutes
def test_the_suite_export_proves_every_member_and_matches_its_manifests(tmp_path):
    proc = cli("export", "--suite", str(tmp_path / "suite"), "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((tmp_path / "suite/suite.json").read_text())
    assert len(rows) >= 10 and all(r["proof"] == "proved" for r in rows)
    assert {r["mode"] for r in rows} == {"thm33", "cvp"}
    assert "| cvp-16 |" in (tmp_path / "suite/README.md").read_text()
    rng = np.random.default_rng(0)
    for row in rows:
        bridge, _ = load_transformer_lens(tmp_path / "suite" / row["name"])
        doc = json.loads((tmp_path / "suite" / row["name"] / "manifest.json").read_text())
        assert doc["proof"]["status"] == "proved"
        _check_manifest_against_attention(bridge, doc, rng)


def _evaluate_from_manifest(doc: dict, rows: list[list[int]]) -> np.ndarray:
    """The CoT sequence of each input row, computed from the manifest's circuit alone (its last token cut)."""
    from grammar.ir import TRUTH_TABLES

    out = []
    for values in rows:
        values = list(values)
        for g in doc["circuit"]["gates"]:
            a, b = (values[i] for i in g["inputs"])
            values.append(TRUTH_TABLES[g["op"]][2 * a + b])
        out.append(values[:-1])
    return np.array(out)


# ---- trained models ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_s5(tmp_path_factory):
    """A tiny S5 CoT model. d_model 256 >= its 241 tokens - 1, so GPT-2's folded unembedding bias is exact."""
    from neural.learning.runs import TrainConfig
    from neural.learning.train import train

    d = tmp_path_factory.mktemp("s5") / "ck"
    cfg = TrainConfig(task="s5", task_params=(("length", 3),), setting="cot", layers=1, d_model=256, heads=4,
                      d_ff=256, steps=150, batch_size=64, seed=0, log_every=50)
    train(cfg, d, progress=False)
    return d


def _audit(*args):
    proc = cli("audit", *args, "--samples", "150", "--json")
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout)


SAME = ("accuracy", "steps_checked", "unsound_steps", "samples_with_unsound_steps", "errors_by_position")


def test_a_trained_model_round_trips_through_hf_gpt2(tiny_s5, tmp_path):
    out = tmp_path / "hf"
    proc = cli("export", str(tiny_s5), "--to", "hf-gpt2", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["unembedding_bias"]["max_logit_error"] < 1e-5
    original = _audit(str(tiny_s5))
    exported = _audit(str(out), "--format", "hf", "--vocab", str(out / "vocab.json"))
    assert {k: exported[k] for k in SAME} == {k: original[k] for k in SAME}
    assert exported["attention"]["alignment"] == pytest.approx(original["attention"]["alignment"], abs=1e-4)
    from neural.hf import load_causal_lm

    logits, _, _ = load_causal_lm(out)
    ck = checkpoint.load(tiny_s5)
    tokens = np.random.default_rng(0).integers(0, ck.config.vocab_size, (4, ck.config.max_len))
    with torch.inference_mode():
        ours, _ = Decoder.from_arrays(ck.config, ck.weights)(torch.as_tensor(tokens))
    diff = ours - logits(tokens)
    assert (diff - diff.mean(-1, keepdim=True)).abs().max().item() < 1e-5  # equal up to a constant per position


def test_a_trained_model_round_trips_through_transformer_lens(tiny_s5, tmp_path):
    from bridge.audit import audit_callable
    from neural.learning.evaluation import load_trained

    model, task, _, meta = load_trained(tiny_s5)
    proc = cli("export", str(tiny_s5), "--to", "transformer-lens", str(tmp_path / "tl"))
    assert proc.returncode == 0, proc.stderr
    bridge, doc = load_transformer_lens(tmp_path / "tl")
    assert doc["task"] == meta["task"] and doc["setting"] == "cot"
    tokens = torch.as_tensor(task.batch(np.random.default_rng(0), 32, "cot", "test").tokens)
    with torch.inference_mode():
        ours, _ = model(tokens)
        assert (ours - bridge(tokens)).abs().max().item() < 1e-5

    def attention(ids):
        _, cache = bridge.run_with_cache(ids)
        return [cache[f"blocks.{i}.attn.hook_pattern"] for i in range(bridge.cfg.n_layers)]

    exported = audit_callable(bridge, doc["task"], {t: i for i, t in enumerate(doc["vocab"])}, samples=150,
                              attention=attention)
    original = _audit(str(tiny_s5))
    assert {k: exported[k] for k in SAME} == {k: original[k] for k in SAME}
    assert exported["attention"]["alignment"] == pytest.approx(original["attention"]["alignment"], abs=1e-4)


def test_certify_reads_the_exported_model_as_the_original(tiny_s5, tmp_path):
    """The same draws through cotproof's trie and through transformers' GPT-2: the same verdict on each."""
    out = tmp_path / "hf"
    assert cli("export", str(tiny_s5), "--to", "hf-gpt2", str(out)).returncode == 0
    runs = [cli("certify", str(tiny_s5), "--samples", "300", "--json"),
            cli("certify", str(out), "--format", "hf", "--vocab", str(out / "vocab.json"), "--samples", "300",
                "--json")]
    original, exported = (json.loads(p.stdout) for p in runs)
    assert runs[0].returncode == runs[1].returncode
    assert exported["samples"]["unsound_drawn"] == original["samples"]["unsound_drawn"]
    assert [e["index"] for e in exported["counterexamples"]] == [e["index"] for e in original["counterexamples"]]
    assert exported["weights_sha256"] and exported["weights_sha256"] != original["weights_sha256"]


# ---- audits of models trained elsewhere --------------------------------------------------------------------

def _oracle(task, ids: np.ndarray, wrong_step: int | None):
    """A hand-written model in its own ids (the task's shuffled): the right next state after every prefix, except
    a wrong one at ``wrong_step``."""
    to_task = np.full(ids.max() + 1, -1)
    to_task[ids] = np.arange(len(ids))

    def fn(tokens):
        seq = to_task[np.asarray(tokens)]
        B, T = seq.shape
        step = T - (task.n_prompt + 1)  # the CoT step the last position predicts
        logits = np.zeros((B, T, ids.max() + 1), dtype=np.float32)
        if 0 <= step < task.n_steps:
            prompts, states = seq[:, :task.n_prompt], seq[:, task.n_prompt + 1:]
            padded = np.concatenate([states, np.zeros((B, task.n_steps - step), dtype=states.dtype)], axis=1)
            right = task.expected_states(prompts, padded)[:, step]
            if step == wrong_step:
                right = np.where(right == task.index[task.vocab[-1]], right - 1, right + 1)
            logits[np.arange(B), -1, ids[right]] = 1.0
        return logits

    return fn


@pytest.mark.parametrize("wrong_step", [None, 3])
def test_audit_callable_flags_the_step_a_hand_written_model_gets_wrong(wrong_step):
    from bridge.audit import audit_callable
    from neural.learning.tasks import make_task

    task = make_task("modadd", length=6, modulus=7)
    ids = np.random.default_rng(0).permutation(len(task.vocab) + 5)[:len(task.vocab)]  # not the task's own ids
    vocab = {t: int(i) for t, i in zip(task.vocab, ids)}
    r = audit_callable(_oracle(task, ids, wrong_step), {"kind": "modadd", "length": 6, "modulus": 7}, vocab,
                       samples=40)
    if wrong_step is None:
        assert r["unsound_steps"] == 0 and r["accuracy"] == 1.0 and r["first_unsound"] is None
    else:
        assert r["first_unsound"]["step"] == 3 and r["errors_by_position"][3] == 40
        assert r["unsound_steps"] == 40  # a wrong state, then sound steps from it
    assert r["attention"]["alignment"] is None and r["precision"] == {}


def test_a_vocabulary_without_a_task_token_is_refused(tiny_s5, tmp_path):
    out = tmp_path / "hf"
    assert cli("export", str(tiny_s5), "--to", "hf-gpt2", str(out)).returncode == 0
    doc = json.loads((out / "vocab.json").read_text())
    del doc["tokens"]["01234"]
    bad = tmp_path / "vocab.json"
    bad.write_text(json.dumps(doc))
    proc = cli("audit", str(out), "--format", "hf", "--vocab", str(bad))
    assert proc.returncode == 2 and "lacks 1 of the s5 task's tokens: '01234'" in proc.stderr
    assert "Traceback" not in proc.stderr
    bad.write_text('{"task": {"kind": "s5", "length": 3},\n "tokens": {"=": 0,}}')
    proc = cli("audit", str(out), "--format", "hf", "--vocab", str(bad))
    assert proc.returncode == 2 and f"{bad}:2:" in proc.stderr
    assert cli("audit", str(out), "--format", "hf").returncode == 2  # no --vocab


def test_exports_that_cannot_be_made_say_why(tmp_path, tiny_s5):
    cases = [
        (("circuits/c17.bench", "--to", "hf-gpt2", str(tmp_path / "a")), "LayerNorm"),
        (("circuits/c17.bench", "--to", "onnx", str(tmp_path / "b")), "not a format"),
        (("circuits/c17.bench",), "--to FORMAT OUT"),
        (("--suite", str(tmp_path / "s"), "--to", "hf-gpt2", str(tmp_path / "c")), "takes no SOURCE"),
        ((str(tiny_s5), "--to", "hf-gpt2", str(tmp_path / "f"), "--override", "ebits=8"), "a checkpoint's are fixed"),
    ]
    compiled = tmp_path / "thm33"
    assert cli("compile", "circuits/c17.bench", "--out", str(compiled)).returncode == 0
    doc = json.loads((compiled / "config.json").read_text())
    edited = tmp_path / "edited"
    assert cli("compile", "circuits/c17.bench", "--out", str(edited)).returncode == 0
    doc["construction"]["circuit_gates"]["gates"][0][1] = 99  # a gate reading a node that comes after it
    (edited / "config.json").write_text(json.dumps(doc))
    cases.append(((str(edited), "--to", "transformer-lens", str(tmp_path / "e")), "not a two-input gate over"))
    del doc["construction"]["circuit_gates"]  # as an older cotproof wrote it
    (compiled / "config.json").write_text(json.dumps(doc))
    cases.append(((str(compiled), "--to", "transformer-lens", str(tmp_path / "d")), "does not store its circuit"))
    for args, words in cases:
        proc = cli("export", *args)
        assert proc.returncode == 2 and words in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_the_vocabulary_error_names_the_file_and_the_tokens(tmp_path):
    from bridge.foreign import token_ids
    from grammar.errors import InputError
    from neural.learning.tasks import make_task

    task = make_task("modadd", length=4, modulus=7)
    tokens = {t: i for i, t in enumerate(task.vocab) if t not in ("3", "=")}
    with pytest.raises(InputError) as info:
        token_ids(task, tokens, "v.json")
    assert str(info.value) == ("v.json: error: the vocabulary lacks 2 of the modadd task's tokens: '=', '3'\n"
                               f"  expected: an id for each of the task's {len(task.vocab)} tokens")


def test_the_readme_nnsight_example_runs(tiny_s5, tmp_path):
    """The README's nnsight snippet, as written, on a real checkpoint (from a file: nnsight reads its source)."""
    import runpy

    readme = (ROOT / "README.md").read_text()
    block = readme.split("**nnsight**", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    ck = checkpoint.load(tiny_s5)
    script = tmp_path / "example.py"
    script.write_text(block.replace('"runs/s5"', repr(str(tiny_s5))))
    scope = runpy.run_path(str(script), init_globals={"tokens": torch.zeros(2, 5, dtype=torch.long)})
    assert tuple(scope["heads"].shape) == (2, 5, ck.config.d_model)
    assert tuple(scope["logits"].shape) == (2, 5, ck.config.vocab_size)
