"""``run`` checks a whole trace in one teacher-forced pass. Against token-by-token greedy decoding and the F(e,s)
reference, on random circuits and on ``circuits/``: the same tokens, bit for bit, sound or not."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from helpers import ROOT, circuits, in_process
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grammar.netlist import load_netlist
from grammar.normalize import normalize
from neural import cvp
from neural import model as decoder_module
from neural.config import Keys
from neural.construction.construct import build_cvp, build_thm33
from neural.construction.execute import ExecMode, cvp_teacher_forcing, run_cvp, run_thm33, session
from neural.construction.fp import FPFormat
from neural.decoding import greedy

F511 = FPFormat(5, 11)
FINITE = ExecMode("finite", F511)
FLOAT32 = ExecMode("ieee", F511, "float32")


def token_by_token_thm33(model, bits, mode):
    return greedy(session(model.config, model.weights, mode), np.asarray(bits, dtype=np.int64), model.n_gates)


def token_by_token_cvp(model, nc, bits, mode):
    prompt = cvp.lower(nc, bits).padded(model.max_gates).prompt()
    return greedy(session(model.config, model.weights, mode), prompt, model.cot_steps)


def random_bits(nc, seed=0):
    return np.random.default_rng(seed).integers(0, 2, nc.n_inputs).astype(np.uint8)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(circuits(max_inputs=5, max_gates=10), st.data())
def test_thm33_one_pass_equals_token_by_token_and_finite(circuit, data):
    nc = normalize(circuit)
    bits = np.array(data.draw(st.lists(st.integers(0, 1), min_size=nc.n_inputs, max_size=nc.n_inputs)))
    model = build_thm33(nc, F511)
    reference = token_by_token_thm33(model, bits, FINITE)
    for mode in (FINITE, FLOAT32):
        result = run_thm33(model, nc, bits, mode)
        assert result.path == "one-pass"
        assert np.array_equal(result.tokens, reference)
        assert np.array_equal(token_by_token_thm33(model, bits, mode), reference)


@pytest.mark.parametrize("name", ["c17.bench", "rca4.bench", "full_adder.aag", "ctrl.aig", "int2float.aig"])
def test_thm33_one_pass_on_real_circuits(name):
    nc = normalize(load_netlist(ROOT / "circuits" / name))
    model = build_thm33(nc, F511)
    bits = random_bits(nc)
    reference = token_by_token_thm33(model, bits, FINITE)
    one_pass = run_thm33(model, nc, bits, FLOAT32)
    assert one_pass.sound and one_pass.path == "one-pass"
    assert np.array_equal(one_pass.tokens, reference)
    assert np.array_equal(run_thm33(model, nc, bits, FINITE, fast=FLOAT32).tokens, reference)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(circuits(max_inputs=3, max_gates=4, max_fan_in=3), st.data())
def test_cvp_one_pass_equals_token_by_token_and_finite(circuit, data):
    nc = normalize(circuit)
    bits = np.array(data.draw(st.lists(st.integers(0, 1), min_size=nc.n_inputs, max_size=nc.n_inputs)))
    model = build_cvp(cvp.lower(nc, bits).size + data.draw(st.integers(0, 2)), F511)
    reference = token_by_token_cvp(model, nc, bits, FINITE)
    for mode in (FINITE, FLOAT32):
        result = run_cvp(model, nc, bits, mode)
        assert result.sound and result.path == "one-pass"
        assert np.array_equal(result.tokens, reference)


def unsound_mutant(model, run_reference):
    """The model with one FFN weight negated, the first such weight whose run is unsound after its first step (so
    the one-pass path has a correct prefix to check before it departs)."""
    key = Keys.weight(Keys.ffn(0, "fc2"))
    for row, col in zip(*np.nonzero(model.weights[key])):
        W = model.weights[key].copy()
        W[row, col] = -W[row, col]
        mutant = dataclasses.replace(model, weights={**model.weights, key: W})
        tokens, first_wrong = run_reference(mutant)
        if first_wrong is not None and first_wrong > 0:
            return mutant, tokens, first_wrong
    raise AssertionError("no FFN weight of this model makes an unsound run")


def test_mutated_thm33_model_is_caught_at_the_same_step_by_both_paths():
    nc = normalize(load_netlist(ROOT / "circuits" / "rca4.bench"))
    bits = random_bits(nc, 3)
    truth = run_thm33(build_thm33(nc, F511), nc, bits, FLOAT32).tokens

    def reference(m):
        tokens = token_by_token_thm33(m, bits, FLOAT32)
        wrong = np.flatnonzero(tokens != truth)
        return tokens, (int(wrong[0]) if wrong.size else None)

    mutant, tokens, first_wrong = unsound_mutant(build_thm33(nc, F511), reference)
    for mode in (FLOAT32, FINITE):
        result = run_thm33(mutant, nc, bits, mode)
        assert result.path == "one-pass+greedy" and result.departure == first_wrong
        assert not result.sound and result.first_unsound == first_wrong
        assert np.array_equal(result.tokens, token_by_token_thm33(mutant, bits, mode))
    assert np.array_equal(run_thm33(mutant, nc, bits, FLOAT32).tokens, tokens)
    # F(e,s) computed as float32: where float32 departs, F(e,s) itself decides the row (the arbiter)
    arbitrated = run_thm33(mutant, nc, bits, FINITE, fast=FLOAT32)
    assert arbitrated.arithmetic == str(FINITE) and arbitrated.departure == first_wrong
    assert np.array_equal(arbitrated.tokens, token_by_token_thm33(mutant, bits, FINITE))


def test_mutated_cvp_model_is_caught_at_the_same_step_by_both_paths():
    nc = normalize(load_netlist(ROOT / "circuits" / "c17.bench"))
    bits = random_bits(nc, 1)
    model = build_cvp(cvp.lower(nc, bits).size, F511)
    truth = cvp_teacher_forcing([cvp.lower(nc, bits)], model.max_gates).expected[0]

    def reference(m):
        tokens = token_by_token_cvp(m, nc, bits, FLOAT32)
        wrong = np.flatnonzero(tokens != truth)
        return tokens, (int(wrong[0]) if wrong.size else None)

    mutant, tokens, first_wrong = unsound_mutant(model, reference)
    result = run_cvp(mutant, nc, bits, FLOAT32)
    assert result.path == "one-pass+greedy" and result.departure == first_wrong and not result.sound
    assert np.array_equal(result.tokens, tokens)


def test_batch_rows_are_the_runs_alone():
    nc = normalize(load_netlist(ROOT / "circuits" / "rca4.bench"))
    model = build_thm33(nc, F511)
    batch = np.random.default_rng(5).integers(0, 2, (7, nc.n_inputs)).astype(np.uint8)
    together = run_thm33(model, nc, batch, FLOAT32)
    assert [r.tokens.tolist() for r in together] == [run_thm33(model, nc, b, FINITE).tokens.tolist() for b in batch]


def test_written_out_attention_equals_the_fused_kernel(monkeypatch):
    """Where no fused kernel takes the arguments, attention runs in written-out query blocks: on a constructed model
    the same features at every CoT step, bit for bit (the proofs say the order of summation cannot matter there;
    prompt rows that fetch nothing average their keys, and may round differently), and the same tokens."""
    import torch

    nc = normalize(load_netlist(ROOT / "circuits" / "int2float.aig"))
    model = build_thm33(nc, F511)
    bits = random_bits(nc, 2)
    net = decoder_module.Decoder.from_arrays(model.config, model.weights)
    sequence = torch.as_tensor(cvp_free_sequence(nc, bits))[None]
    steps = slice(nc.n_inputs - 1, -1)  # the positions whose argmax is a CoT step
    with torch.inference_mode():
        fused_features = net.features(sequence)[0][:, steps]
    fused = run_thm33(model, nc, bits, FLOAT32).tokens
    monkeypatch.setattr(decoder_module, "_fused_causal", lambda *a: None)
    monkeypatch.setattr(decoder_module.Attention, "QUERY_BLOCK", 16)
    with torch.inference_mode():
        assert torch.equal(net.features(sequence)[0][:, steps], fused_features)
    assert np.array_equal(run_thm33(model, nc, bits, FLOAT32).tokens, fused)


def random_decoder(seed: int, batch: int, length: int):
    """A randomly initialised trained-style decoder (LayerNorm, GELU: dense attention) and random tokens for it."""
    import torch

    from neural.config import ModelConfig

    torch.manual_seed(seed)
    net = decoder_module.Decoder(ModelConfig(vocab_size=11, max_len=length, d_model=32, n_layers=2, n_heads=4,
                                             d_head=8, d_ff=64, activation="gelu", layernorm=True)).eval()
    return net, torch.randint(0, 11, (batch, length))


def test_written_out_blocks_mask_as_the_fused_kernel_does(monkeypatch):
    """On a random model (dense attention, so a key seen too early or too late moves every output), the written-out
    blocks agree with the fused kernel to float32 rounding."""
    import torch

    net, tokens = random_decoder(seed=0, batch=3, length=100)
    with torch.inference_mode():
        fused = net.features(tokens)[0]
        monkeypatch.setattr(decoder_module, "_fused_causal", lambda *a: None)
        monkeypatch.setattr(decoder_module.Attention, "QUERY_BLOCK", 7)
        assert torch.allclose(net.features(tokens)[0], fused, atol=1e-5, rtol=1e-5)


def cvp_free_sequence(nc, bits):
    """The Theorem 3.3 sequence of one input: its bits, then every gate's value."""
    from grammar.evaluate import evaluate

    return evaluate(nc, np.asarray(bits, dtype=np.uint8)[None])[0].astype(np.int64)


def test_finite_attention_in_query_blocks_equals_one_block(monkeypatch):
    from neural.construction import fp

    rng = np.random.default_rng(0)
    q, k, v = (F511.round(rng.normal(size=(40, 6))) for _ in range(3))
    whole, w_whole = F511.attention(q, k, v, 0.5, 0)
    monkeypatch.setattr(fp, "PRODUCTS_PER_CHUNK", 6 * 40 * 3)  # three queries per block
    blocked, w_blocked = F511.attention(q, k, v, 0.5, 0)
    assert np.array_equal(whole, blocked) and np.array_equal(w_whole, w_blocked)
    assert F511.attention(q, k, v, 0.5, 0, need_weights=False)[1] is None


# ---- the command: batches, JSON lines, refusals ----------------------------------------------------------------

def lines_of(proc) -> list[dict]:
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_run_random_is_one_batch_of_json_lines_agreeing_with_eval():
    proc = in_process("run", "circuits/rca4.bench", "--random", "20", "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    lines = lines_of(proc)
    assert len(lines) == 20 and all(line["sound"] and line["path"] == "one-pass" for line in lines)
    assert all(line["first_unsound_step"] is None for line in lines)
    reference = lines_of(in_process("circuit", "eval", "circuits/rca4.bench", "--random", "20", "--seed", "3"))
    assert [(x["inputs"], x["outputs"]) for x in lines] == [(x["inputs"], x["outputs"]) for x in reference]
    assert "20 vector(s), 0 with an unsound step" in proc.stderr


@pytest.mark.parametrize("construction", ["thm33", "cvp"])
def test_run_with_no_vectors_prints_no_lines_and_succeeds(tmp_path, construction):
    (tmp_path / "none.txt").write_text("# no vectors\n")
    for source in (["--random", "0"], ["--vectors", str(tmp_path / "none.txt")]):
        proc = in_process("run", "circuits/c17.bench", "--construction", construction, *source)
        assert proc.returncode == 0 and proc.stdout == "" and "0 vector(s)" in proc.stderr, proc.stderr


def test_run_vectors_with_an_unsound_step_exit_1(tmp_path):
    vectors = tmp_path / "v.txt"
    vectors.write_text("# rca4's inputs\n101101110\n\n000000000  # all zero\n")
    proc = in_process("run", "circuits/rca4.bench", "--vectors", str(vectors), "--override", "key_scale=1")
    assert proc.returncode == 1, proc.stderr
    lines = lines_of(proc)
    assert [line["inputs"] for line in lines] == ["101101110", "000000000"]
    unsound = [line for line in lines if not line["sound"]]
    assert unsound and all(line["first_unsound_step"] is not None and line["gate"]["name"] for line in unsound)
    assert all(line["path"] == "one-pass+greedy" for line in unsound)


@pytest.mark.parametrize("argv, located", [
    (["--vectors", "{bad}"], "{bad}:4:4"),
    (["--inputs", "10101", "--random", "3"], "exactly one of --inputs, --vectors and --random"),
    (["--inputs", "10101", "--unproved"], "--unproved goes with --ieee"),
    (["--inputs", "10101", "--ieee", "float32", "--device", "meta"], "run supports cpu and cuda"),
    (["--inputs", "10101", "--device", "cuda:0"], "cuda"),
    (["--inputs", "10101", "--ieee", "float16", "--override", "key_scale=32752"],
     "not proved exact in IEEE float16 for this circuit (order_independence: refuted); --unproved runs it anyway"),
])
def test_run_refusals_are_one_located_message(tmp_path, argv, located):
    bad = tmp_path / "bad.txt"
    bad.write_text("10101\n\n# ok so far\n111x0\n")
    argv = [a.replace("{bad}", str(bad)) for a in argv]
    located = located.replace("{bad}", str(bad))
    proc = in_process("run", "circuits/c17.bench", *argv)
    assert proc.returncode == 2 and located in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_run_unproved_dtype_runs_only_when_asked_and_says_so():
    proc = in_process("run", "circuits/c17.bench", "--inputs", "10101", "--ieee", "float16", "--override",
                      "key_scale=32752", "--unproved", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["proof"] == "unproved"
    proved = json.loads(in_process("run", "circuits/c17.bench", "--inputs", "10101", "--ieee", "float16",
                                   "--json").stdout)
    assert proved["proof"]["status"] == "proved" and "retrieval" in proved["proof"]["lemmas"]
    assert proved["path"] == "one-pass" and proved["arithmetic"] == "IEEE float16"


def test_several_tokens_after_a_cache_see_what_one_pass_sees():
    """The KV-cache path with more than one new token (written-out blocks, offset by the cache) agrees with one pass
    over the whole sequence on a random dense model, where a key seen too early or too late moves every output."""
    import torch

    net, tokens = random_decoder(seed=1, batch=2, length=40)
    with torch.inference_mode():
        whole = net.features(tokens)[0]
        cache = decoder_module.KVCache()
        parts = [net.features(tokens[:, a:b], cache)[0] for a, b in ((0, 13), (13, 14), (14, 40))]
    assert torch.allclose(torch.cat(parts, dim=1), whole, atol=1e-5, rtol=1e-5)
