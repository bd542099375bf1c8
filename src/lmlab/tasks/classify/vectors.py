"""Start a classifier's embedding from lmlab word (or character) vectors.

Vectors trained by ``lmlab embed train`` (``--mode words`` for the word tokenizer, ``--mode
chars`` for the char tokenizer; any of its file formats) are copied row by row: each word or
character of the tokenizer found in the vectors (exactly, else lower-cased) gets its vector;
the others keep their random start. The coverage goes into the run's config and card, so a
mismatch (cased words against lower-cased vectors, another language) shows at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from lmlab.embeddings.vectors import Vectors
from lmlab.errors import LmlabError
from lmlab.tokenize import CharTokenizer, Tokenizer, WordTokenizer


def vocabulary(tokenizer: Tokenizer) -> list[tuple[int, str]]:
    """(id, piece) of every word or character the tokenizer learned (no specials, no bytes)."""
    if isinstance(tokenizer, WordTokenizer):
        return [
            (i, tokenizer.id_to_piece(i))
            for i in range(len(tokenizer.specials), tokenizer.vocab_size)
        ]
    if isinstance(tokenizer, CharTokenizer):
        base = tokenizer.vocab_size - len(tokenizer.chars)
        return [(base + i, c) for i, c in enumerate(tokenizer.chars)]
    raise LmlabError(
        "word vectors need the word or char tokenizer; drop --vectors or change --tokenizer"
    )


def vector_size(path: str | Path) -> int:
    return Vectors.load(path).vector_size


def init_from_vectors(
    embedding: torch.nn.Embedding, tokenizer: Tokenizer, vectors: Vectors, freeze: bool
) -> dict[str, Any]:
    """Copy ``vectors`` into ``embedding``; returns ``found``, ``words``, ``coverage``."""
    dim = int(embedding.weight.shape[1])
    if vectors.vector_size != dim:
        raise LmlabError(
            f"the vectors have {vectors.vector_size} dimensions but the model's embedding has "
            f"{dim}; leave model.embed_dim unset to take the vectors' size"
        )
    rows, sources = [], []
    items = vocabulary(tokenizer)
    for i, piece in items:
        j = vectors.index.get(piece)
        if j is None:
            j = vectors.index.get(piece.lower())
        if j is not None:
            rows.append(i)
            sources.append(j)
    if rows:
        new = torch.from_numpy(np.ascontiguousarray(vectors.vectors[sources]))
        with torch.no_grad():
            embedding.weight[torch.tensor(rows)] = new.to(embedding.weight.dtype)
    embedding.weight.requires_grad_(not freeze)
    n = len(items)
    return {"found": len(rows), "words": n, "coverage": len(rows) / n if n else 0.0}
