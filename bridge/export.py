"""cotproof models for other tools (``cotproof export``: ``bridge.commands.exporting``).

- ``export SOURCE --to transformer-lens OUT``: a TransformerLens 4 bridge (``neural.tlens``). SOURCE is a trained
  checkpoint, a compiled checkpoint, or a netlist or spec (compiled here). A construction is rebuilt for IEEE
  float32, the arithmetic TransformerLens runs it in, proved there (the lemmas of ``verify --ieee float32``), and
  written with its mechanism manifest (``bridge.manifest``).
- ``export DIR --to hf-gpt2 OUT``: a trained checkpoint as a ``GPT2LMHeadModel`` plus the vocabulary file that
  ``cotproof audit OUT --format hf --vocab OUT/vocab.json`` reads (``neural.hf``).
- ``export --suite DIR``: a benchmark of constructions with manifests, for circuit-discovery methods.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grammar.errors import InputError, ParameterError, SourceLoc
from grammar.ir import Mode

FORMATS = ("transformer-lens", "hf-gpt2")
CIRCUITS = Path(__file__).resolve().parents[1] / "circuits"
SUITE_NETLISTS = ("c17.bench", "full_adder.aag", "rca4.bench", "ctrl.aig", "int2float.aig", "c880.bench")
SUITE_RANDOM = ((6, 16, 0), (8, 64, 1))  # (inputs, gates, seed) of seeded random netlists
SUITE_CVP = (4, 8, 16)  # max_gates


@dataclass(frozen=True)
class Source:
    """What is exported: a construction (with its circuit, for Theorem 3.3) or a trained model (with its task)."""

    cfg: object
    arrays: dict
    vocab: list
    construction: object | None = None  # ConstructedModel
    circuit: object | None = None  # NormCircuit, Theorem 3.3 mode
    task: dict | None = None  # trained: {"kind", params}
    setting: str | None = None


def load_source(path: str, overrides: dict | None = None) -> Source:
    if Path(path).is_dir():
        return _from_checkpoint(path)
    from bridge.target import build, in_ieee, load_target

    target = in_ieee(load_target(path, overrides), "float32")
    model = build(target)
    return Source(model.config, model.weights, list(model.vocab), model,
                  target.circuit if model.mode == Mode.THM33 else None)


def _from_checkpoint(directory: str) -> Source:
    from neural import checkpoint

    ck = checkpoint.load(directory)
    where = SourceLoc(str(Path(directory) / checkpoint.CONFIG))
    if ck.meta.get("kind") != "construction":
        from neural.learning.evaluation import load_trained

        _, _, setting, meta = load_trained(directory)
        return Source(ck.config, ck.weights, list(meta["vocab"]), task=dict(meta["task"]), setting=setting)
    c = ck.meta.get("construction", {})
    from neural.construction.construct import build_cvp, build_thm33
    from neural.construction.fp import IEEE_FORMATS, FPFormat

    fp32 = FPFormat(*IEEE_FORMATS["float32"])
    circuit, key_scale, max_gates = None, c.get("key_scale"), c.get("max_gates")
    try:
        if not isinstance(key_scale, (int, float)) or isinstance(key_scale, bool):
            raise ParameterError(f"construction.key_scale is {key_scale!r}, not a number")
        if c.get("mode") == Mode.CVP:
            if not isinstance(max_gates, int) or isinstance(max_gates, bool):
                raise ParameterError(f"construction.max_gates is {max_gates!r}, not a whole number")
            model = build_cvp(max_gates, fp32, float(key_scale))
        elif "circuit_gates" in c:
            from grammar.ir import NormCircuit

            circuit = NormCircuit.from_dict(c["circuit_gates"])
            model = build_thm33(circuit, fp32, float(key_scale))
        else:
            raise ParameterError("this Theorem 3.3 checkpoint does not store its circuit (it was compiled by an "
                                 "older cotproof): compile it again, or export its netlist (cotproof export FILE "
                                 "--to ...)")
    except ParameterError as err:
        raise InputError(str(err), where, expected="a checkpoint written by cotproof compile") from None
    if set(model.weights) != set(ck.weights) or any(not np.array_equal(model.weights[k], ck.weights[k])
                                                    for k in model.weights):
        raise InputError("the checkpoint's weights are not the construction its config.json describes (edited, or "
                         "from another version), so no proof or manifest is about them", where,
                         expected="a checkpoint written by cotproof compile")
    return Source(model.config, model.weights, list(model.vocab), model, circuit)


def prove_float32(model, circuit, where: str, timeout_s: float) -> dict:
    """The lemmas of ``verify --ieee float32`` over these weights (the bounded simulations aside)."""
    from bridge.proof import prove_ieee_lemmas

    report = prove_ieee_lemmas(model, circuit, "float32", where, timeout_s)
    return {"status": report.status, "arithmetic": report.arithmetic,
            "lemmas": [{"name": r.name, "status": r.status} for r in report.lemmas]}


def export(source: Source, to: str, out: str, where: str, timeout_s: float = 60.0) -> dict:
    """Write ``source`` in format ``to`` at ``out``; the summary printed (with the proof, for a construction)."""
    if to == "hf-gpt2":
        if source.task is None:
            raise ParameterError("GPT-2 has LayerNorm in every block and the constructions have none: export a "
                                 "construction with --to transformer-lens")
        from neural.hf import save_hf_gpt2

        vocabulary = {"task": source.task, "setting": source.setting,
                      "tokens": {tok: i for i, tok in enumerate(source.vocab)}}
        fold = save_hf_gpt2(source.cfg, source.arrays, out, vocabulary)
        return {"out": str(out), "to": to, "unembedding_bias": fold}
    from bridge.manifest import manifest
    from neural.tlens import save_transformer_lens

    summary = {"out": str(out), "to": to}
    doc = None
    if source.construction is not None:
        proof = prove_float32(source.construction, source.circuit, where, timeout_s)
        doc = manifest(source.construction, source.circuit, proof)
        summary.update(mode=source.construction.mode, proof=proof["status"])
    save_transformer_lens(source.cfg, source.arrays, out, source.vocab, doc,
                          extra={"task": source.task, "setting": source.setting} if source.task else None)
    return summary


def suite_members() -> list[tuple[str, object]]:
    """(name, how to load it): the suite's constructions."""
    missing = [name for name in SUITE_NETLISTS if not (CIRCUITS / name).is_file()]
    if missing:
        raise InputError(f"the suite's netlists are not here: {', '.join(missing)}", SourceLoc(str(CIRCUITS)),
                         expected="the cotproof source tree, whose circuits/ folder holds them")
    members = [(f"thm33-{Path(name).stem}", str(CIRCUITS / name)) for name in SUITE_NETLISTS]
    members += [(f"thm33-random-{n}x{g}-seed{s}", (n, g, s)) for n, g, s in SUITE_RANDOM]
    members += [(f"cvp-{g}", g) for g in SUITE_CVP]
    return members


def _suite_source(spec) -> tuple[Source, str]:
    from grammar.normalize import normalize
    from neural.construction.construct import build_cvp, build_thm33
    from neural.construction.fp import IEEE_FORMATS, FPFormat

    fp32 = FPFormat(*IEEE_FORMATS["float32"])
    if isinstance(spec, str):
        return load_source(spec), spec
    if isinstance(spec, int):
        model = build_cvp(spec, fp32)
        return Source(model.config, model.weights, list(model.vocab), model), f"cvp max_gates={spec}"
    from bridge.benchmarks.gen import random_circuit

    nc = normalize(random_circuit(*spec[:2], seed=spec[2]))
    model = build_thm33(nc, fp32)
    return Source(model.config, model.weights, list(model.vocab), model, nc), nc.name


def write_suite(directory: str, timeout_s: float) -> list[dict]:
    from neural import checkpoint

    rows = []
    for name, spec in suite_members():
        source, label = _suite_source(spec)
        summary = export(source, "transformer-lens", str(Path(directory) / name), label, timeout_s)
        c, m = source.cfg, source.construction
        rows.append({"name": name, "source": label, "mode": m.mode, "layers": c.n_layers, "heads": c.n_heads,
                     "d_model": c.d_model, "vocab": c.vocab_size, "positions": c.max_len,
                     "gates": m.n_gates if m.mode == Mode.THM33 else m.max_gates, "proof": summary["proof"]})
    checkpoint.atomic_write_text(Path(directory) / "suite.json", json.dumps(rows, indent=2) + "\n")
    checkpoint.atomic_write_text(Path(directory) / "README.md", _suite_readme(rows))
    return rows


def _suite_readme(rows: list[dict]) -> str:
    head = ("# cotproof mechanism suite\n\nConstructed transformers whose mechanism is proved, head by head, in IEEE "
            "float32 (the lemmas of `cotproof verify --ieee float32`). Each folder holds a TransformerLens export "
            "(`neural.tlens.load_transformer_lens`) and `manifest.json`: the residual fields, where every head "
            "attends from every position, what each FFN unit group computes, the circuit and the proof.\n\n"
            "| model | source | mode | gates | layers | heads | d_model | vocab | positions | proof |\n"
            "|---|---|---|---|---|---|---|---|---|---|\n")
    return head + "".join(f"| {r['name']} | {r['source']} | {r['mode']} | {r['gates']} | {r['layers']} | "
                          f"{r['heads']} | {r['d_model']} | {r['vocab']} | {r['positions']} | {r['proof']} |\n"
                          for r in rows)
