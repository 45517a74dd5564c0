"""Where a model's attention goes at each CoT step, against where the construction's goes.

``alignment``: the mass each head puts on each position the construction reads (the task's ``read_positions``).
``attention_roles`` (CVP): where the mass goes instead, by the role of each key position relative to the step,
so that a model which solves the task another way shows which way. ``cotproof audit`` prints both, and the
reproduction records them for its CVP CoT cells.
"""
from __future__ import annotations

import numpy as np

from neural.learning.tasks import TEST_SEED

ROLES = ("own_slots", "input_slots", "input_values", "input_value_copies", "input_mentions", "previous_cot", "rest")
ROLE_MEANING = {
    "own_slots": "the prompt slots of the gate being written (type, its two input ids, its id)",
    "input_slots": "the prompt slots of its input gates",
    "input_values": "the CoT value tokens v(a) and v(b) of its input gates (the construction's value read)",
    "input_value_copies": "other CoT tokens that hold an input's value: v(a_k) of any gate k whose first input is "
                          "that gate (the gate's own v(a) among them)",
    "input_mentions": "other positions that name an input gate: the input-id slots of other gates' prompts and the "
                      "@ tokens of the CoT that refer to it",
    "previous_cot": "any other CoT token written so far",
    "rest": "everything else: other gates' prompt slots and SEP",
}
# Each position has one role, the first of this order that claims it: the construction's reads first, then the
# places a model without a second hop could read the same fact from (a copy of the value, a mention of the id).
_PRIORITY = ("input_values", "own_slots", "input_slots", "input_value_copies", "input_mentions", "previous_cot")


def alignment(task, prompts: np.ndarray, attn: list[np.ndarray]) -> dict:
    """Mass each head puts, at step i's query position, on each position the construction reads then; for each
    read, the head with most mass on it; and the mean of those (the alignment)."""
    reads = task.read_positions(prompts)
    q = task.n_prompt + np.arange(task.n_steps)
    B = prompts.shape[0]
    seen = np.zeros((B, task.n_steps, attn[0].shape[-1]), dtype=bool)
    for pos in reads.values():
        b, i = np.nonzero(pos >= 0)
        seen[b, i, pos[b, i]] = True
    heads = {}
    for layer, w in enumerate(attn):
        for h in range(w.shape[1]):
            at_q = w[:, h, q, :]  # (B, n, T)
            masses = {}
            for name, pos in reads.items():
                valid = pos >= 0
                m = np.take_along_axis(at_q, np.clip(pos, 0, None)[..., None], axis=-1)[..., 0]
                masses[name] = float(m[valid].mean()) if valid.any() else None
            heads[f"L{layer}H{h}"] = {"mass_on_construction_reads": float((at_q * seen).sum(-1).mean()),
                                      "per_read": masses}
    closest = {}
    for name in reads:
        best = max(heads, key=lambda k: -1 if heads[k]["per_read"][name] is None else heads[k]["per_read"][name])
        closest[name] = {"head": best, "mass": heads[best]["per_read"][name]}
    scores = [c["mass"] for c in closest.values() if c["mass"] is not None]
    return {"heads": heads, "closest_head": closest, "alignment": float(np.mean(scores)) if scores else None}


def role_masks(N: int, prompts: np.ndarray) -> dict[str, np.ndarray]:
    """For each role, (B, 4N steps, 8N keys) booleans: which key positions have that role at each CoT step. Each
    position has one role: the first in ``_PRIORITY`` that claims it."""
    from neural import cvp

    B, n, T = prompts.shape[0], 4 * N, cvp.sequence_length(N)
    parsed = cvp.parse_prompts(prompts, N)
    step = np.arange(n)
    g = step // 4 + 1  # the gate each CoT step belongs to
    query = 4 * N + step  # the position that predicts CoT token i
    keys = np.arange(T)
    slot_gate = np.where(keys < 4 * N, keys // 4 + 1, 0)  # the gate whose prompt slot a position is, or 0
    inputs = [np.take_along_axis(x, np.broadcast_to(g - 1, (B, n)), axis=1) for x in (parsed.in1, parsed.in2)]
    # per key position: the gate it names (prompt input-id slots, CoT @ tokens) and the gate whose value it holds
    # (CoT v(a_k) and v(k) tokens); 0 for none. One column past the end: the last v(N) is predicted, never read.
    reads = cvp.reads(N)
    gates = reads.gates
    names, holds = np.zeros((B, T + 1), dtype=np.int64), np.zeros((B, T + 1), dtype=np.int64)
    names[:, reads.in1_slot], names[:, reads.in2_slot] = parsed.in1, parsed.in2
    names[:, cvp.cot_position(gates, 0, N)], names[:, cvp.cot_position(gates, 2, N)] = parsed.in1, parsed.in2
    holds[:, cvp.cot_position(gates, 1, N)], holds[:, cvp.cot_position(gates, 3, N)] = parsed.in1, gates
    names, holds = names[:, :T], holds[:, :T]
    masks = {role: np.zeros((B, n, T), dtype=bool) for role in _PRIORITY}
    masks["own_slots"] = np.broadcast_to(slot_gate[None, None, :] == g[None, :, None], (B, n, T))
    for r in inputs:  # (B, n): input gate ids, 0 for NA
        real, r3 = (r > 0)[..., None], r[..., None]
        masks["input_slots"] |= real & (slot_gate[None, None, :] == r3)
        value_at = reads.value_position(np.maximum(r, 1))
        masks["input_values"] |= real & (keys[None, None, :] == value_at[..., None])
        masks["input_value_copies"] |= real & (holds[:, None, :] == r3)
        masks["input_mentions"] |= real & (names[:, None, :] == r3)
    masks["previous_cot"] = np.broadcast_to((keys[None, :] > 4 * N) & (keys[None, :] <= query[:, None]), (B, n, T))
    out, taken = {}, np.zeros((B, n, T), dtype=bool)
    for role in _PRIORITY:
        out[role] = masks[role] & ~taken
        taken = taken | out[role]
    out["rest"] = ~taken
    return {role: out[role] for role in ROLES}


def attention_roles(task, prompts: np.ndarray, attn: list[np.ndarray]) -> dict | None:
    """CVP only (else None): for each head, the mean mass at a CoT step on each role, overall and by the CoT slot
    being predicted (``a``, ``value_a``, ``b``, ``value``); and the same for a head that attends uniformly to every
    key it may see, the yardstick that says whether a head's mass on a role is a read or spread."""
    if task.name != "cvp":
        return None
    from neural import cvp

    N = task.N
    masks = role_masks(N, prompts)
    q = task.n_prompt + np.arange(task.n_steps)

    def by_role(at_q: np.ndarray) -> dict:  # (B or 1, n, T) attention at the CoT steps
        mass = {role: (at_q * m).sum(-1) for role, m in masks.items()}  # (B, n) each
        return {"all": {role: round(float(m.mean()), 4) for role, m in mass.items()},
                "by_slot": {slot: {role: round(float(m[:, s::4].mean()), 4) for role, m in mass.items()}
                            for s, slot in enumerate(cvp.COT_SLOTS)}}

    heads = {f"L{layer}H{h}": by_role(w[:, h, q, :]) for layer, w in enumerate(attn) for h in range(w.shape[1])}
    visible = (np.arange(masks["rest"].shape[-1])[None, :] <= q[:, None]).astype(np.float64)
    return {"roles": list(ROLES), "meaning": ROLE_MEANING, "heads": heads,
            "uniform": by_role((visible / visible.sum(-1, keepdims=True))[None])}


def attention_weights(model, tokens: np.ndarray) -> list[np.ndarray]:
    """Per layer (B, H, T, T) attention weights of a cotproof ``Decoder``'s pass over ``tokens``, as float32
    arrays."""
    import torch

    with torch.inference_mode():
        _, weights = model(torch.as_tensor(tokens, device=next(model.parameters()).device), need_weights=True)
    return [w.float().cpu().numpy() for w in weights]


def attention_report(task, prompts: np.ndarray, attn: list[np.ndarray]) -> dict:
    """What the audit prints of a model's attention over its own traces: the alignment, and for CVP ``roles``."""
    out = alignment(task, prompts, attn)
    roles = attention_roles(task, prompts, attn)
    if roles is not None:
        out["roles"] = roles
    return out


def mechanism_of(model, task, samples: int = 200, seed: int = TEST_SEED) -> dict:
    """A trained CVP CoT model's mechanism on held-out prompts, as the grid records it: the alignment with each
    construction read (by its closest head) and where each head's mass goes by role."""
    from neural.learning.evaluation import generate

    b = task.batch(np.random.default_rng(seed), samples, "cot", "test")
    prompts = b.tokens[:, :b.prompt_len]
    gen = generate(model, prompts, task.n_steps)
    a = attention_report(task, prompts[:, :task.n_prompt],
                         attention_weights(model, np.concatenate([prompts, gen[:, :-1]], axis=1)))
    return {"alignment": None if a["alignment"] is None else round(a["alignment"], 4),
            "closest_head": {name: {"head": c["head"], "mass": None if c["mass"] is None else round(c["mass"], 4)}
                             for name, c in a["closest_head"].items()},
            "roles": {head: r["all"] for head, r in a["roles"]["heads"].items()},
            "roles_uniform": a["roles"]["uniform"]["all"],
            "samples": samples}
