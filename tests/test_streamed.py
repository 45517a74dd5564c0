"""Streamed passes (``neural.streamed``): a long sequence a block of positions at a time gives the whole-sequence
pass's features bit for bit, in every IEEE dtype and at every block boundary; its dense rows are the dense kernel's;
its spot check catches a selection moved on purpose; and ``run`` takes it for long sequences."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import ROOT, in_process

from grammar.netlist import load_netlist
from grammar.normalize import normalize
from neural import cvp, streamed
from neural.construction.construct import build_cvp, build_thm33
from neural.construction.execute import ExecMode, cvp_teacher_forcing, session, thm33_teacher_forcing
from neural.construction.fp import FPFormat
from neural.construction.selection import KeySelection, proved_selection
from neural.selected import SPOT_CHECK_ROWS, UnsoundAttention

DTYPES = ["float32", "bfloat16", "float16"]
CONSTRUCTIONS = ["c17.bench", "rca4.bench", "c880.bench", "cvp-8"]


def _case(name: str, dtype: str, key_scale: float | None = None):
    """A torch session of the construction, its selection licensed, one teacher-forced sequence and the positions
    whose predictions are CoT steps."""
    rng = np.random.default_rng(5)
    fmt = FPFormat.ieee(dtype)
    if name.startswith("cvp"):
        n = int(name.split("-")[1])
        model = build_cvp(n, fmt, key_scale)
        forcing = cvp_teacher_forcing([cvp.random_circuit(rng, n)], n)
    else:
        nc = normalize(load_netlist(ROOT / "circuits" / name))
        model = build_thm33(nc, fmt, key_scale)
        forcing = thm33_teacher_forcing(nc, rng.integers(0, 2, (1, nc.n_inputs)))
    sess = session(model.config, model.weights, ExecMode("ieee", fmt, dtype), selection=proved_selection(model))
    return sess, forcing.tokens[0], forcing.steps


def _whole(sess, tokens) -> np.ndarray:
    with torch.inference_mode():
        return sess.model.features(torch.as_tensor(tokens[None]))[0][0].float().numpy()


def _streamed(sess, tokens, block: int) -> np.ndarray:
    """The streamed features at every position (an identity in place of the argmax)."""
    features = streamed.streamed_predictions(sess.model, tokens, np.arange(len(tokens)), lambda x: x.float(), block)
    return features.astype(np.float32)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", CONSTRUCTIONS)
def test_streamed_features_equal_the_whole_pass_bit_for_bit(name, dtype):
    """Bit for bit where a run reads them (the CoT steps, whose every head selects a key). Before the first step
    the inputs' rows select none (their query field is no code), and the weight spread over many keys rounds by
    the kernel's summation order, as the whole pass's own kernels differ there."""
    sess, tokens, steps = _case(name, dtype)
    whole = _whole(sess, tokens)
    for block in (1 if len(tokens) < 100 else 3, 7, 64, len(tokens) - 1):
        got = _streamed(sess, tokens, block)
        assert np.array_equal(got[steps], whole[steps]), block
        assert np.allclose(got, whole, rtol=1e-2, atol=1e-2), block
    sess.model.selection = None  # and the dense kernel's
    assert np.array_equal(_whole(sess, tokens)[steps], whole[steps])


def test_dense_rows_are_the_dense_kernels_where_attention_is_spread():
    """key_scale 1: scores differ by 2 per mismatched bit, so every row spreads its weight over many keys."""
    sess, tokens, _ = _case("c880.bench", "float32", key_scale=1.0)
    stream = streamed._Stream(sess.model, tokens, block=37)
    positions = np.array([0, 5, 36, 37, 200, len(tokens) - 1])
    with torch.inference_mode():
        x = stream.residual(stream.span(0, len(tokens)))
        q, k, v = (stream.project(p, x) for p in "qkv")
        got = streamed.dense_rows(stream, {h: (q[h, positions], positions) for h in range(stream.heads)})
        for h in range(stream.heads):
            causal = torch.arange(len(tokens))[None, :] <= torch.as_tensor(positions)[:, None]
            want = torch.softmax((q[h, positions] @ k[h].T).masked_fill(~causal, float("-inf")), -1) @ v[h]
            assert torch.allclose(got[h], want, rtol=1e-5, atol=1e-6)
            assert not torch.equal(want, v[h, positions])  # spread, so no gathered row would pass


def test_the_streamed_spot_check_catches_a_moved_selection(monkeypatch):
    sess, tokens, _ = _case("c880.bench", "float32")
    real = KeySelection.select
    monkeypatch.setattr(KeySelection, "select", lambda self, layer, x, indexes, first=0: np.where(
        (k := real(self, layer, x, indexes, first)) > 0, k - 1, k))
    with pytest.raises(UnsoundAttention):
        streamed.streamed_predictions(sess.model, tokens, np.arange(len(tokens)), sess._argmax, 50)


def test_run_streams_a_sequence_longer_than_a_block(monkeypatch):
    """In F(5,11), computed exactly in torch float32 (as any run past ``TORCH_WORTH_IT`` is)."""
    calls = []
    real = streamed.streamed_predictions
    monkeypatch.setattr(streamed, "BLOCK", 64)
    monkeypatch.setattr("bridge.bounded.TORCH_WORTH_IT", 0)
    monkeypatch.setattr("neural.decoding.streamed_predictions", lambda *a, **k: calls.append(1) or real(*a, **k))
    bits = "".join(map(str, np.random.default_rng(3).integers(0, 2, 60)))
    out = json.loads(in_process("run", "circuits/c880.bench", "--inputs", bits, "--json").stdout)
    assert calls and out["sound"] and out["attention"]["kernel"] == "proved"
    assert out["arithmetic"] == "F(5,11), computed exactly as IEEE float32"
    assert out["attention"]["spot_checked_rows"] == 2 * SPOT_CHECK_ROWS
    eval_out = json.loads(in_process("circuit", "eval", "circuits/c880.bench", "--inputs", bits, "--json").stdout)
    assert out["outputs"] == eval_out["outputs"]
