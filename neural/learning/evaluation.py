"""Greedy decoding, loading a trained checkpoint, and scoring it on one split of a task's prompts."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from neural import checkpoint
from neural.learning.tasks import IGNORE, SETTINGS, TEST_SEED, FoldTask, task_from_description
from neural.model import Decoder


def generate(model: Decoder, prompts, steps: int) -> np.ndarray:
    """Batched greedy decoding with the KV cache: ``neural.decoding.greedy`` over the module."""
    from neural.decoding import TorchSession, greedy

    return greedy(TorchSession(model), np.asarray(prompts), steps)


def load_trained(directory) -> tuple[Decoder, FoldTask, str, dict]:
    from grammar.errors import InputError, SourceLoc

    ck = checkpoint.load(directory)
    if "task" not in ck.meta or "setting" not in ck.meta:
        raise InputError("this checkpoint names no task and setting (a compiled construction?)",
                         SourceLoc(str(Path(directory) / checkpoint.CONFIG)),
                         expected='"task" and "setting" in config.json')
    where = SourceLoc(str(Path(directory) / checkpoint.CONFIG))
    if ck.meta["setting"] not in SETTINGS:
        raise InputError(f"config.json names the setting {ck.meta['setting']!r}", where,
                         expected=" or ".join(SETTINGS))
    try:
        task = task_from_description(ck.meta["task"])
    except (TypeError, ValueError) as err:  # a config from another version, or edited by hand
        raise InputError(f"config.json names a task this version cannot build: {err}",
                         where, expected="a task written by this version of cotproof train") from None
    if list(task.vocab) != list(ck.meta.get("vocab", task.vocab)):
        raise InputError("the checkpoint's vocabulary differs from its task's", SourceLoc(str(directory)),
                         expected="a checkpoint written by cotproof train")
    model = Decoder.from_arrays(ck.config, ck.weights)
    return model, task, ck.meta["setting"], ck.meta


def evaluate_model(model: Decoder, task: FoldTask, setting: str, samples: int = 1000, seed: int = TEST_SEED,
                   batch_size: int = 250, split: str = "test", on_progress=None) -> dict:
    """Greedy answer accuracy on fresh samples of one split (by default the held-out test prompts, which training
    never draws), per-position CoT accuracy, CoT soundness, and, where the answer has parts (S5's five images),
    the mean fraction of them right (``answer_part_accuracy``). ``on_progress(samples_done)`` after each batch."""
    rng = np.random.default_rng(seed)
    correct, total, per_pos, sound_steps, steps, part_hits = 0, 0, None, 0, 0, None
    model.eval()
    device = next(model.parameters()).device
    while total < samples:
        n = min(batch_size, samples - total)
        b = task.batch(rng, n, "cot", split)  # the prompt is the same in every setting
        prompts = b.tokens[:, :b.prompt_len]
        if setting == "cot":
            gen = generate(model, prompts, task.n_steps)
            answer = gen[:, -1]
            hits = gen == b.cot
            per_pos = hits.sum(0) if per_pos is None else per_pos + hits.sum(0)
            written = gen
        else:
            with torch.inference_mode():
                logits, _ = model(torch.as_tensor(prompts, device=device))
            answer = logits[:, -1].argmax(-1).cpu().numpy()
            # hint: the states the model reads out at the labelled prompt positions are its intermediate steps
            written = logits[:, task.hint_positions].argmax(-1).cpu().numpy() if setting == "hint" else None
        if written is not None:
            ok = task.check_steps(b.tokens[:, :task.n_prompt], written)
            sound_steps, steps = sound_steps + int(ok.sum()), steps + ok.size
        correct += int((answer == b.answer).sum())
        parts = task.answer_parts(answer)
        if parts is not None:
            part_hits = (part_hits or 0.0) + float((parts == task.answer_parts(b.answer)).mean(axis=1).sum())
        total += n
        if on_progress is not None:
            on_progress(total)
    out = {"accuracy": correct / total, "samples": total, "seed": seed, "setting": setting, "task": task.name,
           "split": split}
    if part_hits is not None:  # S5: how many images of the permutation are right
        out["answer_part_accuracy"] = part_hits / total
    if per_pos is not None:
        out["cot_position_accuracy"] = [round(float(x) / total, 4) for x in per_pos]
    if steps:  # each written (cot) or read-out (hint) state checked against the step applied to the one before
        out["unsound_step_rate"] = 1 - sound_steps / steps
    return out


def validation_loss(model: Decoder, task: FoldTask, setting: str, samples: int, seed: int,
                    batch_size: int = 250) -> float:
    """Teacher-forced cross-entropy on validation prompts, per label as training counts it: what the plateau rule
    watches. The training loss cannot tell learning from memorising (isq base at 1 layer learned its training
    prompts by heart while validation stayed at chance); a validation loss still falling is learning that
    generalises."""
    import torch.nn.functional as F

    rng = np.random.default_rng([seed, 1])  # not the accuracy check's prompts: another draw of the same split
    device = next(model.parameters()).device
    total, count = 0.0, 0
    model.eval()
    with torch.inference_mode():
        for start in range(0, samples, batch_size):
            b = task.batch(rng, min(batch_size, samples - start), setting, "valid")
            logits, _ = model(torch.as_tensor(b.tokens, device=device))
            labels = torch.as_tensor(b.labels, device=device)
            total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1),
                                           ignore_index=IGNORE, reduction="sum"))
            count += int((labels != IGNORE).sum())
    return total / max(count, 1)
