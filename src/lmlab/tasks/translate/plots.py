"""The attention map of one translation: where each target token looks in the source."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lmlab.tasks.plots import _font_for, _save


def plot_attention(run, source: str, translation: str, out: Path, layer: int = -1) -> Path:
    """Cross-attention of ``run``'s model (last decoder layer, mean over heads) while it
    reads ``translation`` after ``source``, as a heatmap PNG."""
    import matplotlib.pyplot as plt

    from lmlab.tasks.translate.trainer import make_batch

    src_ids = run.encode_sources([source])[0]
    tgt_ids = np.asarray(run.tgt_tok.encode(translation), dtype=np.int64)
    x, mask, y_in, _ = make_batch([src_ids], [tgt_ids], run.eos, run.eos)
    w = run.model.cross_attention(x, mask, y_in, layer)[0].mean(0).float().numpy()
    src_labels = [run.src_tok.id_to_piece(int(i)).strip() or "␣" for i in src_ids]
    tgt_labels = [run.tgt_tok.id_to_piece(int(i)).strip() or "␣" for i in tgt_ids] + ["<eos>"]
    # row j: the decoder about to write target token j (the last row: the end token)
    font = _font_for(src_labels + tgt_labels)
    fig, ax = plt.subplots(figsize=(1.2 + 0.45 * len(src_labels), 1.2 + 0.4 * len(tgt_labels)),
                           dpi=120, layout="constrained")  # fmt: skip
    ax.imshow(w, cmap="Blues", vmin=0, vmax=max(float(w.max()), 1e-6), aspect="auto")
    kw = {"fontfamily": font} if font else {}
    ax.set_xticks(range(len(src_labels)), src_labels, rotation=60, ha="right", **kw)
    ax.set_yticks(range(len(tgt_labels)), tgt_labels, **kw)
    ax.set_xlabel("source token")
    ax.set_ylabel("target token")
    which = "last decoder layer" if layer == -1 else f"decoder layer {layer}"
    ax.set_title(f"cross-attention\n({which}, mean of heads)", fontsize=9)
    return _save(fig, Path(out))
