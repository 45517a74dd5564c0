"""The audit engine: check every CoT step of a checkpoint and show where it departs from the construction
(``cotproof audit``: ``bridge.commands.auditing``).

Works on trained checkpoints and on compiled CVP constructions (which are audited as the ``cvp`` task of their
``max_gates``). The model runs greedily in IEEE float32; each generated trace is then:
- checked step by step by the task's step circuit (each token against the step applied to the trace's *own*
  previous state), so a wrong step is caught even when the final answer is right;
- read for attention: at each step, the attention mass every head puts on the positions the construction reads;
- replayed with the weights cast to bfloat16 and float16, to show how the traces move.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from grammar.errors import InputError, ParameterError, SourceLoc
from grammar.ir import Mode

ALIGNMENT_OK = 0.99


def load_auditable(directory: str):
    """(Decoder, task, setting, meta) for a trained checkpoint or a compiled CVP construction."""
    from neural import checkpoint
    from neural.learning.evaluation import load_trained
    from neural.learning.tasks import make_task
    from neural.model import Decoder

    ck = checkpoint.load(directory)
    if ck.meta.get("kind") == "construction":
        c = ck.meta.get("construction", {})
        if c.get("mode") != Mode.CVP:
            raise InputError("auditing a Theorem 3.3 construction is not supported yet (its checkpoint is one "
                             "circuit, not a task); use 'cotproof verify' for it",
                             SourceLoc(str(Path(directory) / checkpoint.CONFIG)), expected="a CVP construction "
                             "or a trained checkpoint")
        task = make_task("cvp", gates=int(c["max_gates"]))
        if list(task.vocab) != list(ck.meta["vocab"]):
            raise InputError("the construction's vocabulary is not the cvp task's", SourceLoc(str(directory)),
                             expected="a checkpoint written by cotproof compile")
        return Decoder.from_arrays(ck.config, ck.weights), task, "cot", ck.meta
    return load_trained(directory)


def trace_report(task, prompts, gen, answer, truth) -> dict:
    ok = task.check_steps(prompts, gen)
    right = gen[:, -1] == answer
    report = {"accuracy": float(right.mean()),
              "accuracy_by_position": [round(float(x), 4) for x in (gen == truth).mean(axis=0)],
              "steps_checked": int(ok.size), "unsound_steps": int((~ok).sum()),
              "samples_with_unsound_steps": int((~ok).any(axis=1).sum()),
              "right_for_wrong_reason": int((right & (~ok).any(axis=1)).sum()),
              "errors_by_position": [int(x) for x in (~ok).sum(axis=0)], "first_unsound": None}
    bad = np.argwhere(~ok)
    if bad.size:
        b, i = (int(x) for x in bad[0])
        report["first_unsound"] = {"sample": b, "step": i, "got": task.vocab[int(gen[b, i])],
                                   "expected": task.vocab[int(_expected(task, prompts[b], gen[b], i))],
                                   "context": _context(task, prompts[b], gen[b], i)}
    if task.name == "cvp":
        kinds = task.gate_kinds(prompts)
        report["errors_by_gate_type"] = {k: int(((~ok) & (kinds == k)).sum()) for k in
                                         ("TRUE", "FALSE", "AND", "OR", "NOT")}
    return report


def _expected(task, prompt, trace, i) -> int:
    """The step applied to the trace's own previous state: what a sound step i would have written."""
    return int(task.expected_states(prompt[None], np.asarray(trace)[None])[0, i])


def _context(task, prompt, trace, i) -> dict:
    if task.name == "cvp":
        from neural import cvp

        c = cvp.parse_prompts(prompt[None], task.N)
        g = i // 4
        refs = [int(c.in1[0, g]), int(c.in2[0, g])]
        values = cvp.cot_values(np.asarray(trace)[None], task.N)[0]
        return {"gate": g + 1, "token": cvp.COT_SLOTS[i % 4], "type": cvp.TYPES[int(c.kinds[0, g])],
                "inputs": [f"g{r}" if r else "NA" for r in refs],
                "input_values_in_trace": [int(values[r - 1]) if r else 0 for r in refs]}
    prev = task.initial_states(prompt[None])[0] if i == 0 else trace[i - 1]
    return {"previous_state": task.vocab[int(prev)], "input": task.vocab[int(prompt[task.step_inputs[i]])]}


def audit(directory: str, samples: int = 500, seed: int = 0, plots: str | None = None) -> dict:
    """The audit of a checkpoint directory (trained, or a compiled CVP construction)."""
    model, task, setting, meta = load_auditable(directory)
    require_cot(setting, SourceLoc(str(directory)))
    _require_affordable(task, samples, model.cfg.d_model, model.cfg.n_layers, model.cfg.n_heads)
    construction = meta.get("kind") == "construction"
    from bridge.audited import decoder_audited

    out = audit_model(decoder_audited(model), task, samples=samples, seed=seed, label=str(directory), plots=plots)
    if construction:
        out["exhaustive"] = _exhaustive_cvp(model, task, max_gates=3)
    return out


def audit_callable(fn, task, vocab, *, samples: int = 500, seed: int = 0, attention=None,
                   label: str = "<callable>") -> dict:
    """Audit any model given as a function from token ids (B, T) to logits (B, T, V), in its own ids.

    ``task``: a task (``neural.learning.tasks.make_task``) or its description, ``{"kind": "s5", "length": 8}``.
    ``vocab``: each of the task's tokens -> the model's id for it. Greedy steps take the argmax over the task's tokens.
    ``attention``: optionally, a function from the same ids to per-layer (B, H, T, T) weights, for the alignment.
    Returns the report ``cotproof audit`` prints (without the precision replays, which need the weights)."""
    from bridge.audited import callable_audited
    from bridge.foreign import resolve_task, token_ids

    task = resolve_task(task, label)
    ids = token_ids(task, vocab, label)
    return audit_model(callable_audited(fn, ids, attention), task, samples=samples, seed=seed, label=label)


def require_cot(setting: str, where: SourceLoc) -> None:
    if setting != "cot":
        raise InputError(f"this model was trained in the '{setting}' setting: it writes no chain of thought to "
                         f"audit; use 'cotproof eval' for its accuracy", where,
                         expected="a cot checkpoint or a compiled construction")


def _require_affordable(task, samples: int, d_model: int, n_layers: int, n_heads: int) -> None:
    from grammar.limits import require_memory

    length = task.n_prompt + task.n_steps
    require_memory(4.0 * samples * length * (40 * d_model * n_layers + 2 * n_heads * length),
                   f"auditing {samples:,} samples of {length:,} tokens", "--samples", "fewer --samples")


def audit_model(model, task, *, samples: int, seed: int, label: str, plots: str | None = None) -> dict:
    """``model``: a ``bridge.audited.Audited``. Greedy traces on held-out prompts, checked step by step; attention
    read against the construction's reads where the model gives its weights; replays in the dtypes it casts to."""
    from bridge.progress import Progress

    with Progress(2 + len(model.dtypes), "stage", "audit") as stages:
        b = task.batch(np.random.default_rng(seed), samples, "cot", "test")  # held-out prompts only
        prompts = b.tokens[:, :b.prompt_len]
        gen = model.generate(prompts, task.n_steps, None)
        stages.update()
        out = {"checkpoint": label, "task": task.name, "samples": samples, "seed": seed,
               **trace_report(task, prompts[:, :task.n_prompt], gen, b.answer, b.cot)}
        attn = None
        if model.attention is not None:
            full = np.concatenate([prompts, gen[:, :-1]], axis=1)
            attn = model.attention(full[:min(samples, 200)])
            from neural.learning.mechanism import attention_report

            out["attention"] = attention_report(task, prompts[:min(samples, 200), :task.n_prompt], attn)
        else:
            out["attention"] = {"heads": {}, "closest_head": {}, "alignment": None,
                                "note": "the model gave no attention weights"}
        stages.update()
        out["precision"] = {}
        for dtype in model.dtypes:
            g = model.generate(prompts, task.n_steps, dtype)
            rep = trace_report(task, prompts[:, :task.n_prompt], g, b.answer, b.cot)
            out["precision"][dtype] = {"accuracy": rep["accuracy"], "unsound_steps": rep["unsound_steps"],
                                       "traces_changed": int((g != gen).any(axis=1).sum())}
            stages.update()
    if plots and attn is not None:
        from bridge.audit_plots import write_plots

        out["plots"] = write_plots(Path(plots), task, prompts, gen, out, attn)
    return out


def hf_audit(directory: str, vocabulary_path: str, samples: int, seed: int) -> dict:
    """``cotproof audit DIR --format hf --vocab FILE``: a local Hugging Face causal LM, audited as its vocabulary
    file's task."""
    from bridge.audited import callable_audited

    fn, task, ids, attention = load_hf(directory, vocabulary_path)
    return audit_model(callable_audited(fn, ids, attention), task, samples=samples, seed=seed, label=str(directory))


def load_hf(directory: str, vocabulary_path: str | None):
    """A local Hugging Face causal LM read as its vocabulary file's CoT task (``--format hf --vocab FILE``, for
    ``audit`` and ``certify``): (function from the model's ids to logits, task, the model's id of each task token,
    attention function)."""
    from bridge.foreign import read_vocabulary, resolve_task, token_ids
    from neural.hf import load_causal_lm

    if not vocabulary_path:
        raise InputError("--format hf needs --vocab FILE: which of the model's ids is which task token",
                         SourceLoc("--vocab"), expected="--vocab VOCAB.json")
    doc = read_vocabulary(vocabulary_path)
    task = resolve_task(doc["task"], vocabulary_path)
    require_cot(str(doc.get("setting", "cot")), SourceLoc(vocabulary_path))
    if not (Path(directory) / "config.json").is_file():
        raise InputError("no config.json here", SourceLoc(directory), expected="a Hugging Face model directory")
    try:
        fn, vocab_size, attention = load_causal_lm(directory)
    except ParameterError as err:
        raise InputError(str(err), SourceLoc(directory),
                         expected="a Hugging Face causal LM directory with safetensors weights") from None
    return fn, task, token_ids(task, doc["tokens"], vocabulary_path, vocab_size), attention


def _exhaustive_cvp(model, task, max_gates: int) -> dict:
    """Every circuit of <= max_gates gates (4,605 for 3), padded to the model's N, through the construction
    greedily."""
    from neural import cvp
    from neural.learning.evaluation import generate

    circuits = [c.padded(task.N) for c in cvp.all_circuits(max_gates)]
    wrong = 0
    for start in range(0, len(circuits), 1024):
        group = circuits[start:start + 1024]
        gen = generate(model, np.array([c.prompt() for c in group]), 4 * task.N)
        wrong += int((gen != np.array([c.cot() for c in group])).any(axis=1).sum())
    return {"circuits": len(circuits), "max_gates": max_gates, "wrong": wrong}
