"""Translation: an encoder-decoder Transformer or an attention GRU seq2seq trained on parallel
text (the built-in Tatoeba Chinese-English pairs or your own), decoded greedily, by beam
search or by sampling, scored with sacrebleu's BLEU and chrF.

``train_run(config, out)`` trains one into a task run directory; ``load_run(path)`` opens it
for ``translate`` and ``evaluate``.
"""

from __future__ import annotations

from lmlab.tasks.translate.run import TranslationRun, load_run, train_run

__all__ = ["TranslationRun", "load_run", "train_run"]
