"""Extractive question answering: a start/end span head on a pretrained causal Transformer.

``train_run(config, out)`` fine-tunes one (fully or with LoRA) into a task run directory;
``load_run(path)`` opens it for ``answer(question, context, top)``, ``evaluate`` and the
built-in data. Modules, one job each:

* :mod:`~lmlab.tasks.qa.data`: SQuAD-format ``.json``/``.json.zip`` reading, bad input counted;
* :mod:`~lmlab.tasks.qa.datasets`: built-in ``squad-xquad`` and ``cmrc``, splits by paragraph;
* :mod:`~lmlab.tasks.qa.metrics`: SQuAD's and CMRC 2018's official EM/F1, bootstrap intervals;
* :mod:`~lmlab.tasks.qa.windows`: question-then-passage inputs, overlapping windows, offsets;
* :mod:`~lmlab.tasks.qa.decode`: n-best span search back to character offsets;
* :mod:`~lmlab.tasks.qa.model`: the span model and its weights on disk;
* :mod:`~lmlab.tasks.qa.infer`: batched inference and answering;
* :mod:`~lmlab.tasks.qa.trainer`: fine-tuning with validation F1 for model selection;
* :mod:`~lmlab.tasks.qa.baselines`: the lexical-overlap and generative (instruct LLM) baselines;
* :mod:`~lmlab.tasks.qa.run`: the run directory (train, load, answer, evaluate).
"""

from __future__ import annotations

from lmlab.tasks.qa.run import QARun, load_run, train_run

__all__ = ["QARun", "load_run", "train_run"]
