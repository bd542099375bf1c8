"""Structured pruning: drop a Transformer's least important MLP channels, so the model is
really smaller (narrower matrices, fewer parameters, faster steps), not merely sparse.

* :mod:`lmlab.prune.importance`: how much each channel matters, measured on calibration
  text (first-order Taylor, weight magnitude, or random as the control);
* :mod:`lmlab.prune.channels`: keep the best channels of every layer and slice the weights
  into a model of the new width;
* :mod:`lmlab.prune.runs`: ``lmlab prune``, a run (or pretrained model) into a new run.
"""

from lmlab.prune.channels import choose_channels, prune_mlp
from lmlab.prune.importance import CRITERIA, mlp_importance
from lmlab.prune.runs import prune_run

__all__ = ["CRITERIA", "choose_channels", "mlp_importance", "prune_mlp", "prune_run"]
