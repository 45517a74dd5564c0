"""``cotproof audit DIR``: check every CoT step of a checkpoint and show where it departs from the construction.

Works on trained checkpoints and on compiled CVP constructions (which are audited as the ``cvp`` task of their
``max_gates``). The model runs greedily in IEEE float32; each generated trace is then:
- checked step by step by the task's step circuit (each token against the step applied to the trace's *own*
  previous state), so a wrong step is caught even when the final answer is right;
- read for attention: at each step, the attention mass every head puts on the positions the construction reads;
- replayed with the weights cast to bfloat16 and float16, to show how the traces move.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bridge.output import EXIT_FAILED, EXIT_OK, emit
from grammar.errors import InputError, SourceLoc

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
        if c.get("mode") != "cvp":
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


def _greedy(model, task, prompts_with_sep):
    from neural.learning.evaluation import generate

    return generate(model, prompts_with_sep, task.n_steps)


def _attention(model, tokens: np.ndarray) -> list[np.ndarray]:
    """Per layer (B, H, T, T) attention weights of a teacher-forced pass over the model's own trace."""
    import torch

    with torch.inference_mode():
        _, weights = model(torch.as_tensor(tokens), need_weights=True)
    return [w.float().cpu().numpy() for w in weights]


def _trace_report(task, prompts, gen, answer, truth) -> dict:
    ok = task.check_steps(prompts, gen)
    right = gen[:, -1] == answer
    report = {"accuracy": float(right.mean()),
              "accuracy_by_position": [round(float(x), 4) for x in (gen == truth).mean(axis=0)], "steps_checked": int(ok.size), "unsound_steps": int((~ok).sum()),
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


def _alignment(task, prompts, attn) -> dict:
    """Mass each head puts, at step i's query position, on each position the construction reads then."""
    reads = task.read_positions(prompts)
    q = task.n_prompt + np.arange(task.n_steps)
    B = prompts.shape[0]
    heads = {}
    for layer, w in enumerate(attn):
        for h in range(w.shape[1]):
            at_q = w[:, h, q, :]  # (B, n, T)
            masses = {}
            for name, pos in reads.items():
                valid = pos >= 0
                m = np.take_along_axis(at_q, np.clip(pos, 0, None)[..., None], axis=-1)[..., 0]
                masses[name] = float(m[valid].mean()) if valid.any() else None
            union = np.zeros(at_q.shape[:2])
            seen = np.zeros((B, task.n_steps, at_q.shape[-1]), dtype=bool)
            for pos in reads.values():
                b, i = np.nonzero(pos >= 0)
                seen[b, i, pos[b, i]] = True
            union = (at_q * seen).sum(-1)
            heads[f"L{layer}H{h}"] = {"mass_on_construction_reads": float(union.mean()), "per_read": masses}
    closest = {}
    for name in reads:
        best = max(heads, key=lambda k: -1 if heads[k]["per_read"][name] is None else heads[k]["per_read"][name])
        closest[name] = {"head": best, "mass": heads[best]["per_read"][name]}
    scores = [c["mass"] for c in closest.values() if c["mass"] is not None]
    return {"heads": heads, "closest_head": closest, "alignment": float(np.mean(scores)) if scores else None}


def audit(directory: str, samples: int = 500, seed: int = 0, plots: str | None = None) -> dict:
    import torch

    model, task, setting, meta = load_auditable(directory)
    if setting != "cot":
        raise InputError(f"this checkpoint was trained in the '{setting}' setting: it writes no chain of thought to "
                         f"audit; use 'cotproof eval' for its accuracy", SourceLoc(str(directory)),
                         expected="a cot checkpoint or a compiled construction")
    from bridge.progress import Progress
    from grammar.limits import require_memory

    cfg, length = model.cfg, task.n_prompt + task.n_steps
    require_memory(4.0 * samples * length * (40 * cfg.d_model * cfg.n_layers + 2 * cfg.n_heads * length),
                   f"auditing {samples:,} samples of {length:,} tokens", "--samples", "fewer --samples")
    with Progress(5 if meta.get("kind") == "construction" else 4, "stage", "audit") as stages:
        b = task.batch(np.random.default_rng(seed), samples, "cot", "test")  # held-out prompts only
        prompts = b.tokens[:, :b.prompt_len]
        gen = _greedy(model, task, prompts)
        stages.update()
        out = {"checkpoint": str(directory), "task": task.name, "samples": samples, "seed": seed,
               **_trace_report(task, prompts[:, :task.n_prompt], gen, b.answer, b.cot)}
        full = np.concatenate([prompts, gen[:, :-1]], axis=1)
        attn = _attention(model, full[:min(samples, 200)])
        out["attention"] = _alignment(task, prompts[:min(samples, 200), :task.n_prompt], attn)
        stages.update()
        precision = {}
        for dtype in ("bfloat16", "float16"):
            cast = model.to(getattr(torch, dtype))
            g = _greedy(cast, task, prompts)
            rep = _trace_report(task, prompts[:, :task.n_prompt], g, b.answer, b.cot)
            precision[dtype] = {"accuracy": rep["accuracy"], "unsound_steps": rep["unsound_steps"],
                                "traces_changed": int((g != gen).any(axis=1).sum())}
            stages.update()
        model.to(torch.float32)
        out["precision"] = precision
        if meta.get("kind") == "construction":
            out["exhaustive"] = _exhaustive_cvp(model, task, max_gates=3)
            stages.update()
    if plots:
        from bridge.audit_plots import write_plots

        out["plots"] = write_plots(Path(plots), task, prompts, gen, out, attn)
    return out


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


def cmd_audit(args) -> int:

    if args.plots:
        from bridge.inputs import writable_directory

        writable_directory(args.plots, "--plots")
    report = audit(args.dir, args.samples, args.seed, args.plots)
    departures = []
    if report["unsound_steps"]:
        departures.append(f"{report['unsound_steps']} unsound steps")
    al = report["attention"]["alignment"]
    if al is not None and al < ALIGNMENT_OK:
        departures.append(f"attention alignment {al:.3f} < {ALIGNMENT_OK}")
    for dtype, p in report["precision"].items():
        if p["traces_changed"]:
            departures.append(f"{p['traces_changed']} traces change in {dtype}")
    if report.get("exhaustive", {}).get("wrong"):
        departures.append(f"{report['exhaustive']['wrong']} small circuits wrong")
    report["departures"] = departures
    emit(report, args.json, human)
    if report["unsound_steps"] or report.get("exhaustive", {}).get("wrong"):
        return EXIT_FAILED
    return EXIT_FAILED if (args.strict and departures) else EXIT_OK


def human(r: dict) -> str:
    lines = [f"{r['checkpoint']}: {r['task']}, {r['samples']} samples (seed {r['seed']})",
             f"  accuracy            {r['accuracy']:.4f}",
             f"  steps checked       {r['steps_checked']}, unsound {r['unsound_steps']} "
             f"(in {r['samples_with_unsound_steps']} samples)",
             f"  right answer, unsound steps: {r['right_for_wrong_reason']}",
             f"  errors by position  {r['errors_by_position']}"]
    if "errors_by_gate_type" in r:
        lines.append(f"  errors by gate type {r['errors_by_gate_type']}")
    if r["first_unsound"]:
        lines.append(f"  first unsound       {json.dumps(r['first_unsound'])}")
    a = r["attention"]
    lines.append(f"  attention alignment {a['alignment']:.3f}" if a["alignment"] is not None else
                 "  attention alignment n/a")
    for name, c in a["closest_head"].items():
        lines.append(f"    {name:<10} closest head {c['head']} (mass {c['mass'] if c['mass'] is None else round(c['mass'], 3)})")
    for dtype, p in r["precision"].items():
        lines.append(f"  {dtype:<9} accuracy {p['accuracy']:.4f}, unsound {p['unsound_steps']}, "
                     f"traces changed {p['traces_changed']}")
    if "exhaustive" in r:
        e = r["exhaustive"]
        lines.append(f"  exhaustive: {e['circuits']} circuits of <= {e['max_gates']} gates, {e['wrong']} wrong")
    lines.append("  departures: " + ("; ".join(r["departures"]) if r["departures"] else "none"))
    return "\n".join(lines)


def register(sub) -> None:
    from bridge import flags

    p = flags.command(sub, "audit", cmd_audit, help="check every CoT step of a checkpoint against the construction")
    p.add_argument("dir")
    p.add_argument("--samples", type=flags.positive_int, default=500)
    p.add_argument("--seed", type=flags.seed, default=0)
    p.add_argument("--plots", metavar="DIR")
    p.add_argument("--strict", action="store_true", help="exit 1 on any departure, not only on unsound steps")
