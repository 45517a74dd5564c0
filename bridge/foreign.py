"""Models cotproof did not train, read in a task's terms: the vocabulary that maps the task's tokens to a model's
ids, and the task itself.

A vocabulary file is JSON: ``{"task": {"kind": "s5", "length": 8}, "setting": "cot", "tokens": {"=": 0, ...}}``:
the task (as in a checkpoint's config.json), the setting the model was trained in, and one id per task token.
``cotproof export --to hf-gpt2`` writes one beside the model.
"""
from __future__ import annotations

import numpy as np

from grammar.errors import InputError, ParameterError, SourceLoc

EXPECTED = 'a vocabulary file: {"task": {"kind": ..., params}, "setting": "cot", "tokens": {token: id, ...}}'


def resolve_task(task, where: str):
    """A task object, or one built from its description ``{"kind": ..., **params}``."""
    from neural.learning.tasks import FoldTask, task_from_description

    if isinstance(task, FoldTask):
        return task
    try:
        return task_from_description(task)
    except ParameterError as err:
        raise InputError(f"the task {task!r} cannot be built: {err}", SourceLoc(where), expected=EXPECTED) from None


def token_ids(task, tokens: dict, where: str, model_vocab: int | None = None) -> np.ndarray:
    """The model's id of each task token, in the task's order. Every task token must be there, each id distinct
    and (when the model's vocabulary size is known) inside it."""
    if not isinstance(tokens, dict):
        raise InputError("the vocabulary must map each task token to an id", SourceLoc(where), expected=EXPECTED)
    missing = [t for t in task.vocab if t not in tokens]
    if missing:
        shown = ", ".join(repr(t) for t in missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise InputError(f"the vocabulary lacks {len(missing)} of the {task.name} task's tokens: {shown}",
                         SourceLoc(where), expected=f"an id for each of the task's {len(task.vocab)} tokens")
    ids = [tokens[t] for t in task.vocab]
    bad = next((t for t, i in zip(task.vocab, ids) if isinstance(i, bool) or not isinstance(i, int) or i < 0), None)
    if bad is not None:
        raise InputError(f"token {bad!r} has the id {tokens[bad]!r}", SourceLoc(where), expected="ids 0 or more")
    if len(set(ids)) != len(ids):
        raise InputError("two task tokens share one id", SourceLoc(where), expected="a distinct id per token")
    if model_vocab is not None and max(ids) >= model_vocab:
        token = task.vocab[int(np.argmax(ids))]
        raise InputError(f"token {token!r} has the id {max(ids)}, outside the model's {model_vocab} ids",
                         SourceLoc(where), expected=f"ids below {model_vocab}")
    return np.asarray(ids, dtype=np.int64)


def read_vocabulary(path: str) -> dict:
    """A vocabulary file, checked for shape (its tokens are checked against the task by ``token_ids``)."""
    from grammar.source import parse_json, read_text

    doc = parse_json(read_text(path, "vocabulary file"), path, "the vocabulary file", EXPECTED)
    if not isinstance(doc, dict) or "task" not in doc or "tokens" not in doc:
        raise InputError('the vocabulary file needs "task" and "tokens"', SourceLoc(path), expected=EXPECTED)
    return doc
