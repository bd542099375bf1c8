"""The importance of every MLP channel of a Transformer, one score per channel per layer.

* ``taylor`` (default): the first-order estimate of how much the loss on calibration text
  would change if the channel were removed (Molchanov et al. 2019; Michel et al. 2019 score
  attention heads the same way): a gate of ones multiplies the channel's activation ``a``
  before the output projection, and ``|dL/dgate| = |sum over tokens of a * dL/da|`` is
  added up over the calibration batches;
* ``activation``: the channel's mean absolute activation on the calibration text times the
  norm of its output weights: how much it adds to the residual stream on average, with no
  backward pass (the structured form of Wanda's |weight| x |input|, Sun et al. 2023);
* ``magnitude``: the norms of the channel's input and output weights multiplied (no data;
  the input weights scaled by the gains of the norm before the MLP, which they always see);
* ``random``: seeded random scores, the control that shows what a criterion is worth.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from lmlab.errors import LmlabError

CRITERIA = ("taylor", "activation", "magnitude", "random")


def _blocks(model) -> list:
    blocks = getattr(model, "blocks", None)
    if blocks is None or not hasattr(model, "config") or not hasattr(model.config, "ff_dim"):
        raise LmlabError("pruning needs a Transformer run (lmlab's gpt2 or llama blocks)")
    if not model.config.mlp:
        raise LmlabError("this Transformer has no MLP blocks (model.mlp = false): nothing to prune")
    return list(blocks)


def _input_rows(block) -> torch.Tensor:
    """(channels, inputs): the weights that make each channel's activation, times the gains
    of the norm in front of them."""
    mlp = block.mlp
    gain = block.ln2.weight.detach().float()
    if hasattr(mlp, "gate_up"):
        gate, up = (mlp.gate_up.weight.detach().float() * gain).chunk(2, dim=0)
        return torch.cat([gate, up], dim=1)
    return mlp.fc.weight.detach().float() * gain


def mlp_importance(
    model,
    ids: np.ndarray | None = None,
    criterion: str = "taylor",
    window: int = 256,
    batch_size: int = 4,
    seed: int = 0,
    progress: bool = False,
) -> list[torch.Tensor]:
    """One float tensor of ``d_ff`` scores per layer (higher: more important); ``ids`` is the
    calibration text's tokens, cut into windows of ``window`` tokens (``taylor`` and
    ``activation``)."""
    blocks = _blocks(model)
    mlps = [b.mlp for b in blocks]
    if criterion == "random":
        g = torch.Generator().manual_seed(seed)
        return [torch.rand(m.proj.in_features, generator=g) for m in mlps]
    if criterion == "magnitude":
        return [
            _input_rows(b).norm(dim=1) * b.mlp.proj.weight.detach().float().norm(dim=0)
            for b in blocks
        ]
    if criterion not in ("taylor", "activation"):
        raise LmlabError(f"unknown criterion {criterion!r}; choose one of {', '.join(CRITERIA)}")
    if ids is None or len(ids) < 2:
        raise LmlabError(f"the {criterion} criterion needs calibration text (at least two tokens)")
    ctx = model.context_length or window
    window = max(2, min(window, ctx, len(ids)))
    n_win = len(ids) // window
    x = torch.as_tensor(np.asarray(ids[: n_win * window], dtype=np.int64)).view(n_win, window)
    taylor = criterion == "taylor"
    gates = [torch.ones(m.proj.in_features, requires_grad=taylor) for m in mlps]
    scores = [torch.zeros(m.proj.in_features, dtype=torch.float64) for m in mlps]

    def gate(_mod, args, g: torch.Tensor, s: torch.Tensor):
        if not taylor:  # the channels' absolute activations, summed over the tokens
            s += args[0].detach().abs().flatten(0, -2).sum(0).double()
            return None
        return (args[0] * g.to(args[0].dtype),)

    hooks = [
        m.proj.register_forward_pre_hook(lambda mod, args, g=g, s=s: gate(mod, args, g, s))
        for m, g, s in zip(mlps, gates, scores, strict=True)
    ]
    was_training = model.training
    flags = [p.requires_grad for p in model.parameters()]
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        batches = range(0, n_win, batch_size)
        for lo in tqdm(batches, desc="importance", unit="batch", disable=not progress):
            xb = x[lo : lo + batch_size]
            if not taylor:
                with torch.no_grad():
                    model(xb[:, :-1])
                continue
            with torch.enable_grad():
                logits = model(xb[:, :-1])
                loss = F.cross_entropy(logits.float().flatten(0, 1), xb[:, 1:].flatten())
                loss.backward()
            for g, s in zip(gates, scores, strict=True):
                s += g.grad.double().abs()
                g.grad = None
    finally:
        for h in hooks:
            h.remove()
        for p, f in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(f)
        model.train(was_training)
    if not taylor:  # mean |activation| x the norm of what the channel writes
        n = n_win * (window - 1)
        return [(s / n).float() * m.proj.weight.detach().float().norm(dim=0)
                for s, m in zip(scores, mlps, strict=True)]  # fmt: skip
    return [s.float() for s in scores]
