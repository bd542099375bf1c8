from __future__ import annotations

import numpy as np
import pytest

from lmlab.data.batches import eval_windows, sample_batch
from lmlab.data.shards import open_dataset, prepare_dataset
from lmlab.data.sources import resolve_sources
from lmlab.errors import LmlabError


def test_prepare_split_and_memmaps(tmp_path, tiny_corpus) -> None:
    tok, meta = prepare_dataset(
        resolve_sources([str(tiny_corpus)]), tmp_path / "ds", tokenizer_kind="char"
    )
    text = tiny_corpus.read_text(encoding="utf-8")
    split = round(len(text) * 0.9)
    ds = open_dataset(tmp_path / "ds")
    assert ds.train.dtype == np.uint16 and isinstance(ds.train, np.memmap)
    # first 90% of the characters are training, the last 10% validation, exactly
    assert tok.decode(ds.train) == text[:split]
    assert tok.decode(ds.val) == text[split:]
    assert meta.val_bytes == len(text[split:].encode("utf-8"))
    # deterministic: preparing again gives identical files
    prepare_dataset(resolve_sources([str(tiny_corpus)]), tmp_path / "ds2", tokenizer_kind="char")
    assert (tmp_path / "ds" / "train.bin").read_bytes() == (
        tmp_path / "ds2" / "train.bin"
    ).read_bytes()


def test_documents_are_separated_by_eos(tmp_path) -> None:
    for name, body in (("a.txt", "first document " * 20), ("b.txt", "second one " * 20)):
        (tmp_path / name).write_text(body, encoding="utf-8")
    tok, meta = prepare_dataset(
        resolve_sources([str(tmp_path / "a.txt"), str(tmp_path / "b.txt")]),
        tmp_path / "ds",
        tokenizer_kind="word",
    )
    ds = open_dataset(tmp_path / "ds")
    ids = np.concatenate([ds.train, ds.val])
    assert (ids == tok.eos_id).sum() == 1


def test_empty_corpus_is_an_error(tmp_path) -> None:
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    with pytest.raises(LmlabError, match="empty"):
        prepare_dataset(resolve_sources([str(tmp_path / "empty.txt")]), tmp_path / "ds")


def test_truncated_shard_is_detected(tmp_path, tiny_corpus) -> None:
    prepare_dataset(resolve_sources([str(tiny_corpus)]), tmp_path / "ds")
    f = tmp_path / "ds" / "train.bin"
    f.write_bytes(f.read_bytes()[:-10])
    with pytest.raises(LmlabError, match="truncated"):
        open_dataset(tmp_path / "ds")


def test_batches_are_shifted_windows() -> None:
    tokens = np.arange(1000, dtype=np.uint16)
    x, y = sample_batch(tokens, 4, 16, np.random.default_rng(0))
    assert x.shape == (4, 16) and (y - x == 1).all()
    windows = list(eval_windows(tokens, 100, 3))
    assert sum(w[0].shape[0] for w in windows) == 9
    assert (windows[0][0][0] == np.arange(100)).all()
