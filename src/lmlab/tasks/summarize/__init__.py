"""Summarisation: data sets with fixed splits, ROUGE (rouge-score), the extractive baselines
(lead-k, TextRank) an abstractive model has to beat, and abstractive runs: the translation
encoder-decoder (or GRU seq2seq) trained text -> summary (:mod:`.run`), and zero-shot
summaries from a chat model prompted through its chat template (:mod:`.prompted`).

``train_run(config, out)`` trains one into a task run directory; ``load_run(path)`` opens it
(imported lazily, so that the metrics and baselines load without PyTorch).
"""

from __future__ import annotations


def __getattr__(name: str):
    if name in ("train_run", "load_run", "SummarizationRun"):
        from lmlab.tasks.summarize import run

        return getattr(run, name)
    raise AttributeError(name)


__all__ = ["SummarizationRun", "load_run", "train_run"]
