"""Read-only word vectors and the queries people run on them (like gensim's ``KeyedVectors``).

Training code produces a :class:`Vectors`; everything after training (neighbours, analogies,
evaluation, plots, initialising a language model) only needs this object, which can be saved
and loaded in the word2vec text/binary formats or as safetensors + a vocabulary JSON.

>>> v = Vectors(["king", "queen", "man", "woman"], np.eye(4, dtype=np.float32))
>>> v.similarity("king", "king")
1.0
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lmlab.errors import LmlabError


class Vectors:
    """Words, their vectors (V, D) float32, most frequent first when trained here."""

    def __init__(
        self, words: Sequence[str], vectors: np.ndarray, counts: np.ndarray | None = None
    ) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(words):
            raise LmlabError(
                f"{len(words)} words but vectors of shape {vectors.shape}; they must match"
            )
        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}
        if len(self.index) != len(self.words):
            raise LmlabError("duplicate words in the vocabulary; each word must appear once")
        vectors.flags.writeable = False
        self.vectors = vectors
        self.counts = None if counts is None else np.asarray(counts, dtype=np.int64)
        self._unit: np.ndarray | None = None

    # ---- basic access -------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def __getitem__(self, word: str) -> np.ndarray:
        return self.vectors[self.get_index(word)]

    @property
    def vector_size(self) -> int:
        return int(self.vectors.shape[1])

    def get_index(self, word: str) -> int:
        """Row of ``word``; a clear error if it is not in the vocabulary."""
        i = self.index.get(word)
        if i is None:
            raise LmlabError(
                f"word {word!r} is not in the vocabulary ({len(self)} words); check its "
                "spelling and case, or train with a lower --min-count"
            )
        return i

    @property
    def unit(self) -> np.ndarray:
        """Vectors scaled to unit length (zero vectors stay zero); computed once."""
        if self._unit is None:
            norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
            unit = self.vectors / np.maximum(norms, 1e-12)
            unit.flags.writeable = False
            self._unit = unit
        return self._unit

    # ---- queries ------------------------------------------------------------------------
    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two words."""
        u = self.unit
        return float(u[self.get_index(a)] @ u[self.get_index(b)])

    def _ids(self, words: Sequence[str] | str) -> list[int]:
        if isinstance(words, str):
            words = [words]
        return [self.get_index(w) for w in words]

    def most_similar(
        self,
        positive: Sequence[str] | str = (),
        negative: Sequence[str] | str = (),
        topn: int = 10,
        restrict_vocab: int | None = None,
    ) -> list[tuple[str, float]]:
        """Words nearest the mean of the positive minus the negative unit vectors (3CosAdd).

        ``most_similar(["king", "woman"], ["man"])`` answers *man : king :: woman : ?*.
        The query words themselves are excluded.
        """
        pos, neg = self._ids(positive), self._ids(negative)
        if not pos and not neg:
            raise LmlabError("most_similar needs at least one positive or negative word")
        u = self.unit
        query = u[pos].sum(axis=0) - u[neg].sum(axis=0)
        query /= max(float(np.linalg.norm(query)), 1e-12)
        scores = u[: restrict_vocab or len(self)] @ query
        return self._top(scores, set(pos) | set(neg), topn)

    def most_similar_cosmul(
        self,
        positive: Sequence[str] | str = (),
        negative: Sequence[str] | str = (),
        topn: int = 10,
        restrict_vocab: int | None = None,
    ) -> list[tuple[str, float]]:
        """Levy and Goldberg's 3CosMul: product of shifted cosines to positives over negatives."""
        pos, neg = self._ids(positive), self._ids(negative)
        if not pos:
            raise LmlabError("most_similar_cosmul needs at least one positive word")
        u = self.unit[: restrict_vocab or len(self)]
        sims = (1.0 + u @ self.unit[pos + neg].T) / 2.0  # (V, P+N) cosines shifted to [0, 1]
        scores = sims[:, : len(pos)].prod(axis=1) / (sims[:, len(pos) :].prod(axis=1) + 1e-6)
        return self._top(scores, set(pos) | set(neg), topn)

    def neighbors(self, word: str, topn: int = 10) -> list[tuple[str, float]]:
        """The ``topn`` nearest words to ``word`` by cosine similarity."""
        return self.most_similar([word], topn=topn)

    def doesnt_match(self, words: Sequence[str]) -> str:
        """The word furthest from the mean of the others (the odd one out)."""
        ids = self._ids(words)
        if len(ids) < 2:
            raise LmlabError("doesnt_match needs at least two words")
        u = self.unit[ids]
        mean = u.mean(axis=0)
        mean /= max(float(np.linalg.norm(mean)), 1e-12)
        return self.words[ids[int(np.argmin(u @ mean))]]

    def _top(self, scores: np.ndarray, exclude: set[int], topn: int) -> list[tuple[str, float]]:
        k = min(len(scores), topn + len(exclude))
        best = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        best = best[np.argsort(-scores[best], kind="stable")]
        return [(self.words[i], float(scores[i])) for i in best if i not in exclude][:topn]

    # ---- files --------------------------------------------------------------------------
    def save(self, path: str | Path, fmt: str | None = None) -> Path:
        """Save as word2vec text (``.txt``/``.vec``), binary (``.bin``) or ``.safetensors``."""
        from lmlab.embeddings.formats import save_vectors

        return save_vectors(self, path, fmt)

    @classmethod
    def load(cls, path: str | Path, fmt: str | None = None) -> Vectors:
        """Load a file written by :meth:`save`, gensim, word2vec or GloVe (text)."""
        from lmlab.embeddings.formats import load_vectors

        return load_vectors(path, fmt)
