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


class Keys:
    """The state-dict name of every weight, defined once. ``neural.model``'s module tree yields exactly these names;
    the construction fills them, the finite executor runs them and ``formal`` proves them, by these constants only.

    A linear layer is named by its module path; its arrays are ``weight(path)`` and ``bias(path)``."""

    TOK_EMB = "tok_emb.weight"
    POS_EMB = "pos_emb.weight"
    HEAD = "head"  # the unembedding: logits = x @ head.weight.T + head.bias
    LN_F = "ln_f"

    @staticmethod
    def attn(layer: int, proj: str) -> str:
        """proj: q, k, v or o."""
        return f"blocks.{layer}.attn.{proj}"

    @staticmethod
    def ffn(layer: int, fc: str) -> str:
        """fc: fc1 or fc2."""
        return f"blocks.{layer}.ffn.{fc}"

    @staticmethod
    def ln(layer: int, which: str) -> str:
        """which: ln1 or ln2."""
        return f"blocks.{layer}.{which}"

    @staticmethod
    def weight(module: str) -> str:
        return module + ".weight"

    @staticmethod
    def bias(module: str) -> str:
        return module + ".bias"


def weight_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The state-dict names and shapes of the decoder, in module order; the construction fills exactly these."""
    d, hd = cfg.d_model, cfg.n_heads * cfg.d_head
    shapes: dict[str, tuple[int, ...]] = {Keys.TOK_EMB: (cfg.vocab_size, d), Keys.POS_EMB: (cfg.max_len, d)}

    def linear(module: str, out_dim: int, in_dim: int) -> None:
        shapes[Keys.weight(module)] = (out_dim, in_dim)
        if cfg.bias:
            shapes[Keys.bias(module)] = (out_dim,)

    def norm(module: str) -> None:
        if cfg.layernorm:
            shapes[Keys.weight(module)] = (d,)
            shapes[Keys.bias(module)] = (d,)

    for i in range(cfg.n_layers):
        for proj in "qkv":
            linear(Keys.attn(i, proj), hd, d)
        linear(Keys.attn(i, "o"), d, hd)
        linear(Keys.ffn(i, "fc1"), cfg.d_ff, d)
        linear(Keys.ffn(i, "fc2"), d, cfg.d_ff)
        norm(Keys.ln(i, "ln1"))
        norm(Keys.ln(i, "ln2"))
    norm(Keys.LN_F)
    linear(Keys.HEAD, cfg.vocab_size, d)
    return shapes
