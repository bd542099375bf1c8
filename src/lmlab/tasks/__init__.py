"""Applications: models that do something with text (classify it; later answer questions about
it, translate, summarise, chat), trained and measured through one verb scheme.

``lmlab task train KIND --data DATA --model MODEL --out RUN`` writes a *task run*: a run
directory whose ``config.toml`` has a ``[task]`` section (kind, data spec, split seed, label
names, base model or word vectors if any) beside the usual ``[tokenizer]``, ``[model]`` and
``[train]``; ``lmlab task eval --run RUN`` and ``lmlab task predict --run RUN`` read it back.

Modules, one job each:

* :mod:`lmlab.tasks.data`: labelled examples from TSV/CSV/JSONL with named columns;
  bad input as one-line errors or counted warnings;
* :mod:`lmlab.tasks.splits`: seeded, stratified train/validation/test splits;
* :mod:`lmlab.tasks.datasets`: the built-in data sets (SST-2, AG News, ChnSentiCorp,
  waimai_10k, THUCNews titles) with their fixed splits;
* :mod:`lmlab.tasks.metrics`: accuracy, macro-F1 with bootstrap intervals, per-class
  precision/recall, confusion matrices;
* :mod:`lmlab.tasks.plots`: confusion-matrix and learning-curve pictures;
* :mod:`lmlab.tasks.rundir`: the task run directory (config, card, loading by kind);
* :mod:`lmlab.tasks.classify`: text classification (bag of embeddings, TextCNN, BiLSTM/GRU).
"""

from __future__ import annotations

# kind -> (module that implements it, one-line description). ``lmlab task train KIND``
# offers these; qa, translate, summarize and chat attach here later.
KINDS: dict[str, tuple[str, str]] = {
    "classify": ("lmlab.tasks.classify", "text classification and sentiment"),
    "translate": (
        "lmlab.tasks.translate",
        "translation (encoder-decoder Transformer, GRU seq2seq)",
    ),
    "qa": ("lmlab.tasks.qa", "extractive question answering (a span head on a pretrained model)"),
    "summarize": (
        "lmlab.tasks.summarize",
        "abstractive summarisation (encoder-decoder Transformer, GRU seq2seq)",
    ),
    "chat": ("lmlab.tasks.chat", "chat fine-tuning (assistant-only loss, full or LoRA)"),
}
# The classifier families' names (``lmlab.tasks.classify.models.FAMILIES`` builds them),
# listed here so that the command line can offer them without importing PyTorch.
CLASSIFIERS = ("bow", "textcnn", "bilstm", "bigru", "lm", "prompt")
