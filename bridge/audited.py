"""A model as ``cotproof audit`` sees it: greedy decoding in the task's own token ids, and, where the model can
give them, its attention weights and replays in other dtypes. One ``Audited`` for cotproof's own ``Decoder``, one
for any function from a model's ids to logits (a TransformerLens bridge, a Hugging Face model, a hand-written
function)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Audited:
    """What an audit needs of a model, in the task's own token ids: greedy decoding (``generate(prompts, steps,
    dtype)``, dtype None for the model's own arithmetic), the attention weights of a pass over some tokens (per layer,
    (B, H, T, T)) where the model can give them, and the dtypes it can be replayed in."""

    generate: Callable[[np.ndarray, int, str | None], np.ndarray]
    attention: Callable[[np.ndarray], list[np.ndarray]] | None = None
    dtypes: tuple[str, ...] = ()


def decoder_audited(model) -> Audited:
    """A cotproof ``Decoder``: KV-cached greedy decoding, its own attention weights, and bfloat16/float16 replays
    (the weights cast, then cast back)."""
    import torch

    from neural.learning.evaluation import generate
    from neural.learning.mechanism import attention_weights

    def in_dtype(prompts, steps, dtype=None):
        if dtype is None:
            return generate(model, prompts, steps)
        try:
            return generate(model.to(getattr(torch, dtype)), prompts, steps)
        finally:
            model.to(torch.float32)

    return Audited(in_dtype, lambda tokens: attention_weights(model, tokens), ("bfloat16", "float16"))


def callable_audited(fn, ids: np.ndarray, attention=None):
    """An ``Audited`` for a function from the model's ids (a CPU int64 tensor, B x T) to logits (B, T, V), a tensor
    or an array: ``neural.decoding``'s greedy loop over a ``CallableSession`` (one token at a time over the whole
    sequence, no cache), the argmax taken over the task's tokens only. Runs under ``torch.inference_mode``."""
    from neural.decoding import CallableSession, as_numpy, greedy

    def generate(prompts, steps, dtype=None):
        return greedy(CallableSession(fn, ids), np.asarray(prompts, dtype=np.int64), steps)

    def attend(tokens):
        import torch

        with torch.inference_mode():
            return [as_numpy(w) for w in attention(torch.as_tensor(ids[tokens]))]

    return Audited(generate, None if attention is None else attend, ())
