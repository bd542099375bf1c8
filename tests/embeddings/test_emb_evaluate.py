"""Analogy and similarity evaluation: hand-checked toy sets, and agreement with gensim."""

from __future__ import annotations

import numpy as np
import pytest
from _shared import shared_path

from lmlab.embeddings.evaluate import evaluate_analogies, evaluate_similarity, read_analogies
from lmlab.embeddings.vectors import Vectors
from lmlab.errors import LmlabError


def _gendered() -> Vectors:
    """Pairs (male, female) = concept + / - a shared gender direction, plus noise words."""
    rng = np.random.default_rng(0)
    pairs = [("king", "queen"), ("man", "woman"), ("boy", "girl"), ("father", "mother"),
             ("son", "daughter"), ("he", "she"), ("brother", "sister"), ("uncle", "aunt")]  # fmt: skip
    gender = rng.normal(size=30)
    words, rows = [], []
    for m, f in pairs:
        concept = rng.normal(size=30) * 2
        words += [m, f]
        rows += [concept + gender, concept - gender]
    for i in range(50):
        words.append(f"noise{i}")
        rows.append(rng.normal(size=30) * 2)
    return Vectors(words, np.array(rows, dtype=np.float32))


def test_toy_analogies_sections_and_coverage(tmp_path):
    f = tmp_path / "q.txt"
    f.write_text(
        ": family\nking queen man woman\nboy girl father mother\nHE SHE son daughter\n"
        "king queen emperor empress\n: gram-x\nboy girl man noise1\n",
        encoding="utf-8",
    )
    v = _gendered()
    for method in ("add", "mul"):
        r = evaluate_analogies(v, f, method)
        fam, gram = r.sections
        assert (fam.correct, fam.seen, fam.total, fam.category) == (3, 3, 4, "semantic")
        assert (gram.correct, gram.seen, gram.category) == (0, 1, "syntactic")
        assert r.coverage == pytest.approx(4 / 5)
        assert r.accuracy == pytest.approx(3 / 4)
        assert r.semantic.accuracy == 1.0 and r.syntactic.accuracy == 0.0
    # restricting the vocabulary to the first 4 words loses coverage
    assert evaluate_analogies(v, f, restrict_vocab=4).total.seen == 1


def test_similarity_spearman_and_coverage(tmp_path):
    f = tmp_path / "s.txt"
    f.write_text(
        "king\tqueen\t9\nman\twoman\t8\nking\tnoise3\t1\nking\tunknown\t5\n", encoding="utf-8"
    )
    v = _gendered()
    r = evaluate_similarity(v, f)
    expected = [
        v.similarity("king", "queen"),
        v.similarity("man", "woman"),
        v.similarity("king", "noise3"),
    ]
    from scipy.stats import spearmanr

    assert r.spearman == pytest.approx(spearmanr([9, 8, 1], expected).statistic)
    assert (r.seen, r.total) == (3, 4)


def test_matches_gensim_on_google_analogies():
    gensim_models = pytest.importorskip("gensim.models", reason="gensim not installed (test extra)")
    path = shared_path("embedding_eval", "en", "questions-words.txt")
    # vectors for the family section: male = concept + g, female = partner's concept - g (+ noise)
    questions = read_analogies(path)[4][1]
    rng = np.random.default_rng(1)
    gender, concept, sign = rng.normal(size=20), {}, {}
    for a, b, c, d in questions:
        for m, f in ((a.lower(), b.lower()), (c.lower(), d.lower())):
            concept.setdefault(m, rng.normal(size=20) * 2)
            concept.setdefault(f, concept[m] + rng.normal(size=20) * 2.5)
            sign.setdefault(m, 1.0)
            sign.setdefault(f, -1.0)
    words = sorted(concept)
    vecs = np.array([concept[w] + sign[w] * gender for w in words], dtype=np.float32)
    v = Vectors(words, vecs)
    kv = gensim_models.KeyedVectors(20)
    kv.add_vectors(words, vecs)
    ours = evaluate_analogies(v, path)
    theirs_acc, sections = kv.evaluate_word_analogies(str(path))
    assert 0.2 < ours.accuracy < 1.0  # a non-trivial score, so agreement means something
    assert ours.accuracy == pytest.approx(theirs_acc)
    assert ours.total.seen == len(sections[-1]["correct"]) + len(sections[-1]["incorrect"])


def test_bad_eval_input(tmp_path):
    f = tmp_path / "q.txt"
    f.write_text(": s\na b c\n", encoding="utf-8")
    with pytest.raises(LmlabError, match="four words"):
        evaluate_analogies(_gendered(), f)
    with pytest.raises(LmlabError, match="not found"):
        evaluate_similarity(_gendered(), tmp_path / "none.txt")
    with pytest.raises(LmlabError, match="unknown analogy method"):
        evaluate_analogies(_gendered(), f, method="cos")
