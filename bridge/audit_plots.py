"""Audit figures: accuracy and soundness by CoT position, and attention heatmaps beside the construction's reads."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np


def _save(fig, path: Path) -> str:
    import matplotlib.pyplot as plt

    from neural.checkpoint import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return str(path)


def write_plots(out: Path, task, prompts, gen, report: dict, attn) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    n = task.n_steps
    samples = report["samples"]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    pos = np.arange(1, n + 1)
    ax.plot(pos, report["accuracy_by_position"], "o-", label="correct")
    ax.plot(pos, 1 - np.array(report["errors_by_position"]) / samples, "s--", label="sound")
    ax.set_xlabel("CoT step")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"{task.name}: accuracy and soundness by CoT position")
    ax.legend()
    paths = [_save(fig, out / "by_position.png")]

    q = task.n_prompt + np.arange(n)
    reads = task.read_positions(prompts[:1, :task.n_prompt])
    T = attn[0].shape[-1]
    construction = np.zeros((n, T))
    for p in reads.values():
        for i, k in enumerate(p[0]):
            if k >= 0:
                construction[i, k] = 1.0
    panels = [(f"L{layer}H{h}", w[0, h][q]) for layer, w in enumerate(attn) for h in range(w.shape[1])]
    panels.append(("construction reads", construction))
    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, (title, m) in zip(axes.flat, panels):
        ax.imshow(m, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("key position", fontsize=8)
        ax.set_ylabel("CoT step", fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle("attention at each CoT step (sample 0)", fontsize=10)
    fig.tight_layout()
    paths.append(_save(fig, out / "attention.png"))
    return paths
