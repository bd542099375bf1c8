"""The logit lens (nostalgebraist, 2020): what a Transformer would predict if it stopped early.

The residual stream after the embedding and after every block is read through the model's
own final norm and unembedding, giving a next-token distribution per layer. On repeated
random tokens it shows where in depth the copy becomes predictable: the loss on the second
copy stays near that of the first (about ``log`` of the pool of tokens) through the early
layers and falls after the layers that hold the induction heads.

Only chosen positions are kept (:class:`ResidualRecorder` gathers them inside the forward
hooks), and the unembedding runs on a chunk of rows at a time, so a 49k-token vocabulary
over 30 layers never builds a ``(layers, tokens, vocab)`` tensor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lmlab.errors import LmlabError
from lmlab.models.transformer import Transformer


class ResidualRecorder:
    """Context manager: during the forward passes inside it, records the residual stream at
    the positions ``select`` names (``(rows, positions)`` index tensors into the current
    batch, set before each pass): index 0 is the embedding, index ``l + 1`` the output of
    block ``l``."""

    def __init__(self, model: Transformer) -> None:
        if not isinstance(model, Transformer):
            raise LmlabError("the logit lens needs a transformer")
        self.model = model
        self.select: tuple[torch.Tensor, torch.Tensor] | None = None
        self.rows: list[list[torch.Tensor]] = [[] for _ in range(len(model.blocks) + 1)]
        self._hooks: list = []

    def _keep(self, layer: int, x: torch.Tensor) -> None:
        if self.select is not None:
            b, t = self.select
            self.rows[layer].append(x[b, t].detach().float())

    def __enter__(self) -> ResidualRecorder:
        blocks = self.model.blocks
        self._hooks = [blocks[0].register_forward_pre_hook(lambda _m, a: self._keep(0, a[0]))]
        for i, block in enumerate(blocks):
            self._hooks.append(
                block.register_forward_hook(lambda _m, _a, out, i=i: self._keep(i + 1, out))
            )
        return self

    def __exit__(self, *exc) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []

    def stacked(self) -> torch.Tensor:
        """``(n_layer + 1, M, d)``: every recorded position, in recording order."""
        return torch.stack([torch.cat(r) for r in self.rows])


@torch.no_grad()
def lens_losses(
    model: Transformer, resid: torch.Tensor, targets: torch.Tensor, chunk: int = 512
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy ``(n_layer + 1, M)`` of ``targets`` ``(M,)`` read from each layer's
    residual ``resid`` ``(n_layer + 1, M, d)``, and whether the target ranked first."""
    n_layers, m, _ = resid.shape
    loss = torch.empty(n_layers, m)
    top1 = torch.empty(n_layers, m, dtype=torch.bool)
    targets = targets.to(resid.device)
    dtype = model.head.weight.dtype
    for layer in range(n_layers):
        for lo in range(0, m, chunk):
            x = resid[layer, lo : lo + chunk].to(dtype)
            logits = model.head(model.ln_f(x)).float()
            y = targets[lo : lo + chunk]
            loss[layer, lo : lo + chunk] = F.cross_entropy(logits, y, reduction="none").cpu()
            top1[layer, lo : lo + chunk] = (logits.argmax(-1) == y).cpu()
    return loss, top1


@torch.no_grad()
def logit_lens(
    model: Transformer, ids: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-layer mean loss and top-1 accuracy ``(n_layer + 1,)`` each, over the positions
    where ``mask`` ``(B, T-1)`` is true (position ``t`` predicts ``ids[:, t + 1]``)."""
    b, t = mask.nonzero(as_tuple=True)
    device = next(model.parameters()).device
    with ResidualRecorder(model) as rec:
        rec.select = (b.to(device), t.to(device))
        model(ids.to(device))
    loss, top1 = lens_losses(model, rec.stacked(), ids[b, t + 1])
    return loss.mean(1), top1.float().mean(1)


def plot_lens(
    loss: dict[str, list[float]],
    top1: dict[str, list[float]] | None,
    path,
    title: str = "",
) -> None:
    """Loss (log scale: an early layer read through the unembedding can be far off) and,
    beside it, top-1 accuracy, one line per named curve of ``n_layer + 1`` values (the
    embedding, then each layer's output) against the layer, numbered from 0 as the heads
    are (-1 for the embedding)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(loss, "loss (nats, log scale)")] + ([(top1, "top-1 accuracy")] if top1 else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.3), squeeze=False)
    for ax, (curves, ylabel) in zip(axes[0], panels, strict=True):
        for name, values in curves.items():  # values[0]: the embedding, [l + 1]: layer l
            ax.plot(range(-1, len(values) - 1), values, marker="o", ms=2.5, lw=1.2, label=name)
        ax.set_xlabel("output of layer (from 0, as the heads; -1 = the embedding)")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
    axes[0][0].set_yscale("log")
    if top1:
        axes[0][1].set_ylim(-0.02, 1.02)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
