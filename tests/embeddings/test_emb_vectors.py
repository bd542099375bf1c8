"""The read-only Vectors object: queries, file formats, gensim interoperability, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from lmlab.embeddings.formats import load_vectors, save_vectors
from lmlab.embeddings.vectors import Vectors
from lmlab.errors import LmlabError

WORDS = ["king", "queen", "man", "woman", "apple", "pear", "北京"]


def _toy() -> Vectors:
    """Royalty + gender directions; fruit elsewhere. king - man + woman = queen exactly."""
    base = {"royal": [1, 0, 0, 0], "person": [0, 1, 0, 0], "fruit": [0, 0, 0, 1]}
    g = np.array([0, 0, 1, 0], dtype=np.float32) * 0.5
    rows = [
        np.array(base["royal"]) + np.array(base["person"]) * 0.5 + g,
        np.array(base["royal"]) + np.array(base["person"]) * 0.5 - g,
        np.array(base["person"]) + g,
        np.array(base["person"]) - g,
        np.array(base["fruit"]) + [0.1, 0, 0, 0],
        np.array(base["fruit"]) + [0, 0.1, 0, 0],
        np.array([0.3, 0.3, 0.3, 0.3]),
    ]
    return Vectors(WORDS, np.array(rows, dtype=np.float32), counts=np.arange(7, 0, -1))


def test_queries():
    v = _toy()
    assert v.most_similar(["king", "woman"], ["man"], topn=1)[0][0] == "queen"
    assert v.most_similar_cosmul(["king", "woman"], ["man"], topn=1)[0][0] == "queen"
    assert v.neighbors("apple", 1)[0][0] == "pear"
    assert v.doesnt_match(["king", "queen", "man", "apple"]) == "apple"
    assert v.similarity("apple", "apple") == pytest.approx(1.0)
    assert v.similarity("king", "queen") > v.similarity("king", "apple")
    assert "king" not in [w for w, _ in v.most_similar(["king"], topn=10)]
    with pytest.raises(ValueError):
        v.vectors[0, 0] = 1.0  # read-only


def test_unknown_word_is_a_clear_error():
    v = _toy()
    with pytest.raises(LmlabError, match="'kingdom' is not in the vocabulary"):
        v.most_similar(["kingdom"])
    with pytest.raises(LmlabError):
        v.similarity("king", "emperor")


@pytest.mark.parametrize("name", ["v.txt", "v.bin", "v.safetensors"])
def test_round_trip(tmp_path, name):
    v = _toy()
    path = save_vectors(v, tmp_path / name)
    w = load_vectors(path)
    assert w.words == v.words
    np.testing.assert_array_equal(w.vectors, v.vectors)
    if name.endswith(".safetensors"):
        assert w.counts.tolist() == v.counts.tolist()


def test_gensim_reads_ours_and_we_read_gensims(tmp_path):
    gensim_models = pytest.importorskip("gensim.models", reason="gensim not installed (test extra)")
    v = Vectors(WORDS, np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32))
    for binary, name in ((False, "ours.txt"), (True, "ours.bin")):
        save_vectors(v, tmp_path / name)
        kv = gensim_models.KeyedVectors.load_word2vec_format(str(tmp_path / name), binary=binary)
        assert list(kv.index_to_key) == WORDS
        np.testing.assert_array_equal(kv.vectors, v.vectors)
        kv.save_word2vec_format(str(tmp_path / f"gensim-{name}"), binary=binary)
        back = load_vectors(tmp_path / f"gensim-{name}")
        assert back.words == WORDS
        np.testing.assert_array_equal(back.vectors, v.vectors)


def test_glove_text_without_header(tmp_path):
    p = tmp_path / "glove.txt"
    p.write_text("the 0.1 0.2\ncat 0.3 -0.4\n", encoding="utf-8")
    v = load_vectors(p)
    assert v.words == ["the", "cat"] and v.vectors.shape == (2, 2)


@pytest.mark.parametrize(
    "name,content,match",
    [
        ("bad.txt", "2 3\nthe 0.1 0.2 0.3\ncat 0.1 0.2\n", "line 3 has 2 values"),
        ("bad2.txt", "3 2\nthe 0.1 0.2\ncat 0.1 0.2\n", "header says 3 words"),
        ("bad3.txt", "2 2\nthe 0.1 x\ncat 0.1 0.2\n", "non-numeric"),
        ("empty.txt", "", "empty file"),
        ("bad.bin", b"2 4\nthe " + b"\x00" * 16 + b"\ncat " + b"\x00" * 5, "truncated"),
        ("nohead.bin", b"\x00\x01garbage", "header"),
        ("bin-as-text.txt", b"1 2\nthe \xff\xfe\x00\x00\x00\x00\x00\x00\n", "not UTF-8"),
    ],
)
def test_corrupt_files_are_clear_errors(tmp_path, name, content, match):
    p = tmp_path / name
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content, encoding="utf-8")
    with pytest.raises(LmlabError, match=match):
        load_vectors(p)


def test_missing_files(tmp_path):
    with pytest.raises(LmlabError, match="not found"):
        load_vectors(tmp_path / "nope.txt")
    save_vectors(_toy(), tmp_path / "v.safetensors")
    (tmp_path / "v.vocab.json").unlink()
    with pytest.raises(LmlabError, match="vocabulary file"):
        load_vectors(tmp_path / "v.safetensors")
    (tmp_path / "x.safetensors").write_bytes(b"not safetensors")
    (tmp_path / "x.vocab.json").write_text('{"words": []}', encoding="utf-8")
    with pytest.raises(LmlabError, match="corrupt"):
        load_vectors(tmp_path / "x.safetensors")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # gensim's own doesnt_match
def test_queries_agree_with_gensim():
    gensim_models = pytest.importorskip("gensim.models", reason="gensim not installed (test extra)")
    rng = np.random.default_rng(3)
    words = [f"w{i}" for i in range(60)]
    vecs = rng.normal(size=(60, 12)).astype(np.float32)
    ours = Vectors(words, vecs)
    kv = gensim_models.KeyedVectors(12)
    kv.add_vectors(words, vecs)
    pos, neg = ["w1", "w2"], ["w3"]
    for mine, theirs in (
        (ours.most_similar(pos, neg, topn=5), kv.most_similar(pos, neg, topn=5)),
        (ours.most_similar_cosmul(pos, neg, topn=5), kv.most_similar_cosmul(pos, neg, topn=5)),
        (ours.neighbors("w7", 5), kv.most_similar("w7", topn=5)),
    ):
        assert [w for w, _ in mine] == [w for w, _ in theirs]
        np.testing.assert_allclose(
            [s for _, s in mine], [s for _, s in theirs], rtol=1e-4, atol=1e-5
        )
    assert ours.doesnt_match(["w1", "w2", "w3", "w4"]) == kv.doesnt_match(["w1", "w2", "w3", "w4"])
    assert ours.similarity("w1", "w9") == pytest.approx(float(kv.similarity("w1", "w9")), abs=1e-5)
