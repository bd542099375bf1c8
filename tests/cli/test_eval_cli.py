"""``lmlab eval``: <unk> share and warning, bits per byte comparable across tokenizers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmlab.cli import main
from shared_data import shared_file

TINY = ["--steps", "4", "--batch-size", "4", "--context", "32", "--eval-every", "4"]
TINY += ["--set", "model.depth=1", "--set", "train.eval_batches=2"]
TINY += ["--set", "train.sample_tokens=0"]


def _split(text: str, tmp_path: Path) -> tuple[Path, Path]:
    cut = len(text) * 3 // 4
    train, test = tmp_path / "train.txt", tmp_path / "test.txt"
    train.write_text(text[:cut], encoding="utf-8")
    test.write_text(text[cut:], encoding="utf-8")
    return train, test


def _ngram(train: Path, out: Path, tokenizer: str, order: int, *extra: str) -> Path:
    argv = ["ngram", "build", "--corpus", str(train), "--order", str(order)]
    assert main([*argv, "--tokenizer", tokenizer, *extra, "--out", str(out)]) == 0
    return out


def _eval_json(capsys, run: Path, *args: str) -> tuple[dict, str]:
    capsys.readouterr()
    assert main(["eval", "--run", str(run), *args, "--json"]) == 0
    cap = capsys.readouterr()
    return json.loads(cap.out), cap.err


def _word_against_char(capsys, tmp_path: Path, text: str, vocab: int) -> None:
    train, test = _split(text, tmp_path)
    word = _ngram(train, tmp_path / "word", "word", 3, "--max-vocab", str(vocab))
    char = _ngram(train, tmp_path / "char", "char", 5)
    w, err = _eval_json(capsys, word, "--file", str(test))
    c, _ = _eval_json(capsys, char, "--file", str(test))
    assert w["unk_rate"] > 0.05 and w["unk"] == round(w["unk_rate"] * w["tokens"])
    assert "<unk>" in err and f"{w['unk_rate']:.2%}" in err  # the warning
    assert c["unk"] == 0 and c["bpb"] == c["bpb_without_spelling"]
    # The model's bits alone flatter the word model; charged their spelling, it loses.
    assert w["bpb_without_spelling"] < c["bpb"] < w["bpb"]
    assert w["unk_spelling"] == "exact"
    capsys.readouterr()
    assert main(["eval", "--run", str(word), "--file", str(test)]) == 0
    cap = capsys.readouterr()
    assert f"<unk>: {w['unk']:,} of the scored tokens" in cap.out and "warning" in cap.err


def test_word_model_with_many_unknown_words_does_not_beat_char(
    tiny_corpus: Path, tmp_path: Path, capsys
) -> None:
    text = tiny_corpus.read_text(encoding="utf-8")
    _word_against_char(capsys, tmp_path, text, 300)


def test_chinese_word_model_does_not_beat_char(tmp_path: Path, capsys) -> None:
    path = shared_file("zh_classics", "hongloumeng.txt")
    text = path.read_text(encoding="utf-8").replace("\r\n", "\n")[:40000]
    _word_against_char(capsys, tmp_path, text, 800)


def test_literal_unk_is_one_token(tmp_path: Path, capsys) -> None:
    train = tmp_path / "train.txt"
    train.write_text("the cat sat on the mat .\n" * 50 + "a <unk> sat on the <unk> .\n" * 5)
    run = _ngram(train, tmp_path / "w", "word", 2)
    test = tmp_path / "test.txt"
    test.write_text("the <unk> sat on the mat .\n")
    score, err = _eval_json(capsys, run, "--file", str(test))
    # "the <unk> sat on the mat . \\n": 8 tokens, one of them <unk> (not "<", "unk", ">")
    assert score["tokens"] == 8 and score["unk"] == 1 and "warning" in err


def test_validation_split_spelling_and_window_flags(tiny_corpus: Path, tmp_path, capsys) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(tiny_corpus.read_text(encoding="utf-8"), encoding="utf-8")
    run = tmp_path / "run"
    argv = ["train", "--out", str(run), "--corpus", str(corpus), "--tokenizer", "word"]
    assert main([*argv, "--vocab-size", "200", *TINY]) == 0
    exact, err = _eval_json(capsys, run)
    assert exact["unk_rate"] > 0.05 and exact["unk_spelling"] == "exact" and "warning" in err
    assert exact["bpb"] > exact["bpb_without_spelling"]
    narrow, _ = _eval_json(capsys, run, "--window", "16", "--stride", "4")
    assert narrow["tokens"] == exact["tokens"] and narrow["loss"] != pytest.approx(exact["loss"])
    corpus.unlink()  # the split's text is gone: the spelling is estimated
    est, _ = _eval_json(capsys, run)
    assert est["unk_spelling"] == "estimated" and est["loss"] == pytest.approx(exact["loss"])
    assert est["bpb"] == pytest.approx(exact["bpb"], rel=0.25)
    fast, _ = _eval_json(capsys, run, "--precision", "bf16")
    assert fast["tokens"] == exact["tokens"] and fast["loss"] == pytest.approx(
        exact["loss"], rel=1e-2
    )
    assert main(["eval", "--run", str(run), "--window", "33"]) == 2  # over the context (32)
    assert main(["eval", "--run", str(run), "--window", "16", "--stride", "17"]) == 2
