"""Initialise a language model's embedding layer from trained word vectors.

Used by ``lmlab train --init-embeddings vectors.txt`` for word-level models: each word of the
tokenizer's vocabulary found in the vectors (exactly, or else lower-cased) gets its trained
vector; the others, and the special tokens, keep their random initialisation. The report says
how many words were covered, so a mismatch (a cased tokenizer against lower-cased vectors, a
different language) is visible at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lmlab.embeddings.vectors import Vectors
from lmlab.errors import LmlabError


def init_embedding_layer(
    embedding: Any, tokenizer: Any, vectors_path: str | Path, freeze: bool = False
) -> dict[str, Any]:
    """Copy vectors into ``embedding`` (a ``torch.nn.Embedding``) row by token id.

    ``tokenizer`` is a word tokenizer (``.words``, ``.specials``, ``id_to_piece``,
    ``vocab_size``). ``freeze`` stops gradient updates of the whole embedding matrix (with tied
    input/output weights that freezes the output layer too). Returns a coverage report:
    ``found``, ``words``, ``coverage``, ``dim``, ``missing`` (a few examples).
    """
    import torch

    if not hasattr(tokenizer, "words"):
        raise LmlabError("--init-embeddings needs a word-level tokenizer; use --tokenizer word")
    vectors = Vectors.load(vectors_path)
    dim = int(embedding.weight.shape[1])
    if vectors.vector_size != dim:
        raise LmlabError(
            f"vectors in {vectors_path} have {vectors.vector_size} dimensions but the model's "
            f"embedding has {dim}; train vectors of size {dim} or change the model width"
        )
    if tokenizer.vocab_size > embedding.weight.shape[0]:
        raise LmlabError(
            f"tokenizer has {tokenizer.vocab_size} tokens but the embedding only "
            f"{embedding.weight.shape[0]} rows; they must come from the same run"
        )
    specials = set(getattr(tokenizer, "specials", ()))
    rows, sources, missing, n_words = [], [], [], 0
    for i in range(tokenizer.vocab_size):
        piece = tokenizer.id_to_piece(i)
        if piece in specials:
            continue
        n_words += 1
        j = vectors.index.get(piece)
        if j is None:
            j = vectors.index.get(piece.lower())
        if j is None:
            if len(missing) < 10:
                missing.append(piece)
            continue
        rows.append(i)
        sources.append(j)
    if rows:
        w = embedding.weight
        new = torch.from_numpy(np.ascontiguousarray(vectors.vectors[sources]))
        with torch.no_grad():
            w[torch.tensor(rows, dtype=torch.long)] = new.to(dtype=w.dtype, device=w.device)
    embedding.weight.requires_grad_(not freeze)
    return {
        "found": len(rows),
        "words": n_words,
        "coverage": len(rows) / n_words if n_words else 0.0,
        "dim": dim,
        "frozen": freeze,
        "missing": missing,
    }
