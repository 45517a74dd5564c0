"""The certify engine: every prompt of a size (or a uniform sample, or one shard) checked step by step, and the
certificate that says so; merging shards' certificates and checking a certificate against a model.

A prompt is sound when the argmax after every prefix of its reference trace is the reference's next token: then
greedy decoding writes the reference, every step of which the task's step circuit accepts (the prompt space builds
it by the task's own fold, and the tests check it with the step circuit). The first unsound prompts are replayed
through ``audit``'s greedy decoding and its trace report, so a counterexample is seen, not only claimed.

What a certificate states, and what it does not: every prompt of the space at that size was checked, in the
arithmetic it names (dtype, device, torch version, and the teacher-forced kernels); another arithmetic, another
size or other weights are not covered. The smallest margin says how far the closest step is from a tie.
"""
from __future__ import annotations

import datetime
import functools
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grammar.errors import InputError, SourceLoc

VERSION = 1
KEEP = 10  # counterexamples a certificate lists (and replays), the first by prompt index
MARGIN_SLACK = 1e-3  # --check: a re-run margin may sit this much (relative) below the certificate's smallest


@dataclass(frozen=True)
class Subject:
    """A model as certify runs it: a name, the hash of its weights (None for a bare function), its task, the
    teacher-forced logits of a batch (``forced(prompts, continuation) -> (B, n, V)`` over the task's tokens), the
    baseline that shares nothing (for the benchmark), greedy decoding for replays, and what it costs: multiply-adds
    at a CoT position and at a prompt position (a trie node, or every prompt position where nothing is shared),
    and bytes per position of a block."""

    label: str
    weights_sha256: str | None
    task: object
    forced: Callable
    plain: Callable
    audited: object
    macs_per_step: float
    macs_per_node: float
    shares_prefixes: bool
    bytes_per_token: float
    arithmetic: dict


# ---- loading ------------------------------------------------------------------------------------------------

def decoder_subject(model, task, label: str, weights_sha256: str | None) -> Subject:
    """A cotproof ``Decoder`` (trained, or a compiled construction): shared-prefix teacher forcing."""
    import torch

    from bridge.audited import decoder_audited
    from neural.prefix_forcing import Forcer, forced_logits_plain

    c = model.cfg
    width = c.n_heads * c.d_head
    layer = 4 * c.d_model * width + 2 * c.d_model * c.d_ff
    tabled = 3 * c.d_model * width if Forcer.tabulates(c) else 0  # layer 0's q, k, v read from a table
    step = c.n_layers * layer - tabled + c.d_model * c.vocab_size
    node = (c.n_layers - 1) * layer + 2 * c.d_model * width - tabled  # the last layer stops at its keys and values
    cache = 2 * c.n_layers * width * 4  # float32 keys and values kept per position
    forcer = functools.cache(lambda: Forcer(model))  # its table made once, and only when a check runs
    return Subject(label, weights_sha256, task, lambda p, k: forcer().logits(p, k),
                   lambda p, k: forced_logits_plain(model, p, k),
                   decoder_audited(model), step, max(node, 0), True,
                   cache + 4 * (c.d_ff + 4 * c.d_model + c.vocab_size),
                   {"dtype": "float32", "device": str(next(model.parameters()).device), "torch": torch.__version__,
                    "path": "teacher forcing over the prompt trie (KV cache shared by each prefix)"})


def callable_subject(fn, task, ids: np.ndarray, label: str, weights_sha256: str | None = None,
                     macs_per_token: float = 1e6) -> Subject:
    """A model given as a function from its own ids to logits: one plain teacher-forced pass per batch."""
    import torch

    from bridge.audited import callable_audited
    from neural.prefix_forcing import forced_logits_callable

    def forced(p, k):
        return forced_logits_callable(fn, ids, p, k)

    return Subject(label, weights_sha256, task, forced, forced, callable_audited(fn, ids), macs_per_token,
                   macs_per_token, False, 64.0 * len(ids), {"dtype": "the model's own", "device": "the model's own",
                                     "torch": torch.__version__, "path": "plain teacher forcing of a function"})


def load_subject(path: str, fmt: str = "cotproof", vocab: str | None = None) -> Subject:
    """A cotproof checkpoint (trained, or a compiled CVP construction), or with ``fmt="hf"`` a local Hugging Face
    causal LM read with a vocabulary file. Anything else is an InputError naming the file."""
    if fmt == "hf":
        return _hf_subject(path, vocab)
    from bridge.audit import load_auditable, require_cot
    from neural import checkpoint

    model, task, setting, _ = load_auditable(path)
    require_cot(setting, SourceLoc(path))
    digest = hashlib.sha256((Path(path) / checkpoint.WEIGHTS).read_bytes()).hexdigest()
    return decoder_subject(model, task, str(path), digest)


def _hf_subject(directory: str, vocabulary_path: str | None) -> Subject:
    """audit's reader of a Hugging Face model; its weights' hash is over its safetensors files."""
    from bridge.audit import load_hf

    fn, task, ids, _ = load_hf(directory, vocabulary_path)
    h = hashlib.sha256()
    for f in sorted(Path(directory).glob("*.safetensors")):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return callable_subject(fn, task, ids, str(directory), h.hexdigest())


# ---- what is asked --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Request:
    """Which prompts of the space: a range (the whole space, or shard ``i`` of ``k``), or ``samples`` uniform
    draws (seeded) with a Clopper-Pearson bound at ``confidence``."""

    start: int
    stop: int
    shard: tuple[int, int] | None = None
    samples: int | None = None
    seed: int = 0
    confidence: float = 0.99

    @classmethod
    def whole(cls, count: int, shard: tuple[int, int] | None = None) -> "Request":
        if shard is None:
            return cls(0, count)
        i, k = shard
        return cls(count * i // k, count * (i + 1) // k, shard)

    @property
    def prompts(self) -> int:
        return self.samples if self.samples is not None else self.stop - self.start


def estimate(subject: Subject, space, request: Request) -> dict:
    """Multiply-adds, before any work: every position the check computes, the continuation once per prompt and
    the prompt positions once per distinct prefix (a shard: its share of the trie; a sample, or a model that shares
    nothing: every prompt position)."""
    task = subject.task
    if subject.shares_prefixes and request.samples is None:
        nodes = space.trie_nodes() * request.prompts / max(space.count, 1)
    else:
        nodes = request.prompts * task.n_prompt
    steps = request.prompts * task.n_steps
    return {"positions": float(nodes + steps),
            "multiply_adds": float(nodes * subject.macs_per_node + steps * subject.macs_per_step)}


def block_rows(subject: Subject, budget_bytes: float) -> int:
    """Prompts per block: as many as fit ``budget_bytes`` of caches and activations, in 256..65,536."""
    per_row = subject.bytes_per_token * (subject.task.n_prompt + subject.task.n_steps + 1) * 3
    return int(min(65536, max(256, budget_bytes // max(per_row, 1))))


# ---- the run ----------------------------------------------------------------------------------------------------

def run(subject: Subject, space, request: Request, *, rows: int, on_progress=None) -> dict:
    """Check the prompts ``request`` names; a KeyboardInterrupt ends the run early with what was checked so far
    (status ``incomplete``)."""
    task = subject.task
    rng = np.random.default_rng(request.seed)
    checked, unsound, examples = 0, 0, []
    low = None
    started = time.perf_counter()
    interrupted = False
    try:
        for lo in range(0, request.prompts, rows):
            n = min(rows, request.prompts - lo)
            if request.samples is None:
                index = np.arange(request.start + lo, request.start + lo + n)
                prompts, states = space.decode(index)
            else:  # sorted, so that draws sharing a prefix are neighbours
                prompts, states, drawn = space.draw(rng, n)
                order = np.lexsort(prompts.T[::-1])
                prompts, states, index = prompts[order], states[order], [drawn[i] for i in order]
            s = scores(subject, prompts, states)
            bad = np.flatnonzero(s.wrong_step >= 0)
            unsound += bad.size
            for b in bad[:max(0, KEEP - len(examples))]:
                examples.append({"index": int(index[b]), "step": int(s.wrong_step[b]),
                                 "expected": task.vocab[int(states[b, s.wrong_step[b]])],
                                 "got": _token(task, int(s.got[b])), "prompt": _words(task, prompts[b]),
                                 "replay": replay(subject, prompts[b], states[b], int(s.wrong_step[b]),
                                                  _token(task, int(s.got[b])))})
            j = int(np.argmin(s.margin))
            if low is None or s.margin[j] < low["margin"]:
                low = {"margin": float(s.margin[j]), "index": int(index[j]), "step": int(s.margin_step[j]),
                       "prompt": _words(task, prompts[j])}
            checked += n
            if on_progress is not None:
                on_progress(checked)
    except KeyboardInterrupt:
        interrupted = True
    return _certificate(subject, space, request, checked, unsound, examples, low,
                        time.perf_counter() - started, interrupted)


def scores(subject: Subject, prompts: np.ndarray, states: np.ndarray):
    """Each prompt's reference teacher-forced through the model (``neural.prefix_forcing.StepScores``): the
    separator, then every reference state but the last, and each prediction scored against the next state."""
    from neural.prefix_forcing import score

    continuation = np.concatenate([np.full((len(prompts), 1), subject.task.eq), states[:, :-1]], axis=1)
    return score(subject.forced(prompts, continuation), states)


def _token(task, t: int) -> str:
    return task.vocab[t] if 0 <= t < len(task.vocab) else f"<id {t}>"


def _words(task, tokens) -> list[str]:
    return [task.vocab[int(t)] for t in tokens]


def _certificate(subject, space, request, checked, unsound, examples, low, seconds, interrupted) -> dict:
    task = subject.task
    cert = {"certificate": "cotproof certify", "version": VERSION, "model": subject.label,
            "weights_sha256": subject.weights_sha256, "task": {"kind": task.name, **task.params},
            "space": space.describe(), "checked": checked, "unsound_prompts": unsound,
            "counterexamples": examples, "smallest_margin": low, "arithmetic": subject.arithmetic,
            "seconds": round(seconds, 2), "created": datetime.datetime.now(datetime.timezone.utc).isoformat()}
    if request.samples is None:
        cert["range"] = [request.start, request.stop]
        cert["shard"] = list(request.shard) if request.shard else None
        cert["status"] = ("incomplete" if interrupted or checked < request.prompts else
                          "counterexample" if unsound else "certified")
    else:
        bound = clopper_pearson_upper(unsound, checked, request.confidence) if checked else 1.0
        cert["samples"] = {"drawn": checked, "asked": request.samples, "seed": request.seed,
                           "confidence": request.confidence, "unsound_drawn": unsound, "upper_bound": bound,
                           "upper_bound_prompts": bound * space.count}
        cert["status"] = ("incomplete" if interrupted or checked < request.samples else
                          "counterexample" if unsound else "sampled")
    return cert


def replay(subject: Subject, prompt: np.ndarray, states: np.ndarray, step: int, got: str) -> dict:
    """A counterexample through ``audit``'s greedy decoding and trace report: the greedy trace, its first unsound
    step by the task's step circuit, and whether it departs from the reference where the check said it does."""
    from bridge.audit import trace_report

    task = subject.task
    prompt, states = np.asarray(prompt)[None], np.asarray(states)[None]
    gen = subject.audited.generate(np.concatenate([prompt, [[task.eq]]], axis=1), task.n_steps, None)
    report = trace_report(task, prompt, gen, states[:, -1], states)
    differs = np.flatnonzero(gen[0] != states[0])
    first = int(differs[0]) if differs.size else None
    confirmed = first == step and _token(task, int(gen[0, first])) == got
    return {"greedy": _words(task, gen[0]), "first_unsound": report["first_unsound"], "confirmed": bool(confirmed)}


# ---- the Clopper-Pearson bound ------------------------------------------------------------------------------

def clopper_pearson_upper(failures: int, trials: int, confidence: float) -> float:
    """The exact one-sided upper bound u on a proportion, from ``failures`` of ``trials`` uniform draws: the p with
    P(Binomial(trials, p) <= failures) = 1 - confidence, i.e. the ``confidence`` quantile of Beta(x + 1, n - x).
    Found by bisection on mpmath's regularized incomplete beta, to 1e-12."""
    if failures >= trials:
        return 1.0
    if failures == 0:  # the closed form
        return 1.0 - (1.0 - confidence) ** (1.0 / trials)
    import mpmath

    lo, hi = 0.0, 1.0
    a, b = failures + 1, trials - failures
    while hi - lo > 1e-12:
        mid = (lo + hi) / 2
        if mpmath.betainc(a, b, 0, mid, regularized=True) < confidence:
            lo = mid
        else:
            hi = mid
    return hi


# ---- shards and checks --------------------------------------------------------------------------------------

SAME = ("weights_sha256", "task", "arithmetic")


def merge(certs: list[tuple[str, dict]]) -> dict:
    """One certificate from shards of one enumeration: the same weights, task, space and arithmetic, ranges that
    tile the space exactly. Overlapping, missing or foreign pieces are an InputError naming the file."""
    first_path, first = certs[0]
    for path, c in certs:
        if "range" not in c:
            raise InputError("a sampled certificate cannot be merged", SourceLoc(path),
                             expected="certificates of shards (--shard i/k)")
        for key in SAME:
            if c.get(key) != first.get(key):
                raise InputError(f"its {key} differs from {first_path}'s: the shards are of different "
                                 f"{'weights' if key == 'weights_sha256' else key}", SourceLoc(path),
                                 expected="shards of one model's enumeration")
        if c["space"]["count"] != first["space"]["count"] or c["space"]["sizes"] != first["space"]["sizes"]:
            raise InputError(f"its prompt space differs from {first_path}'s", SourceLoc(path),
                             expected="shards of one enumeration")
        if c["status"] == "incomplete":
            raise InputError("this shard is incomplete: run it again", SourceLoc(path),
                             expected="complete shards")
    ordered = sorted(certs, key=lambda pc: tuple(pc[1]["range"]))
    at, count = 0, first["space"]["count"]
    for path, c in ordered:
        lo, hi = c["range"]
        if lo < at:
            raise InputError(f"its prompts [{lo:,}, {hi:,}) overlap another shard's (up to {at:,})", SourceLoc(path),
                             expected="shards that do not overlap")
        if lo > at:
            raise InputError(f"prompts [{at:,}, {lo:,}) are in no shard", SourceLoc(path),
                             expected="shards that cover the space")
        at = hi
    if at != count:
        raise InputError(f"prompts [{at:,}, {count:,}) are in no shard", SourceLoc(ordered[-1][0]),
                         expected="shards that cover the space")
    examples = sorted((e for _, c in certs for e in c["counterexamples"]), key=lambda e: e["index"])[:KEEP]
    margins = [c["smallest_margin"] for _, c in certs if c["smallest_margin"]]
    unsound = sum(c["unsound_prompts"] for _, c in certs)
    out = {k: v for k, v in first.items() if k not in ("shard",)}
    out.update(range=[0, count], shard=None, checked=sum(c["checked"] for _, c in certs), unsound_prompts=unsound,
               counterexamples=examples, smallest_margin=min(margins, key=lambda m: m["margin"]) if margins else None,
               seconds=round(sum(c["seconds"] for _, c in certs), 2), merged_from=[p for p, _ in ordered],
               status="counterexample" if unsound else "certified")
    return out


def other_weights(cert: dict, subject: Subject) -> str | None:
    """Why ``cert`` is not about ``subject``'s weights, or None when it is."""
    if cert.get("weights_sha256") == subject.weights_sha256:
        return None
    return f"the weights' sha256 is {subject.weights_sha256}, the certificate's is {cert.get('weights_sha256')}"


def check(cert: dict, subject: Subject, space, samples: int, seed: int, rows: int) -> dict:
    """Re-run part of what ``cert`` states against ``subject``: the weights' hash, then ``samples`` prompts drawn
    from its range (a sampled certificate's: from the whole space), and every counterexample it lists."""
    foreign = other_weights(cert, subject)
    if foreign:
        return {"confirmed": False, "rechecked": 0, "problems": [foreign]}
    rng = np.random.default_rng(seed)
    if "range" in cert:
        lo, hi = cert["range"]
        index = np.unique(rng.integers(lo, hi, min(samples, hi - lo))).tolist()
        prompts, states = space.decode(index)
    else:
        prompts, states, index = space.draw(rng, samples)
    listed = cert["counterexamples"]
    for e in listed:
        p, st = space.decode_one(e["index"])
        prompts, states = np.concatenate([prompts, p]), np.concatenate([states, st])
    index = list(index) + [e["index"] for e in listed]
    expected_step = [None] * (len(index) - len(listed)) + [e["step"] for e in listed]
    problems, low = [], float("inf")
    for start in range(0, len(index), rows):
        part = slice(start, start + rows)
        s = scores(subject, prompts[part], states[part])
        low = min(low, float(s.margin.min()))
        for b, (i, want) in enumerate(zip(index[part], expected_step[part])):
            if want is not None and int(s.wrong_step[b]) != want:
                problems.append(f"counterexample {i} fails at step {int(s.wrong_step[b])}, not {want}")
            elif want is None and s.wrong_step[b] >= 0 and cert["status"] == "certified":
                problems.append(f"prompt {i} has an unsound step {int(s.wrong_step[b])}, which the certificate "
                                f"says no prompt has")
    stated = (cert.get("smallest_margin") or {}).get("margin")
    if stated is not None and low < stated - MARGIN_SLACK * max(1.0, abs(stated)):
        problems.append(f"a re-run margin {low:.6g} is below the certificate's smallest {stated:.6g}")
    return {"confirmed": not problems, "problems": problems[:KEEP], "rechecked": len(index),
            "smallest_margin_rechecked": low}


def certify_callable(fn, task, vocab: dict, *, length: int | None = None, up_to: bool = False,
                     samples: int | None = None, seed: int = 0, confidence: float = 0.99, rows: int = 4096,
                     label: str = "<callable>") -> dict:
    """The certificate of any model given as a function from its own ids (B, T) to logits (B, T, V), as
    ``audit_callable`` takes it: ``task`` a task or its description, ``vocab`` each task token -> the model's id."""
    from bridge.foreign import resolve_task, token_ids
    from neural.learning.prompt_space import prompt_space

    task = resolve_task(task, label)
    subject = callable_subject(fn, task, token_ids(task, vocab, label), label)
    space = prompt_space(task, length, up_to)
    request = (Request(0, space.count, samples=samples, seed=seed, confidence=confidence) if samples
               else Request.whole(space.count))
    return run(subject, space, request, rows=rows)
