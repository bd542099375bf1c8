"""Text classification and sentiment: bag of embeddings, TextCNN, BiLSTM/GRU encoders.

``train_run(config, out)`` trains one into a task run directory; ``load_run(path)`` opens it
for ``predict_proba``, ``evaluate`` and ``explain``.
"""

from __future__ import annotations

from lmlab.tasks.classify.models import FAMILIES, build_classifier
from lmlab.tasks.classify.run import ClassifierRun, load_run, train_run
from lmlab.tasks.classify.trainer import ClassifyTrainConfig

__all__ = [
    "FAMILIES",
    "ClassifierRun",
    "ClassifyTrainConfig",
    "build_classifier",
    "load_run",
    "train_run",
]
