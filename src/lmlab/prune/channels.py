"""Keep the most important MLP channels of each layer and slice a Transformer's weights into
a model of the new, smaller width (``d_ff``); every layer keeps the same number, since
lmlab's config has one ``d_ff``, and the number is a multiple of ``multiple`` so the pruned
model can still be quantised in groups of 32."""

from __future__ import annotations

import dataclasses

import torch

from lmlab.errors import LmlabError


def kept_width(d_ff: int, fraction: float, multiple: int = 32) -> int:
    """Channels each layer keeps after pruning ``fraction`` of ``d_ff``: rounded to the
    nearest ``multiple`` (at least one multiple)."""
    if not 0.0 < fraction < 1.0:
        raise LmlabError(f"the fraction to prune must be between 0 and 1, got {fraction:g}")
    if multiple < 1:
        raise LmlabError(f"--multiple must be at least 1, got {multiple}")
    keep = round(d_ff * (1.0 - fraction) / multiple) * multiple
    keep = max(multiple, keep)
    if keep >= d_ff:
        raise LmlabError(
            f"pruning {fraction:g} of {d_ff} channels in multiples of {multiple} keeps all of "
            "them; prune a larger fraction or use a smaller --multiple"
        )
    return keep


def choose_channels(scores: list[torch.Tensor], keep: int) -> list[torch.Tensor]:
    """The ``keep`` highest-scoring channels of every layer, in their original order."""
    return [s.topk(keep).indices.sort().values for s in scores]


def prune_mlp(model, channels: list[torch.Tensor]):
    """A new Transformer whose layer ``i`` keeps MLP channels ``channels[i]`` (every layer
    the same count); the original model is left as it was."""
    from lmlab.models.transformer import Transformer

    cfg = model.config
    widths = {len(c) for c in channels}
    if len(channels) != cfg.n_layer or len(widths) != 1:
        raise LmlabError("prune_mlp needs one index list per layer, all of the same length")
    keep = widths.pop()
    h = cfg.ff_dim
    tensors = {k: v.detach().clone() for k, v in model.tensors_for_save().items()}
    for i, idx in enumerate(channels):
        p = f"blocks.{i}.mlp."
        if cfg.block == "llama":
            rows = torch.cat([idx, idx + h])  # the gate's rows, then the up projection's
            names = [p + "gate_up.weight", p + "gate_up.bias"]
        else:
            rows = idx
            names = [p + "fc.weight", p + "fc.bias"]
        for name in names:
            if name in tensors:
                tensors[name] = tensors[name][rows].contiguous()
        tensors[p + "proj.weight"] = tensors[p + "proj.weight"][:, idx].contiguous()
    new = Transformer.from_tensors(dataclasses.replace(cfg, d_ff=keep), tensors)
    return new.to(next(model.parameters()).dtype).eval()
