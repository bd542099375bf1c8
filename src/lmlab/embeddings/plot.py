"""2-D scatter plots of word vectors (PCA or t-SNE), labelled, saved as PNG.

Chinese (and other CJK) labels need a font that has the glyphs; the first installed CJK font
matplotlib knows (Noto Sans CJK, Source Han, WenQuanYi, SimHei, ...) is used, and without one
a warning says so and what to install, since the labels would otherwise print as boxes.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lmlab.config import atomic_write_bytes
from lmlab.embeddings.vectors import Vectors
from lmlab.errors import LmlabError

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_CJK_FONT_HINTS = ("cjk", "source han", "wenquanyi", "wqy", "simhei", "simsun", "heiti",
                   "pingfang", "hiragino", "ms gothic", "ar pl", "droid sans fallback", "unifont")  # fmt: skip


def pca_2d(x: np.ndarray) -> np.ndarray:
    """Project rows of ``x`` on their first two principal components."""
    x = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return x @ vt[:2].T


def tsne_2d(x: np.ndarray, perplexity: float = 5.0, steps: int = 500, seed: int = 0) -> np.ndarray:
    """Exact t-SNE (van der Maaten and Hinton, 2008) for the few hundred points of a plot."""
    n = len(x)
    perplexity = min(perplexity, max(1.0, (n - 1) / 3))
    d2 = np.square(x[:, None, :] - x[None, :, :]).sum(-1)
    p = np.zeros((n, n))
    target = np.log(perplexity)
    for i in range(n):  # binary search for each point's Gaussian width
        lo, hi, beta = 0.0, np.inf, 1.0
        di = np.delete(d2[i], i)
        for _ in range(50):
            pi = np.exp(-(di - di.min()) * beta)
            s = pi.sum()
            h = np.log(s) + beta * (di * pi).sum() / s - beta * di.min()
            if abs(h - target) < 1e-5:
                break
            if h > target:
                lo, beta = beta, beta * 2 if hi == np.inf else (beta + hi) / 2
            else:
                hi, beta = beta, (beta + lo) / 2
        p[i, np.arange(n) != i] = pi / s
    p = np.maximum((p + p.T) / (2 * n), 1e-12)
    y = np.random.default_rng(seed).normal(scale=1e-4, size=(n, 2))
    gains, update = np.ones_like(y), np.zeros_like(y)
    for it in range(steps):
        num = 1.0 / (1.0 + np.square(y[:, None] - y[None]).sum(-1))
        np.fill_diagonal(num, 0.0)
        q = np.maximum(num / num.sum(), 1e-12)
        pp = p * (4.0 if it < 100 else 1.0)  # early exaggeration
        grad = 4.0 * (((pp - q) * num)[:, :, None] * (y[:, None] - y[None])).sum(1)
        momentum = 0.5 if it < 100 else 0.8
        gains = np.where(np.sign(grad) != np.sign(update), gains + 0.2, gains * 0.8).clip(0.01)
        update = momentum * update - 100.0 * gains * grad
        y += update
        y -= y.mean(0)
    return y


def cjk_font() -> str | None:
    """Name of an installed font with CJK glyphs, or None."""
    from matplotlib import font_manager

    for f in font_manager.fontManager.ttflist:
        if any(h in f.name.lower() for h in _CJK_FONT_HINTS):
            return f.name
    return None


def plot_words(
    vectors: Vectors,
    words: Sequence[str],
    out: str | Path,
    method: str = "pca",
    title: str | None = None,
    seed: int = 0,
) -> Path:
    """Scatter ``words`` in 2-D with their labels; unknown words are an error."""
    if len(words) < 3:
        raise LmlabError("plot needs at least three words")
    if method not in ("pca", "tsne"):
        raise LmlabError(f"unknown projection {method!r}; choose pca or tsne")
    x = np.stack([vectors[w] for w in words]).astype(np.float64)
    xy = pca_2d(x) if method == "pca" else tsne_2d(x, seed=seed)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    font = None
    if any(_CJK.search(w) for w in words):
        font = cjk_font()
        if font is None:
            warnings.warn(
                "no CJK font installed, so Chinese labels will show as boxes; install one "
                "(e.g. apt-get install fonts-noto-cjk) and delete matplotlib's font cache",
                stacklevel=2,
            )
    fig, ax = plt.subplots(figsize=(8, 6), dpi=120)
    ax.scatter(xy[:, 0], xy[:, 1], s=18, color="tab:blue")
    for (px, py), w in zip(xy, words, strict=True):
        ax.annotate(w, (px, py), xytext=(4, 3), textcoords="offset points", fontsize=10,
                    fontfamily=font or "sans-serif")  # fmt: skip
    ax.set_title(title or f"{len(words)} words, {method.upper()} projection")
    ax.set_xticks([])
    ax.set_yticks([])
    buf = io.BytesIO()
    with warnings.catch_warnings():  # the missing-font case was reported once, above
        warnings.filterwarnings("ignore", message="Glyph .* missing")
        fig.tight_layout()
        fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(out, buf.getvalue())
    return Path(out)
