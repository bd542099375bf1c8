"""Why did the classifier say that? Token scores for one prediction.

* ``grad`` (gradient x input): the gradient of the class's log-odds, ``log p / (1 - p)``,
  with respect to each input vector, dotted with that vector (Shrikumar et al. 2016;
  Simonyan et al. 2013 used gradients alone). The log-odds rather than the log-probability,
  whose gradient vanishes once the model is sure (p near 1). One forward and one backward
  pass.
* ``occlusion``: the drop in the predicted class's probability when a token is left out of
  the text. One forward pass per token, batched.

Positive scores pushed towards the predicted class, negative ones away from it.
"""

from __future__ import annotations

import numpy as np
import torch

from lmlab.errors import LmlabError
from lmlab.tasks.classify.batches import pad
from lmlab.tasks.classify.models import Classifier

METHODS = ("grad", "occlusion")


def explain(model: Classifier, ids: np.ndarray, target: int, method: str = "grad") -> np.ndarray:
    """One score per token of ``ids`` for class ``target``."""
    if method not in METHODS:
        raise LmlabError(f"unknown explanation method {method!r}; choose grad or occlusion")
    model.eval()
    if len(ids) == 0:
        return np.zeros(0, dtype=np.float32)
    x, mask = pad([ids], model.pad_id, model.min_length)
    if method == "grad":
        with torch.enable_grad():
            emb = model.embed(x).detach().requires_grad_(True)
            logits = model.classify(emb, mask)[0]
            others = torch.cat([logits[:target], logits[target + 1 :]])
            log_odds = logits[target] - torch.logsumexp(others, dim=0)
            (grad,) = torch.autograd.grad(log_odds, emb)
        return (grad * emb).sum(-1)[0, : len(ids)].detach().numpy()
    variants = [np.delete(ids, i) for i in range(len(ids))]
    with torch.inference_mode():
        full = torch.softmax(model(x, mask), dim=-1)[0, target].item()
        probs = []
        for start in range(0, len(variants), 64):
            vx, vm = pad(variants[start : start + 64], model.pad_id, model.min_length)
            probs.append(torch.softmax(model(vx, vm), dim=-1)[:, target].numpy())
    return (full - np.concatenate(probs)).astype(np.float32)
