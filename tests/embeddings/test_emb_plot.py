"""Word plots: PCA / t-SNE projections and the CJK font warning."""

from __future__ import annotations

import numpy as np
import pytest

from lmlab.embeddings import plot
from lmlab.embeddings.vectors import Vectors
from lmlab.errors import LmlabError


def _vectors() -> Vectors:
    rng = np.random.default_rng(0)
    words = ["cat", "dog", "paris", "london", "北京", "上海"]
    centres = np.repeat(rng.normal(size=(3, 10)) * 5, 2, axis=0)
    return Vectors(words, centres + rng.normal(size=(6, 10)) * 0.1)


def test_pca_and_tsne_keep_clusters_together():
    x = _vectors().vectors.astype(np.float64)
    for y in (plot.pca_2d(x), plot.tsne_2d(x, perplexity=2, steps=300)):
        d = np.linalg.norm(y[:, None] - y[None], axis=-1)
        within = [d[0, 1], d[2, 3], d[4, 5]]
        assert max(within) < np.median(d[d > 0])


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_plot_writes_png(tmp_path, method):
    out = plot.plot_words(_vectors(), ["cat", "dog", "paris", "london"], tmp_path / "p.png", method)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cjk_labels_warn_without_font(tmp_path, monkeypatch):
    monkeypatch.setattr(plot, "cjk_font", lambda: None)
    with pytest.warns(UserWarning, match="no CJK font"):
        plot.plot_words(_vectors(), ["北京", "上海", "cat"], tmp_path / "zh.png")
    assert (tmp_path / "zh.png").exists()


def test_plot_errors(tmp_path):
    with pytest.raises(LmlabError, match="at least three"):
        plot.plot_words(_vectors(), ["cat", "dog"], tmp_path / "p.png")
    with pytest.raises(LmlabError, match="not in the vocabulary"):
        plot.plot_words(_vectors(), ["cat", "dog", "mouse"], tmp_path / "p.png")
