"""Architecture of the one decoder module, torch-free so the construction and the proofs can share it."""
from __future__ import annotations

import json
import math
import numbers
from dataclasses import MISSING, asdict, dataclass, fields

ACTIVATIONS = ("relu", "gelu")


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

    def __post_init__(self):
        """Every config, whether built here or read from a user's config.json, is checked once, here: a wrong type
        or range is a ValueError naming the field, never a crash deep inside torch."""
        for name in ("vocab_size", "max_len", "d_model", "n_layers", "n_heads", "d_head", "d_ff"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be a whole number of at least 1, not {value!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, not {self.activation!r}")
        for name in ("layernorm", "bias"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, not {getattr(self, name)!r}")
        a = self.attn_scale
        if a is not None and (isinstance(a, bool) or not isinstance(a, numbers.Real) or not math.isfinite(a)
                              or a <= 0):
            raise ValueError(f"attn_scale must be a positive finite number or null, not {a!r}")

    def parameter_count(self) -> int:
        """The number of weights, by arithmetic (``weight_shapes`` lists them one by one, which a config claiming
        a billion layers must not be allowed to make it do)."""
        d, hd, b = self.d_model, self.n_heads * self.d_head, int(self.bias)
        norms = 2 * d if self.layernorm else 0
        layer = 3 * (hd * d + b * hd) + (d * hd + b * d) + (self.d_ff * d + b * self.d_ff) + (d * self.d_ff + b * d)
        return ((self.vocab_size + self.max_len) * d + self.n_layers * (layer + 2 * norms) + norms
                + self.vocab_size * d + b * self.vocab_size)

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
        missing = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING} - set(data)
        if missing:
            raise ValueError(f"missing model config keys: {sorted(missing)}")
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
