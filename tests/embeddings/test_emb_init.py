"""Initialising a word-level model's embedding layer from trained vectors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lmlab.embeddings.formats import save_vectors
from lmlab.embeddings.init import init_embedding_layer
from lmlab.embeddings.vectors import Vectors
from lmlab.errors import LmlabError
from lmlab.tokenize.word import WordTokenizer


@pytest.fixture
def vectors_file(tmp_path):
    v = Vectors(["the", "time", "machine", "absent"], np.arange(16, dtype=np.float32).reshape(4, 4))
    return save_vectors(v, tmp_path / "v.txt")


def test_copies_known_words_and_reports_coverage(vectors_file):
    tok = WordTokenizer(["the", "Time", "traveller"])  # specials <eos>, <unk> come first
    emb = torch.nn.Embedding(tok.vocab_size, 4)
    before = emb.weight.detach().clone()
    report = init_embedding_layer(emb, tok, vectors_file, freeze=False)
    assert (report["found"], report["words"]) == (2, 3)
    assert report["coverage"] == pytest.approx(2 / 3)
    assert report["missing"] == ["traveller"]
    w = emb.weight.detach()
    ids = {tok.id_to_piece(i): i for i in range(tok.vocab_size)}
    assert w[ids["the"]].tolist() == [0, 1, 2, 3]
    assert w[ids["Time"]].tolist() == [4, 5, 6, 7]  # found through its lower-case form
    for untouched in ("traveller", "<eos>", "<unk>"):
        assert torch.equal(w[ids[untouched]], before[ids[untouched]])
    assert emb.weight.requires_grad


def test_freeze_stops_gradients(vectors_file):
    tok = WordTokenizer(["the", "time"])
    emb = torch.nn.Embedding(tok.vocab_size, 4)
    report = init_embedding_layer(emb, tok, vectors_file, freeze=True)
    assert report["frozen"] and not emb.weight.requires_grad


def test_dimension_mismatch_and_wrong_tokenizer(vectors_file):
    tok = WordTokenizer(["the"])
    with pytest.raises(LmlabError, match="4 dimensions but the model's embedding has 8"):
        init_embedding_layer(torch.nn.Embedding(tok.vocab_size, 8), tok, vectors_file, False)

    class CharTok:
        vocab_size = 3

    with pytest.raises(LmlabError, match="word-level tokenizer"):
        init_embedding_layer(torch.nn.Embedding(3, 4), CharTok(), vectors_file, False)
