"""The one GPT-style decoder that constructed and trained weights both load into.

Its state-dict names and shapes are ``neural.config.weight_shapes``; the construction fills exactly those arrays, so
a compiled circuit is an ordinary instance of this module, not a separate code path. A whole causal sequence runs
torch's flash or memory-efficient kernel, which tile queries and keys (memory O(L*d), whatever L is); new tokens after
a KV cache run ``scaled_dot_product_attention`` against the cache. Attention is written out (scores, mask, softmax,
weighted sum), in blocks of queries, only when the caller asks for the weights, as the audit and the replays do, or
where no fused kernel takes the arguments. The IEEE proofs (``verify --ieee``) cover every one of these:
max-subtracted softmax and online rescaling, in any summation order.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from grammar.errors import ParameterError
from neural.config import ModelConfig


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        hd = cfg.n_heads * cfg.d_head
        self.cfg = cfg
        self.q = nn.Linear(cfg.d_model, hd, bias=cfg.bias)
        self.k = nn.Linear(cfg.d_model, hd, bias=cfg.bias)
        self.v = nn.Linear(cfg.d_model, hd, bias=cfg.bias)
        self.o = nn.Linear(hd, cfg.d_model, bias=cfg.bias)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.cfg.n_heads, self.cfg.d_head).transpose(1, 2)  # (B, H, T, dh)

    QUERY_BLOCK = 2048  # queries per block where attention is written out (memory O(block * L), not O(L^2))

    def forward(self, x: torch.Tensor, cache: "LayerCache | None" = None, need_weights: bool = False,
                selected=None):
        """``selected``: (layer, keys (B, H, T), SpotCheck) where a proof licenses gathering each row's value at its
        selected key (``neural.selected``); only for a whole sequence, without the weights."""
        q, k, v = self._split(self.q(x)), self._split(self.k(x)), self._split(self.v(x))
        if cache is not None:
            k, v = cache.append(k, v)
        t_q, t_k = q.shape[2], k.shape[2]
        out, weights = None, None
        if selected is not None and not need_weights and cache is None:
            from neural.selected import torch_selected

            layer, keys, check = selected
            out = torch_selected(q, k, v, keys, self.cfg.scale, check, layer)
        elif not need_weights and t_q == 1:  # one new token after a cache: it sees every key, no mask
            out = nn.functional.scaled_dot_product_attention(q, k, v, scale=self.cfg.scale)
        elif not need_weights and t_q == t_k:  # a whole causal sequence: one fused, tiled kernel where there is one
            out = _fused_causal(q, k, v, self.cfg.scale)
        if out is None:  # the weights asked for, several tokens after a cache, or no fused kernel: query blocks
            out, weights = self._written_out(q, k, v, need_weights)
        return self.o(out.transpose(1, 2).reshape(x.shape[0], t_q, -1)), weights

    def _written_out(self, q, k, v, need_weights: bool = False):
        """Scores, mask, softmax and weighted sum, written out a block of ``QUERY_BLOCK`` queries at a time; query i
        (counted from the end of the keys) sees keys j <= i + (t_k - t_q), and each block reads only the keys it may
        see. Returns (out, weights or None)."""
        t_q, t_k = q.shape[2], k.shape[2]
        outs, weights = [], []
        for start in range(0, t_q, self.QUERY_BLOCK):
            stop = min(t_q, start + self.QUERY_BLOCK)
            visible = stop + t_k - t_q  # the block's last query sees keys up to this
            causal = torch.ones(stop - start, visible, dtype=torch.bool, device=q.device).tril(start + t_k - t_q)
            scores = q[:, :, start:stop] @ k[:, :, :visible].transpose(-1, -2)
            if self.cfg.scale != 1.0:
                scores = scores * self.cfg.scale
            w = torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1)
            outs.append(w @ v[:, :, :visible])
            if need_weights:
                weights.append(nn.functional.pad(w, (0, t_k - visible)))
        out = torch.cat(outs, dim=2) if outs else q.new_zeros(q.shape[:3] + (v.shape[-1],))
        return out, (torch.cat(weights, dim=2) if need_weights and weights else None)


def _fused_causal(q, k, v, scale: float):
    """Causal attention by torch's flash or memory-efficient kernel, which tile queries and keys themselves (memory
    O(L * d)); None where neither takes these arguments. The IEEE proofs cover the online rescaling they do."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    try:
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]):
            return nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
    except RuntimeError:  # "No available kernel": the written-out blocks compute the same softmax
        return None


class FeedForward(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.fc1 = nn.Linear(cfg.d_model, cfg.d_ff, bias=cfg.bias)
        self.fc2 = nn.Linear(cfg.d_ff, cfg.d_model, bias=cfg.bias)
        self.act = nn.ReLU() if cfg.activation == "relu" else nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attn = Attention(cfg)
        self.ffn = FeedForward(cfg)
        self.ln1 = nn.LayerNorm(cfg.d_model) if cfg.layernorm else nn.Identity()
        self.ln2 = nn.LayerNorm(cfg.d_model) if cfg.layernorm else nn.Identity()

    def forward(self, x, cache=None, need_weights=False, selected=None):
        a, w = self.attn(self.ln1(x), cache, need_weights, selected)
        x = x + a
        return x + self.ffn(self.ln2(x)), w


@dataclass
class LayerCache:
    """Keys and values of the positions seen so far: generation costs O(L*d) per step and memory O(L*d)."""

    k: torch.Tensor | None = None
    v: torch.Tensor | None = None

    def append(self, k: torch.Tensor, v: torch.Tensor):
        self.k = k if self.k is None else torch.cat([self.k, k], dim=2)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=2)
        return self.k, self.v


@dataclass
class KVCache:
    layers: list[LayerCache] = field(default_factory=list)

    @property
    def length(self) -> int:
        return 0 if not self.layers or self.layers[0].k is None else self.layers[0].k.shape[2]


class Decoder(nn.Module):
    def __init__(self, cfg: ModelConfig, initialise: bool = True):
        super().__init__()
        self.cfg = cfg
        # Without initialisation (``from_arrays``, on the meta device), give the tables as empty tensors: an
        # Embedding's own init on the meta device imports sympy, about 1.4 s.
        def table(rows: int) -> nn.Embedding:
            return nn.Embedding(rows, cfg.d_model, _weight=None if initialise else torch.empty(rows, cfg.d_model))

        self.tok_emb = table(cfg.vocab_size)
        self.pos_emb = table(cfg.max_len)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model) if cfg.layernorm else nn.Identity()
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=cfg.bias)
        self.selection = None  # a neural.selected.Selection: set only where a proof licenses it
        if initialise:
            self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, tokens: torch.Tensor, cache: KVCache | None = None, need_weights: bool = False):
        """tokens (B, T) -> logits (B, T, V). With a cache, the tokens continue the cached positions.
        Returns (logits, per-layer attention weights or None)."""
        x, weights = self.features(tokens, cache, need_weights)
        return self.head(x), weights

    def features(self, tokens: torch.Tensor, cache: KVCache | None = None, need_weights: bool = False):
        """What the unembedding reads: (B, T, d_model), and the attention weights or None."""
        start = 0 if cache is None else cache.length
        if start + tokens.shape[1] > self.cfg.max_len:
            raise ValueError(f"sequence of {start + tokens.shape[1]} tokens exceeds max_len {self.cfg.max_len}")
        pos = torch.arange(start, start + tokens.shape[1], device=tokens.device)
        x = self.tok_emb(tokens) + self.pos_emb(pos)[None]
        if cache is not None and not cache.layers:
            cache.layers.extend(LayerCache() for _ in self.blocks)
        weights = []
        for i, block in enumerate(self.blocks):
            selected = None
            if self.selection is not None and cache is None and not need_weights:
                # float32 holds every bfloat16 and float16 value: the codes read the same
                selected = (i, self.selection.keys(i, x.detach().float().cpu().numpy()), self.selection.check)
            x, w = block(x, None if cache is None else cache.layers[i], need_weights, selected)
            weights.append(w)
        return self.ln_f(x), (weights if need_weights else None)

    # ---- weights as named numpy arrays (the construction's currency) -------------------------------------

    @classmethod
    def from_arrays(cls, cfg: ModelConfig, arrays: dict[str, np.ndarray], dtype=torch.float32) -> "Decoder":
        """The module holding exactly these arrays, for inference. It is built on the meta device and given the
        arrays as its parameters, so no random initialisation runs and, when the arrays already have ``dtype``,
        nothing is copied (the parameters share their memory): a 65,536-gate CVP model's tables are loaded, not
        duplicated."""
        with torch.device("meta"):
            model = cls(cfg, initialise=False)
        expected = model.state_dict()
        missing = sorted(set(expected) - set(arrays))
        extra = sorted(set(arrays) - set(expected))
        if missing or extra:
            raise ValueError(f"weights do not match the architecture: missing {missing[:5]}, unexpected {extra[:5]}")
        for name, tensor in expected.items():
            if tuple(arrays[name].shape) != tuple(tensor.shape):
                raise ValueError(f"weight {name} has shape {tuple(arrays[name].shape)}, "
                                 f"the architecture needs {tuple(tensor.shape)}")
        model.load_state_dict({name: (a if torch.is_tensor(a) else torch.as_tensor(np.asarray(a))).to(dtype)
                               for name, a in arrays.items()},
                              assign=True)
        return model.eval()

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: t.detach().to(torch.float64).cpu().numpy() for name, t in self.state_dict().items()}

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def resolve_device(name: str) -> str:
    """The torch device a user named, checked before any work: ``auto`` is CUDA where torch sees it, else the CPU. A
    name torch does not parse, or a CUDA device torch cannot see, is a ParameterError."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ParameterError(f"{name!r} is not a torch device") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ParameterError(f"--device {name} was asked for, but torch sees no CUDA device")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ParameterError(f"--device {name}: torch sees {torch.cuda.device_count()} CUDA device(s)")
    return name
