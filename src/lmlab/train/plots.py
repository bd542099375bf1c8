"""``loss.png``: training loss (smoothed) and validation loss against steps."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_losses(metrics_path: Path, out: Path, title: str = "") -> Path | None:
    if not metrics_path.is_file():
        return None
    train, val = [], []
    for line in metrics_path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        if "loss" in r:
            train.append((r["step"], r["loss"]))
        if "val_loss" in r:
            val.append((r["step"], r["val_loss"]))
    if not train and not val:
        return None
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    if train:
        s, v = zip(*train, strict=True)
        ax.plot(s, v, lw=1, alpha=0.35, color="tab:blue")
        k = max(1, len(v) // 30)
        sm = [
            sum(v[max(0, i - k + 1) : i + 1]) / len(v[max(0, i - k + 1) : i + 1])
            for i in range(len(v))
        ]
        ax.plot(s, sm, lw=1.8, color="tab:blue", label="train (smoothed)")
    if val:
        s, v = zip(*val, strict=True)
        ax.plot(s, v, "o-", color="tab:orange", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(title or "loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(out)
    return out
