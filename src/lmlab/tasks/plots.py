"""Pictures of a task run: ``confusion.png`` and ``learning_curve.png`` (atomic writes)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

_CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "SimHei",
    "Microsoft YaHei",
    "PingFang SC",
    "Noto Sans CJK JP",
    "IPAexGothic",
)


def _save(fig, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(out)
    return out


def _font_for(labels: list[str]) -> list[str] | None:
    """A font that can draw the labels (Chinese class names need a CJK font, if installed)."""
    if all(ord(c) < 0x2E80 for s in labels for c in s):
        return None
    from matplotlib import font_manager

    have = {f.name for f in font_manager.fontManager.ttflist}
    found = [f for f in _CJK_FONTS if f in have]
    return [*found, "DejaVu Sans"] if found else None


def plot_confusion(
    confusion: np.ndarray, labels: list[str], out: Path, title: str = "confusion matrix"
) -> Path:
    """Counts in each cell, shaded by the share of the true class (row) they hold."""
    cm = np.asarray(confusion)
    share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    k = len(labels)
    size = max(4.0, 0.55 * k + 2.5)
    font = _font_for(labels)
    with plt.rc_context({"font.family": font} if font else {}):
        fig, ax = plt.subplots(figsize=(size + 1, size), dpi=110)
        im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(
            range(k), labels, rotation=45 if k > 4 else 0, ha="right" if k > 4 else "center"
        )
        ax.set_yticks(range(k), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{cm[i, j]:,}", ha="center", va="center", fontsize=8 if k > 6 else 10,
                        color="white" if share[i, j] > 0.6 else "black")  # fmt: skip
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
        ax.set_title(title)
        fig.tight_layout()
        return _save(fig, out)


def plot_learning_curve(
    metrics_path: Path, out: Path, title: str = "", select: str = "accuracy"
) -> Path | None:
    """Training and validation loss (left) and validation accuracy / macro-F1 (right)
    against optimizer steps, from ``metrics.jsonl``."""
    if not metrics_path.is_file():
        return None
    train, val = [], []
    for line in metrics_path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            if "train_loss" in r:
                train.append((r["step"], r["train_loss"]))
            if "val_accuracy" in r:
                val.append((r["step"], r["val_loss"], r["val_accuracy"], r["val_macro_f1"]))
    if not train and not val:
        return None
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    if train:
        s, v = zip(*train, strict=True)
        a1.plot(s, v, lw=1.2, color="tab:blue", label="train")
    if val:
        s, vl, va, vf = zip(*val, strict=True)
        a1.plot(s, vl, "o-", ms=3, color="tab:orange", label="validation")
        a2.plot(s, va, "o-", ms=3, color="tab:green", label="accuracy")
        a2.plot(s, vf, "s--", ms=3, color="tab:purple", label="macro-F1")
        best = int(np.argmax(va if select == "accuracy" else vf))
        a2.axvline(s[best], color="grey", lw=0.8, ls=":", label=f"best (step {s[best]})")
    a1.set_xlabel("step")
    a1.set_ylabel("cross-entropy (nats)")
    a1.set_title("loss")
    a2.set_xlabel("step")
    a2.set_title("validation")
    for a in (a1, a2):
        a.grid(alpha=0.3)
        a.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, out)
