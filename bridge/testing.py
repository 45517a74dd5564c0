"""pytest helpers for SMT-checked regression tests::

    from bridge.testing import assert_proved, assert_refuted

    def test_cvp_construction_is_exact():
        assert_proved("specs/cvp.lark")

    def test_cold_keys_are_caught():
        assert_refuted("specs/cvp.lark", key_scale=1)

    def test_float16_deployment_is_exact():
        assert_proved("specs/cvp.lark", ieee="float16")

``assert_sound(checkpoint_dir, samples=..., seed=...)`` audits a checkpoint's CoT traces step by step.

Keyword arguments are ``--override`` keys (``key_scale``, ``construction.ebits``, ``claims.retrieval.unrolled_k``...).
"""
from __future__ import annotations

import json


def _overrides(kwargs: dict) -> dict[str, str]:
    return {key.replace("__", "."): str(value) for key, value in kwargs.items()}


def _run(spec: str, timeout: float, kwargs: dict, ieee: str | None = None):
    from bridge.proof import verify

    return verify(str(spec), _overrides(kwargs), timeout_s=timeout, ieee=ieee)


def assert_proved(spec, timeout: float = 60.0, ieee: str | None = None, **overrides):
    """Every lemma of ``spec`` is proved by a solver (or checked exhaustively); returns the report. ``ieee``
    (float16, bfloat16, float32): proved in that torch dtype's arithmetic, for every summation order."""
    report = _run(spec, timeout, overrides, ieee)
    if report.status != "proved":
        raise AssertionError(f"{spec} is {report.status.upper()}, not PROVED:\n"
                             + json.dumps(report.to_json()["lemmas"], indent=1)
                             + (f"\ncounterexample: {json.dumps(report.counterexample)}" if report.counterexample
                                else ""))
    return report


def assert_refuted(spec, timeout: float = 60.0, lemma: str | None = None, replayed: bool = True,
                   ieee: str | None = None, **overrides):
    """The spec is refuted (by ``lemma`` if given) and the counterexample replays (in neural.construction.fp, or
    in torch in the ``ieee`` dtype)."""
    report = _run(spec, timeout, overrides, ieee)
    if report.status != "refuted":
        raise AssertionError(f"{spec} with {overrides} is {report.status.upper()}, not REFUTED")
    cex = report.counterexample or {}
    if lemma is not None and cex.get("lemma") != lemma:
        raise AssertionError(f"refuted by {cex.get('lemma')}, not {lemma}: {json.dumps(cex)}")
    if replayed and not cex.get("replayed"):
        raise AssertionError(f"the counterexample did not replay: {json.dumps(cex)}")
    return report


def assert_sound(checkpoint_dir, samples: int = 200, seed: int = 0, min_accuracy: float | None = None) -> dict:
    """Every CoT step of ``samples`` greedy traces of the checkpoint is sound (and, optionally, accurate enough)."""
    from bridge.audit import audit

    report = audit(str(checkpoint_dir), samples, seed)
    if report["unsound_steps"]:
        raise AssertionError(f"{checkpoint_dir}: {report['unsound_steps']} unsound steps of {report['steps_checked']};"
                             f" first: {json.dumps(report['first_unsound'])}")
    if min_accuracy is not None and report["accuracy"] < min_accuracy:
        raise AssertionError(f"{checkpoint_dir}: accuracy {report['accuracy']:.4f} < {min_accuracy}")
    return report
