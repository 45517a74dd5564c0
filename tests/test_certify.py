"""``cotproof certify``: prompt spaces against their closed forms, the shared-prefix pass against the plain one,
certificates of a compiled construction (and of one with a weight broken), shards, checks and refusals."""
from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
import torch
from helpers import cli

from neural.learning.prompt_space import prompt_space
from neural.learning.tasks import make_task


def space_count(task, n: int) -> int:
    """Each task's closed form for one size, written here apart from the space's own segments."""
    if task.name == "modadd":
        return task.m ** n
    if task.name == "s5":
        return 120 ** n
    if task.name == "isq":
        return sum(task.primes)
    return 5 ** n * math.factorial(n) ** 2

SPACES = [  # (task, its parameters, length, up_to, the count by hand)
    ("modadd", {"length": 3, "modulus": 7}, None, False, 7 ** 3),
    ("modadd", {"length": 4, "modulus": 3}, 4, False, 3 ** 4),
    ("s5", {"length": 2}, None, False, 120 ** 2),
    ("isq", {"steps": 3, "min_prime": 5, "max_prime": 13}, 2, False, 5 + 7 + 11 + 13),
    ("isq", {"steps": 3, "min_prime": 5, "max_prime": 13}, 3, True, 3 * (5 + 7 + 11 + 13)),
    ("cvp", {"gates": 4}, 2, False, 5 * 20),
    ("cvp", {"gates": 4}, 3, True, 5 + 100 + 4500),
]


@pytest.mark.parametrize("kind,params,length,up_to,count", SPACES)
def test_a_prompt_space_is_its_closed_form_each_prompt_once_with_a_sound_reference(kind, params, length, up_to,
                                                                                 count):
    task = make_task(kind, **params)
    space = prompt_space(task, length, up_to)
    per_size = space_count(task, space.sizes[0])
    assert space.count == count == sum(per_size if kind == "isq" else space_count(task, n) for n in space.sizes)
    prompts, states = space.decode(np.arange(space.count))
    every = max(1, space.count // 600)  # S5's step circuit is slow to evaluate: a spread of its prompts
    assert task.check_steps(prompts[::every], states[::every]).all()  # the step circuit accepts each reference
    for seg, lo in zip(space.segments, space.starts):  # each size's prompts distinct and in lexicographic order
        rows = [tuple(r) for r in prompts[lo:lo + seg.count]]
        assert rows == sorted(set(rows))
    assert space.trie_nodes() >= len({tuple(r[:1]) for r in prompts})


def test_cvp_circuits_are_the_construction_audits_circuits():
    from neural import cvp

    task = make_task("cvp", gates=4)
    prompts, states = prompt_space(task, 3, up_to=True).decode(np.arange(4605))
    expected = sorted((tuple(c.padded(4).prompt()[:-1]), tuple(c.padded(4).cot())) for c in cvp.all_circuits(3))
    assert sorted(zip(map(tuple, prompts), map(tuple, states))) == expected


def test_the_sampler_draws_every_prompt_equally_often():
    space = prompt_space(make_task("modadd", length=2, modulus=7))
    _, _, draws = space.draw(np.random.default_rng(5), 49_000)
    counts = np.bincount(draws, minlength=49)
    chi2 = ((counts - 1000) ** 2 / 1000).sum()
    assert chi2 < 85.0  # the 0.999 quantile of chi-square with 48 degrees of freedom is 84.0... and 1e-3 odds
    assert len({tuple(p) for p in space.decode(np.arange(49))[0]}) == 49  # one index, one prompt


@pytest.mark.parametrize("layers,layernorm,activation", [(1, False, "relu"), (2, True, "gelu"), (3, True, "relu")])
def test_shared_prefixes_give_the_plain_passes_logits(layers, layernorm, activation):
    from neural.config import ModelConfig
    from neural.model import Decoder
    from neural.prefix_forcing import forced_logits_plain, forced_logits_shared, score

    torch.manual_seed(layers)
    task = make_task("modadd", length=4, modulus=5)
    model = Decoder(ModelConfig(len(task.vocab), 12, 32, layers, 4, 8, 64, activation, layernorm)).eval()
    space = prompt_space(task)
    prompts, states = space.decode(np.arange(space.count))
    cont = np.concatenate([np.full((len(prompts), 1), task.eq), states[:, :-1]], axis=1)
    plain = forced_logits_plain(model, prompts, cont)
    torch.testing.assert_close(forced_logits_shared(model, prompts, cont), plain, rtol=0, atol=1e-5)
    shuffled = np.random.default_rng(0).permutation(len(prompts))  # sharing needs order, the result does not
    torch.testing.assert_close(forced_logits_shared(model, prompts[shuffled], cont[shuffled]), plain[shuffled],
                               rtol=0, atol=1e-5)
    a, b = score(forced_logits_shared(model, prompts, cont), states), score(plain, states)
    assert (a.wrong_step == b.wrong_step).all() and (a.got == b.got).all()


def test_clopper_pearson_matches_known_bounds():
    from bridge.certificate import clopper_pearson_upper

    assert clopper_pearson_upper(0, 100, 0.95) == pytest.approx(1 - 0.05 ** 0.01)
    assert clopper_pearson_upper(1, 10, 0.95) == pytest.approx(0.3942, abs=1e-4)  # Beta(2, 9)'s 0.95 quantile
    assert clopper_pearson_upper(5, 5, 0.9) == 1.0


# ---- a compiled construction ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cvp4(tmp_path_factory):
    d = tmp_path_factory.mktemp("cvp4") / "ck"
    proc = cli("compile", "specs/cvp.lark", "--override", "max_gates=4", "--out", str(d))
    assert proc.returncode == 0, proc.stderr
    return d


@pytest.fixture(scope="module")
def broken(cvp4, tmp_path_factory):
    """The construction with one weight changed: the value head's output for one slot, so some circuits go wrong."""
    from neural import checkpoint

    ck = checkpoint.load(cvp4)
    weights = dict(ck.weights)
    w = weights["head.weight"].copy()
    one = ck.meta["vocab"].index("1")
    w[one] = w[one] * 0.5 + w[one - 1] * 0.5
    weights["head.weight"] = w
    d = tmp_path_factory.mktemp("broken") / "ck"
    checkpoint.save(d, ck.config, weights, ck.meta)
    return d


def _certify(*args):
    proc = cli("certify", *args, "--json")
    return proc.returncode, (json.loads(proc.stdout) if proc.stdout.strip() else None), proc.stderr


def test_the_construction_is_certified_for_every_circuit_up_to_three_gates(cvp4, tmp_path):
    rc, cert, err = _certify(str(cvp4), "--length", "3", "--up-to", "--out", str(tmp_path / "c.json"))
    assert rc == 0, err
    assert cert["status"] == "certified" and cert["checked"] == cert["space"]["count"] == 4605
    assert cert["unsound_prompts"] == 0 and cert["counterexamples"] == [] and cert["smallest_margin"]["margin"] > 0
    assert json.loads((tmp_path / "c.json").read_text()) == cert
    rc, out, err = _certify("--check", str(tmp_path / "c.json"), str(cvp4), "--samples", "200")
    assert rc == 0 and out["confirmed"], (err, out)


def test_a_broken_weight_gives_counterexamples_that_greedy_decoding_replays(broken):
    rc, cert, err = _certify(str(broken), "--length", "3")
    assert rc == 1, err
    assert cert["status"] == "counterexample" and 0 < cert["unsound_prompts"] < cert["checked"]
    for e in cert["counterexamples"]:
        assert e["replay"]["confirmed"] and e["replay"]["first_unsound"] is not None
    # a bound from samples holds for the true fraction the enumeration found
    rc, sampled, err = _certify(str(broken), "--length", "3", "--samples", "400", "--confidence", "0.99")
    assert rc in (0, 1), err
    assert sampled["samples"]["upper_bound"] >= cert["unsound_prompts"] / cert["checked"]


def test_shards_merge_into_the_whole_and_bad_sets_are_refused(broken, cvp4, tmp_path):
    paths = []
    for i in range(3):
        paths.append(str(tmp_path / f"s{i}.json"))
        rc, _, err = _certify(str(broken), "--length", "3", "--shard", f"{i}/3", "--out", paths[-1])
        assert rc in (0, 1), err
    rc, whole, _ = _certify(str(broken), "--length", "3")
    rc_m, merged, err = _certify("--merge", *paths)
    assert rc_m == rc == 1, err
    for key in ("checked", "unsound_prompts", "status", "range", "weights_sha256"):
        assert merged[key] == whole[key]
    assert [e["index"] for e in merged["counterexamples"]] == [e["index"] for e in whole["counterexamples"]]
    assert merged["smallest_margin"]["margin"] == pytest.approx(whole["smallest_margin"]["margin"], abs=1e-4)
    refusals = {"are in no shard": paths[:2], "overlap": paths + [paths[1]]}
    foreign = str(tmp_path / "foreign.json")
    assert _certify(str(cvp4), "--length", "3", "--shard", "2/3", "--out", foreign)[0] == 0
    refusals["differs"] = paths[:2] + [foreign]
    for words, group in refusals.items():
        proc = cli("certify", "--merge", *group)
        assert proc.returncode == 2 and words in proc.stderr, proc.stderr


def test_a_certificate_for_other_weights_is_not_confirmed(cvp4, broken, tmp_path):
    assert _certify(str(cvp4), "--length", "2", "--out", str(tmp_path / "c.json"))[0] == 0
    rc, out, _ = _certify("--check", str(tmp_path / "c.json"), str(broken))
    assert rc == 1 and not out["confirmed"] and "sha256" in out["problems"][0]


@pytest.fixture(scope="module")
def s5_untrained(tmp_path_factory):
    """An untrained S5 CoT checkpoint at length 8 (120^8 prompts): what it computes does not matter here."""
    from neural import checkpoint
    from neural.config import ModelConfig
    from neural.model import Decoder

    torch.manual_seed(0)
    task = make_task("s5", length=8)
    cfg = ModelConfig(len(task.vocab), 16, 32, 1, 4, 8, 64, "gelu", True)
    d = tmp_path_factory.mktemp("s5u") / "ck"
    checkpoint.save(d, cfg, Decoder(cfg).eval().arrays(), {"task": {"kind": "s5", "length": 8}, "setting": "cot",
                                                          "vocab": list(task.vocab)})
    return d


def test_an_enumeration_over_the_limits_is_refused_at_once_with_its_estimate(s5_untrained, tmp_path):
    start = time.perf_counter()
    proc = cli("certify", str(s5_untrained), "--out", str(tmp_path / "c.json"))
    assert time.perf_counter() - start < 1.0  # priced, not run
    assert proc.returncode == 2 and "multiply-adds" in proc.stderr and "--samples" in proc.stderr, proc.stderr
    assert not (tmp_path / "c.json").exists()
    rc, cert, err = _certify(str(s5_untrained), "--samples", "300")  # the same space, sampled
    assert rc == 1 and cert["samples"]["drawn"] == 300 and cert["space"]["count"] == 120 ** 8, err
    assert cert["counterexamples"][0]["replay"]["confirmed"]


def test_a_space_beyond_int64_is_drawn_from_uniformly_and_indexed_exactly():
    task = make_task("cvp", gates=16)
    space = prompt_space(task, 16)
    assert space.count == 5 ** 16 * math.factorial(16) ** 2 > 2 ** 64
    prompts, states, index = space.draw(np.random.default_rng(1), 64)
    assert task.check_steps(prompts, states).all()
    assert all(0 <= i < space.count for i in index) and len(set(index)) == 64
    for row in (0, 17, 63):
        p, s = space.decode_one(index[row])
        assert (p[0] == prompts[row]).all() and (s[0] == states[row]).all()


@pytest.mark.parametrize("args,words", [
    (["--length", "0"], "at least 1"),
    (["--shard", "3/3"], "0 <= i < k"),
    (["--confidence", "1"], "strictly between 0 and 1"),
    (["--samples", "5", "--shard", "0/2"], "one of --samples and --shard"),
])
def test_bad_flags_are_one_message_and_exit_2(cvp4, args, words):
    proc = cli("certify", str(cvp4), *args)
    assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_a_malformed_certificate_is_refused_at_its_line_and_column(cvp4, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"certificate": "cotproof certify",\n  "checked": }\n')
    proc = cli("certify", "--check", str(bad), str(cvp4))
    assert proc.returncode == 2 and f"{bad}:2:" in proc.stderr, proc.stderr
    bad.write_text('{"some": "json"}\n')
    proc = cli("certify", "--check", str(bad), str(cvp4))
    assert proc.returncode == 2 and "not a cotproof certificate" in proc.stderr


def _oracle(task, ids: np.ndarray, wrong_step: int | None):
    """A hand-written model in its own ids: after every prefix of a CoT, the right next state, except a wrong one
    at ``wrong_step``."""
    to_task = np.full(ids.max() + 1, -1)
    to_task[ids] = np.arange(len(ids))

    def fn(tokens):
        seq = to_task[np.asarray(tokens)]
        B, T = seq.shape
        n = T - (task.n_prompt + 1)  # the states written so far
        written = np.concatenate([seq[:, task.n_prompt + 1:], np.zeros((B, task.n_steps - n), dtype=seq.dtype)], 1)
        right = task.expected_states(seq[:, :task.n_prompt], written)  # (B, n_steps): what follows each prefix
        if wrong_step is not None:
            right[:, wrong_step] = np.where(right[:, wrong_step] == len(task.vocab) - 1, right[:, wrong_step] - 1,
                                            right[:, wrong_step] + 1)
        logits = np.zeros((B, T, ids.max() + 1), dtype=np.float32)
        for i in range(min(n + 1, task.n_steps)):
            logits[np.arange(B), task.n_prompt + i, ids[right[:, i]]] = 1.0
        return torch.as_tensor(logits)

    return fn


@pytest.mark.parametrize("wrong_step", [None, 2])
def test_a_model_given_as_a_function_is_certified_or_caught(wrong_step):
    from bridge.certificate import certify_callable

    task = make_task("modadd", length=4, modulus=5)
    ids = np.random.default_rng(0).permutation(len(task.vocab) + 3)[:len(task.vocab)]
    cert = certify_callable(_oracle(task, ids, wrong_step), {"kind": "modadd", "length": 4, "modulus": 5},
                            {t: int(i) for t, i in zip(task.vocab, ids)}, rows=97)
    assert cert["checked"] == 5 ** 4
    if wrong_step is None:
        assert cert["status"] == "certified"
    else:
        assert cert["unsound_prompts"] == 5 ** 4 and cert["counterexamples"][0]["step"] == 2
        assert cert["counterexamples"][0]["replay"]["confirmed"]


def test_ctrl_c_leaves_an_incomplete_certificate_and_exit_3(cvp4, tmp_path):
    import signal
    import subprocess
    import sys

    out = tmp_path / "partial.json"
    proc = subprocess.Popen([sys.executable, "-m", "bridge.cli", "certify", str(cvp4), "--length", "4", "--up-to",
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stderr.readline()  # the first progress line: the enumeration is under way
    assert first.startswith("certify:"), first
    proc.send_signal(signal.SIGINT)
    stdout, _ = proc.communicate(timeout=120)
    cert = json.loads(out.read_text())
    assert proc.returncode == 3 and "INCOMPLETE" in stdout
    assert cert["status"] == "incomplete" and 0 < cert["checked"] < cert["space"]["count"] == 364_605
