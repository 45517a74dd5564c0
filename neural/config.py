"""Architecture of the one decoder module, torch-free so the construction and the proofs can share it."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    max_len: int
    d_model: int
    n_layers: int
    n_heads: int
    d_head: int
    d_ff: int
    activation: str = "relu"  # relu | gelu
    layernorm: bool = False
    bias: bool = True
    attn_scale: float | None = None  # None: 1/sqrt(d_head); the construction uses 1.0

    @property
    def scale(self) -> float:
        return self.attn_scale if self.attn_scale is not None else self.d_head ** -0.5

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def weight_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The state-dict names and shapes of the decoder; the construction fills exactly these."""
    d, hd = cfg.d_model, cfg.n_heads * cfg.d_head
    shapes: dict[str, tuple[int, ...]] = {"tok_emb.weight": (cfg.vocab_size, d), "pos_emb.weight": (cfg.max_len, d)}
    for i in range(cfg.n_layers):
        p = f"blocks.{i}."
        for name, (out_dim, in_dim) in {"attn.q": (hd, d), "attn.k": (hd, d), "attn.v": (hd, d), "attn.o": (d, hd),
                                        "ffn.fc1": (cfg.d_ff, d), "ffn.fc2": (d, cfg.d_ff)}.items():
            shapes[p + name + ".weight"] = (out_dim, in_dim)
            if cfg.bias:
                shapes[p + name + ".bias"] = (out_dim,)
        if cfg.layernorm:
            for ln in ("ln1", "ln2"):
                shapes[p + ln + ".weight"] = (d,)
                shapes[p + ln + ".bias"] = (d,)
    if cfg.layernorm:
        shapes["ln_f.weight"] = (d,)
        shapes["ln_f.bias"] = (d,)
    shapes["head.weight"] = (cfg.vocab_size, d)
    if cfg.bias:
        shapes["head.bias"] = (cfg.vocab_size,)
    return shapes
