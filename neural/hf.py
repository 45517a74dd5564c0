"""A trained cotproof ``Decoder`` as a Hugging Face ``GPT2LMHeadModel``, and any local causal LM as a function.

GPT-2 is cotproof's trained architecture with two fixed choices: LayerNorm everywhere and an unembedding without a
bias. The first rules out exporting the constructions (they have no LayerNorm; TransformerLens takes them). The
second is bridged by folding the bias into ``ln_f``'s bias, which the unembedding sees as ``W @ ln_f.bias``: the
least-squares ``delta, c`` with ``W @ delta + c = b`` (``c`` a constant over the vocabulary, which softmax and
argmax ignore). It is exact, up to float rounding, when ``W`` has full rank and the vocabulary is at most
``d_model + 1`` tokens; otherwise the part of ``b`` outside ``W``'s column space is lost, and its largest entry is
reported as ``max_logit_error`` (logits are compared up to that constant). The audit of the exported copy is what
says whether that changes any step.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from grammar.errors import ParameterError
from neural.config import Keys, ModelConfig

VOCAB_FILE = "vocab.json"


def gpt2_config(cfg: ModelConfig):
    from transformers import GPT2Config

    if not cfg.layernorm:
        raise ParameterError("GPT-2 has LayerNorm in every block; this model has none (a construction?): export "
                             "it with --to transformer-lens")
    if cfg.n_heads * cfg.d_head != cfg.d_model:
        raise ParameterError(f"GPT-2 needs heads x d_head = d_model; this model has {cfg.n_heads} x {cfg.d_head} "
                             f"!= {cfg.d_model}")
    if cfg.attn_scale is not None and cfg.attn_scale != cfg.d_head ** -0.5:
        raise ParameterError(f"GPT-2 scales attention by 1/sqrt(d_head); this model uses {cfg.attn_scale}: not "
                             "supported yet")
    return GPT2Config(vocab_size=cfg.vocab_size, n_positions=cfg.max_len, n_embd=cfg.d_model, n_layer=cfg.n_layers,
                      n_head=cfg.n_heads, n_inner=cfg.d_ff, activation_function=cfg.activation,
                      resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=1e-5,
                      tie_word_embeddings=False, bos_token_id=None, eos_token_id=None)


def fold_unembedding_bias(W: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(delta, c, max |b - W delta - c|): the shift of ``ln_f``'s bias that best stands in for ``b``."""
    W, b = np.asarray(W, dtype=np.float64), np.asarray(b, dtype=np.float64)
    A = np.concatenate([W, np.ones((W.shape[0], 1))], axis=1)
    x = np.linalg.lstsq(A, b, rcond=None)[0]
    return x[:-1], float(x[-1]), float(np.abs(b - A @ x).max(initial=0.0))


def to_hf_gpt2(cfg: ModelConfig, arrays: dict[str, np.ndarray]):
    """(GPT2LMHeadModel, {"max_logit_error", "constant_shift"}) for a trained model's arrays."""
    import torch
    from transformers import GPT2LMHeadModel

    hf_cfg = gpt2_config(cfg)

    def t(a) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a, dtype=np.float32))

    def bias(module: str, size: int) -> np.ndarray:
        return arrays.get(Keys.bias(module), np.zeros(size))

    def conv1d(*modules: str) -> tuple[torch.Tensor, torch.Tensor]:
        """GPT-2's Conv1D stores (in, out): the transposed, concatenated nn.Linear weights."""
        weights = [np.asarray(arrays[Keys.weight(m)]) for m in modules]
        return (t(np.concatenate([w.T for w in weights], axis=1)),
                t(np.concatenate([bias(m, w.shape[0]) for m, w in zip(modules, weights)])))

    sd = {"transformer.wte.weight": t(arrays[Keys.TOK_EMB]), "transformer.wpe.weight": t(arrays[Keys.POS_EMB])}
    for i in range(cfg.n_layers):
        h = f"transformer.h.{i}"
        sd[f"{h}.attn.c_attn.weight"], sd[f"{h}.attn.c_attn.bias"] = conv1d(*(Keys.attn(i, p) for p in "qkv"))
        sd[f"{h}.attn.c_proj.weight"], sd[f"{h}.attn.c_proj.bias"] = conv1d(Keys.attn(i, "o"))
        sd[f"{h}.mlp.c_fc.weight"], sd[f"{h}.mlp.c_fc.bias"] = conv1d(Keys.ffn(i, "fc1"))
        sd[f"{h}.mlp.c_proj.weight"], sd[f"{h}.mlp.c_proj.bias"] = conv1d(Keys.ffn(i, "fc2"))
        for ours, theirs in (("ln1", "ln_1"), ("ln2", "ln_2")):
            sd[f"{h}.{theirs}.weight"] = t(arrays[Keys.weight(Keys.ln(i, ours))])
            sd[f"{h}.{theirs}.bias"] = t(arrays[Keys.bias(Keys.ln(i, ours))])
    W = np.asarray(arrays[Keys.weight(Keys.HEAD)])
    delta, shift, error = fold_unembedding_bias(W, bias(Keys.HEAD, W.shape[0]))
    sd["transformer.ln_f.weight"] = t(arrays[Keys.weight(Keys.LN_F)])
    sd["transformer.ln_f.bias"] = t(np.asarray(arrays[Keys.bias(Keys.LN_F)], dtype=np.float64) + delta)
    sd["lm_head.weight"] = t(W)
    model = GPT2LMHeadModel(hf_cfg)
    model.load_state_dict(sd, strict=False)  # GPT-2 also keeps non-persistent attention buffers
    missing = set(model.state_dict()) - set(sd)
    if missing:
        raise AssertionError(f"GPT-2 weights not set: {sorted(missing)[:5]}")
    return model.eval(), {"max_logit_error": error, "constant_shift": shift}


def save_hf_gpt2(cfg: ModelConfig, arrays: dict[str, np.ndarray], out: str | Path, vocabulary: dict) -> dict:
    """Write ``save_pretrained``'s files and the vocabulary file as one atomic unit; returns the fold report."""
    from transformers.utils import logging

    from neural import checkpoint

    model, fold = to_hf_gpt2(cfg, arrays)
    logging.disable_progress_bar()  # "Writing model shards" is noise in a command's output
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        files = {p.name: p.read_bytes() for p in Path(tmp).iterdir() if p.is_file()}
    files[VOCAB_FILE] = (json.dumps({**vocabulary, "unembedding_bias": fold}, indent=2) + "\n").encode()
    checkpoint.commit(Path(out), files)
    return fold


def load_causal_lm(directory: str | Path):
    """A local Hugging Face causal LM directory as (function tokens (B, T) -> logits (B, T, V), vocab size,
    attention function or None). Nothing is downloaded; safetensors only (no pickle runs)."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging

    logging.disable_progress_bar()
    try:
        model = AutoModelForCausalLM.from_pretrained(str(directory), local_files_only=True, use_safetensors=True,
                                                     attn_implementation="eager").eval()
    except (OSError, ValueError) as err:  # transformers' words for a directory it cannot read
        raise ParameterError(f"transformers cannot load this directory: {str(err).splitlines()[0]}") from None

    def logits(tokens) -> torch.Tensor:
        with torch.inference_mode():
            return model(input_ids=torch.as_tensor(np.asarray(tokens), dtype=torch.long)).logits.float()

    def attention(tokens) -> list[np.ndarray]:
        with torch.inference_mode():
            out = model(input_ids=torch.as_tensor(np.asarray(tokens), dtype=torch.long), output_attentions=True)
        return [a.float().numpy() for a in out.attentions]

    return logits, int(model.config.vocab_size), attention
