"""A cotproof ``Decoder`` as a TransformerLens 4 ``TransformerBridge``, and back from disk.

TransformerLens 4's native model (``transformer_lens.model_bridge.sources.native``) has cotproof's architecture:
learned token and position tables, pre-norm blocks with split q/k/v/o and a two-layer MLP, all with biases. Three
differences, each bridged exactly:

- **Attention scale.** cotproof multiplies scores by ``cfg.scale``; TransformerLens divides by ``attn_scale`` and
  refuses 1.0 when ``d_head > 1`` (it reads as a mistake). The constructions use scale 1, so the query weights and
  bias are doubled and TransformerLens divides by 2: scaling by a power of two rounds nothing, so every score is the
  same float. A trained model's 1/sqrt(d_head) is TransformerLens's own default (a divide instead of a multiply: within
  one rounding).
- **Unembedding bias.** The native head has none; the constructions need theirs (it is what makes ``0`` win where
  ``out = 0``). The bridge is built around the native model with its head replaced by a biased ``nn.Linear``, which
  ``build_bridge_from_module`` wraps and hooks like the original.
- **No LayerNorm** (the constructions): ``normalization_type=None`` gives identity norms, as cotproof's.

Tested with transformer-lens 4.3 (``pip install 'cotproof[interp]'`` pins it). Nothing here is imported unless an
export is asked for: TransformerLens takes about 5 s to import.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from neural.config import Keys, ModelConfig

FORMAT = "cotproof-transformer-lens"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SUPPORTED = "transformer-lens>=4.3,<4.4"


def bridge_config(cfg: ModelConfig) -> dict:
    """The ``TransformerBridgeConfig`` fields of this architecture, as plain JSON (written beside the weights)."""
    doubled = _query_doubled(cfg)
    fields = {"n_layers": cfg.n_layers, "d_model": cfg.d_model, "d_head": cfg.d_head, "n_heads": cfg.n_heads,
              "n_ctx": cfg.max_len, "d_vocab": cfg.vocab_size, "d_vocab_out": cfg.vocab_size, "d_mlp": cfg.d_ff,
              "act_fn": cfg.activation, "attention_dir": "causal", "eps": 1e-5,
              "normalization_type": "LN" if cfg.layernorm else None, "positional_embedding_type": "standard",
              "init_weights": False}
    if cfg.attn_scale is not None:
        fields.update(use_attn_scale=True, attn_scale=(2.0 if doubled else 1.0) / cfg.attn_scale)
    return fields


def _query_doubled(cfg: ModelConfig) -> bool:
    """Whether the queries are doubled so that TransformerLens may divide by 2 instead of the refused 1."""
    return cfg.attn_scale is not None and 1.0 / cfg.attn_scale == 1.0 and cfg.d_head > 1


def native_state_dict(cfg: ModelConfig, arrays: dict[str, np.ndarray]):
    """cotproof's named arrays under TransformerLens's native module names, as float32 tensors (queries doubled
    where ``bridge_config`` halves the scores)."""
    import torch

    def t(name: str) -> torch.Tensor:
        return torch.as_tensor(np.asarray(arrays[name], dtype=np.float32))

    def linear(ours: str, theirs: str, factor: float = 1.0) -> None:
        sd[f"{theirs}.weight"] = t(Keys.weight(ours)) * factor
        bias = Keys.bias(ours)
        sd[f"{theirs}.bias"] = (t(bias) * factor if bias in arrays
                                else torch.zeros(sd[f"{theirs}.weight"].shape[0]))

    def norm(ours: str, theirs: str) -> None:
        if cfg.layernorm:
            sd[f"{theirs}.weight"], sd[f"{theirs}.bias"] = t(Keys.weight(ours)), t(Keys.bias(ours))

    q_factor = 2.0 if _query_doubled(cfg) else 1.0
    sd = {"tok_embed.weight": t(Keys.TOK_EMB), "pos.weight": t(Keys.POS_EMB)}
    for i in range(cfg.n_layers):
        for proj in "qkvo":
            linear(Keys.attn(i, proj), f"layers.{i}.attn.{proj}", q_factor if proj == "q" else 1.0)
        linear(Keys.ffn(i, "fc1"), f"layers.{i}.mlp.fc_in")
        linear(Keys.ffn(i, "fc2"), f"layers.{i}.mlp.fc_out")
        norm(Keys.ln(i, "ln1"), f"layers.{i}.ln1")
        norm(Keys.ln(i, "ln2"), f"layers.{i}.ln2")
    norm(Keys.LN_F, "ln_out")
    linear(Keys.HEAD, "head")
    return sd


def bridge_from_state(fields: dict, state: dict):
    """A ``TransformerBridge`` around TransformerLens's native model, holding ``state``, with a biased head."""
    import torch
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge.sources import build_bridge_from_module
    from transformer_lens.model_bridge.sources.native import NativeModel

    tl_cfg = TransformerBridgeConfig(**fields)
    native = NativeModel(tl_cfg)  # on the CPU, not the meta device: its causal mask is a buffer no state dict holds
    native.head = torch.nn.Linear(tl_cfg.d_model, tl_cfg.d_vocab_out, bias=True)
    native.load_state_dict(state, strict=True, assign=True)
    return build_bridge_from_module(native.eval(), architecture="TransformerLensNative", tl_config=tl_cfg).eval()


def to_transformer_lens(model):
    """A ``TransformerBridge`` computing what ``model`` (a cotproof ``Decoder``) computes, with TransformerLens's
    hooks and ``run_with_cache``. For the constructions, its float32 logits are bit-identical to the Decoder's."""
    arrays = {name: t.detach().float().cpu().numpy() for name, t in model.state_dict().items()}
    return bridge_from_state(bridge_config(model.cfg), native_state_dict(model.cfg, arrays))


def save_transformer_lens(cfg: ModelConfig, arrays: dict[str, np.ndarray], out: str | Path, vocab: list[str],
                          manifest: dict | None = None, extra: dict | None = None) -> Path:
    """Write the export as one atomic unit: ``model.safetensors`` (native names), ``config.json`` (the bridge
    config, the vocabulary, and ``extra``: a trained model's task and setting) and, for a construction,
    ``manifest.json``."""
    from safetensors.torch import save as st_save

    from neural import checkpoint

    out = Path(out)
    doc = {"format": FORMAT, "version": FORMAT_VERSION, "transformer_lens": SUPPORTED,
           "bridge_config": bridge_config(cfg), "query_doubled": _query_doubled(cfg), "unembedding_bias": True,
           "vocab": list(vocab), "cotproof_config": cfg.to_dict(), **(extra or {})}
    files = {checkpoint.WEIGHTS: st_save(native_state_dict(cfg, arrays)),
             checkpoint.CONFIG: (json.dumps(doc, indent=2) + "\n").encode()}
    if manifest is not None:
        files[MANIFEST] = (json.dumps(manifest, indent=2) + "\n").encode()
    checkpoint.commit(out, files)
    return out


def load_transformer_lens(directory: str | Path):
    """(bridge, config.json as a dict) from a directory ``save_transformer_lens`` wrote."""
    from safetensors.torch import load as st_load

    from grammar.errors import InputError, SourceLoc
    from grammar.source import parse_json, read_bytes, read_text
    from neural import checkpoint

    d = Path(directory)
    where = SourceLoc(str(d / checkpoint.CONFIG))
    doc = parse_json(read_text(d / checkpoint.CONFIG, "export config"), where.path, "config.json",
                     "a directory written by cotproof export --to transformer-lens")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise InputError("this is not a TransformerLens export of cotproof", where,
                         expected=f'"format": "{FORMAT}" in config.json')
    return bridge_from_state(doc["bridge_config"], st_load(read_bytes(d / checkpoint.WEIGHTS, "weights"))), doc
