"""G decoders of one architecture as one module: every weight gains a leading model axis.

Small models train one after another leave a GPU idle between kernel launches, and each of them pays Python's
per-step overhead on any device. Stacked, every linear layer of the G models is one batched matmul and every
attention one fused call over G*B sequences, so G models cost about the launches of one. The weight names are the
``Decoder``'s (``neural.config.weight_shapes``, which is also ``Decoder.parameters()`` order) and member g's weights
are ``{name: w[g]}``: a stacked model's members are saved, evaluated and audited as the single models they are.

Members may differ in sequence length: the positional table has the longest member's rows, and a shorter member's
sequences are padded at the end. Attention is causal, so a padded suffix never reaches a real position, and the
extra positional rows receive no gradient from a real label.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from neural.config import Keys, ModelConfig, weight_shapes


class StackedDecoder(nn.Module):
    def __init__(self, cfg: ModelConfig, members: list[dict[str, torch.Tensor]]):
        """``members``: each model's weights by name (a ``Decoder`` state dict), shorter positional tables padded
        with zeros to ``cfg.max_len`` rows by the caller."""
        super().__init__()
        self.cfg = cfg
        self.names = list(weight_shapes(cfg))
        self._index = {name: i for i, name in enumerate(self.names)}
        self.weights = nn.ParameterList(nn.Parameter(torch.stack([m[name] for m in members]).float())
                                        for name in self.names)

    @property
    def size(self) -> int:
        return self.weights[0].shape[0]

    def weight(self, name: str) -> torch.Tensor:
        return self.weights[self._index[name]]

    def member(self, g: int, max_len: int) -> dict[str, torch.Tensor]:
        """Member g's weights as a ``Decoder`` state dict (detached copies), its positional table cut to
        ``max_len`` rows."""
        out = {name: w[g].detach().clone() for name, w in zip(self.names, self.weights)}
        out[Keys.POS_EMB] = out[Keys.POS_EMB][:max_len]
        return out

    def forward(self, tokens: torch.Tensor, columns: torch.Tensor | None = None) -> torch.Tensor:
        """tokens (G, B, T) -> logits (G, B, C, V) at the positions ``columns`` (all T when None). Training reads
        logits only where a label is, so the unembedding runs at those positions alone."""
        cfg = self.cfg
        g, b, t = tokens.shape
        offsets = torch.arange(g, device=tokens.device).view(g, 1, 1) * cfg.vocab_size
        table = self.weight(Keys.TOK_EMB).reshape(g * cfg.vocab_size, cfg.d_model)
        x = F.embedding(tokens + offsets, table) + self.weight(Keys.POS_EMB)[:, None, :t]
        x = x.reshape(g, b * t, cfg.d_model)
        for i in range(cfg.n_layers):
            h = self._norm(x, Keys.ln(i, "ln1"))
            q, k, v = (self._linear(h, Keys.attn(i, proj)) for proj in "qkv")
            x = x + self._linear(self._attend(q, k, v, g, b, t), Keys.attn(i, "o"))
            h = self._linear(self._norm(x, Keys.ln(i, "ln2")), Keys.ffn(i, "fc1"))
            h = F.relu(h) if cfg.activation == "relu" else F.gelu(h)
            x = x + self._linear(h, Keys.ffn(i, "fc2"))
        x = x.view(g, b, t, cfg.d_model)
        if columns is not None:
            x = x[:, :, columns]
        x = self._norm(x.reshape(g, -1, cfg.d_model), Keys.LN_F)
        return self._linear(x, Keys.HEAD).view(g, b, -1, cfg.vocab_size)

    def _linear(self, x: torch.Tensor, module: str) -> torch.Tensor:
        w = self.weight(Keys.weight(module)).transpose(1, 2)  # (G, in, out)
        if not self.cfg.bias:
            return torch.bmm(x, w)
        return torch.baddbmm(self.weight(Keys.bias(module)).unsqueeze(1), x, w)

    def _norm(self, x: torch.Tensor, module: str) -> torch.Tensor:
        if not self.cfg.layernorm:
            return x
        x = F.layer_norm(x, (self.cfg.d_model,))  # nn.LayerNorm's default eps
        weight, bias = self.weight(Keys.weight(module)), self.weight(Keys.bias(module))
        return torch.addcmul(bias.unsqueeze(1), x, weight.unsqueeze(1))

    def _attend(self, q, k, v, g: int, b: int, t: int) -> torch.Tensor:
        cfg = self.cfg

        def heads(z):
            return z.view(g * b, t, cfg.n_heads, cfg.d_head).transpose(1, 2)

        out = F.scaled_dot_product_attention(heads(q), heads(k), heads(v), is_causal=True, scale=cfg.scale)
        return out.transpose(1, 2).reshape(g, b * t, cfg.n_heads * cfg.d_head)

    def select(self, keep: list[int]) -> "StackedDecoder":
        """A stacked model of the members ``keep`` only (a member that stopped leaves the group)."""
        with torch.no_grad():
            members = [{name: w[i] for name, w in zip(self.names, self.weights)} for i in keep]
            return StackedDecoder(self.cfg, members).to(self.weights[0].device)


def flops_per_step(cfg: ModelConfig, batch: int, seq: int, labelled: int) -> float:
    """Training FLOP of one model for one step (forward and backward, 3x the forward's multiply-adds x2), with the
    unembedding at ``labelled`` positions of each sequence: what achieved-FLOP/s figures divide by."""
    hd = cfg.n_heads * cfg.d_head
    per_token = cfg.n_layers * 2 * (4 * cfg.d_model * hd + 2 * cfg.d_model * cfg.d_ff)
    attention = cfg.n_layers * 2 * 2 * seq * seq * hd / 2  # QK^T and AV, causal half
    head = 2 * cfg.d_model * cfg.vocab_size * labelled
    return 3.0 * batch * (seq * per_token + attention + head)
