"""Chat fine-tuning: supervised fine-tuning of a chat model on conversations with its chat
template, the loss on the assistant's turns only, fully or with LoRA.

``train_run(config, out)`` writes an ordinary lmlab run directory (``lmlab chat``,
``generate`` and ``serve`` open it with its template); ``load_run(path)`` opens it for
``reply`` and for scoring against its base. Modules, one job each:

* :mod:`~lmlab.tasks.chat.data`: DailyDialog, SAMSum as single-turn chat, JSONL files;
* :mod:`~lmlab.tasks.chat.loss`: ids and assistant masks, the assistant-only loss;
* :mod:`~lmlab.tasks.chat.trainer`: the training loop with validation response perplexity;
* :mod:`~lmlab.tasks.chat.evaluate`: perplexity tuned vs base, distinct-1/2, ROUGE;
* :mod:`~lmlab.tasks.chat.run`: the run directory (train, load).
"""

from __future__ import annotations

from lmlab.tasks.chat.run import ChatRun, load_run, train_run

__all__ = ["ChatRun", "load_run", "train_run"]
