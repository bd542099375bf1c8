"""``lmlab compare`` on a small real corpus: every rung trains, scores and reports."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from lmlab.cli import main
from lmlab.compare.ladder import stream_ppl
from lmlab.models import build_model
from shared_data import SHARED_DATA as DATA  # noqa: E402  (tests/ is on sys.path)


@pytest.fixture()
def corpus(tmp_path) -> tuple[Path, Path]:
    src = DATA / "timemachine" / "timemachine.txt"
    if not src.is_file():
        pytest.skip(f"shared data not found at {src} (set LMLAB_SHARED_DATA)")
    lines = src.read_text().splitlines()
    train, valid = tmp_path / "train.txt", tmp_path / "valid.txt"
    train.write_text("\n".join(lines[:1500]) + "\n")
    valid.write_text("\n".join(lines[3000:3150]) + "\n")
    return train, valid


def test_ladder_trains_every_rung_and_writes_a_report(corpus, tmp_path, capsys) -> None:
    train, valid = corpus
    out = tmp_path / "ladder"
    argv = [
        "compare",
        "--corpus",
        str(train),
        "--valid",
        str(valid),
        "--tokens",
        "3000",
        "--context",
        "16",
        "--batch-size",
        "8",
        "--max-vocab",
        "800",
        "--threads",
        "1",
        "--models",
        "ngram3,nplm,lstm,transformer,nplm_numpy",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    results = {r["name"]: r for r in json.loads((out / "results.json").read_text())}
    assert list(results) == ["ngram3", "nplm", "lstm", "transformer", "nplm_numpy"]
    for r in results.values():
        assert 1 < r["valid_ppl"] < 801 and r["params"] > 0 and r["sample"]
    # Neural rungs saw exactly the token budget (3000 // (8*16) steps of 128 tokens).
    assert results["lstm"]["tokens_seen"] == 23 * 128
    assert len(results["transformer"]["position_loss"]) == 16
    assert results["nplm_numpy"]["tokens_seen"] == 3000 // 256 * 256  # SGD steps of 256 windows
    report = (out / "report.md").read_text()
    assert "| ngram3 |" in report and "positions.png" in report
    # The 800-word vocabulary leaves many validation words unknown: the share is in every
    # row and the table carries the warning.
    unk = results["ngram3"]["valid_unk"]
    assert 0.01 < unk < 0.5 and all(r["valid_unk"] == unk for r in results.values())
    assert "| valid <unk> |" in report and f"| {unk:.2%} |" in report
    assert f"warning: {unk:.2%} of the validation tokens are <unk>" in report
    assert "<unk>" in capsys.readouterr().err
    assert (out / "ladder.png").is_file() and (out / "positions.png").is_file()
    for name in results:  # each rung is a run directory the other commands can load
        assert (out / name / "config.toml").is_file() and (
            out / name / "model.safetensors"
        ).is_file()
    # A rerun reuses the finished rungs instead of training again.
    stamp = (out / "lstm" / "model.safetensors").stat().st_mtime_ns
    assert main(argv) == 0
    assert (out / "lstm" / "model.safetensors").stat().st_mtime_ns == stamp
    assert (
        json.loads((out / "results.json").read_text())[1]["valid_ppl"]
        == results["nplm"]["valid_ppl"]
    )
    # --rescore reloads the saved weights and scores them again: the same figures.
    assert main([*argv, "--rescore"]) == 0
    rescored = {r["name"]: r for r in json.loads((out / "results.json").read_text())}
    for name in results:
        assert rescored[name]["valid_ppl"] == pytest.approx(results[name]["valid_ppl"], rel=1e-5)
    # A run trained elsewhere joins the table if it shares the split's tokenizer.
    inc = [*argv[:-3], "ngram3", "--out", str(out), "--include", f"again={out / 'lstm'}"]
    assert main(inc) == 0
    again = json.loads((out / "results.json").read_text())[-1]
    assert again["name"] == "again"
    assert again["valid_ppl"] == pytest.approx(results["lstm"]["valid_ppl"], rel=1e-6)
    assert again["tokens_seen"] == results["lstm"]["tokens_seen"]
    other = tmp_path / "char"
    build = ["ngram", "build", "--corpus", str(train), "--order", "2", "--tokenizer", "char"]
    assert main([*build, "--out", str(other)]) == 0
    assert main([*inc[:-1], f"char={other}"]) == 2


def test_stream_perplexity_is_exact_for_stateful_and_windowed_models() -> None:
    torch.manual_seed(0)
    ids = np.random.default_rng(0).integers(1, 50, 300)
    for family, cfg in [
        ("rnn", {"embed_dim": 8, "hidden_size": 16}),
        ("transformer", {"n_layer": 1, "n_head": 2, "d_model": 16, "context_length": 400}),
    ]:
        model = build_model(family, {"vocab_size": 50, **cfg}).eval()
        x = torch.from_numpy(np.concatenate([[0], ids])).view(1, -1)
        with torch.no_grad():
            logits = model(x[:, :-1])[0]
        direct = math.exp(torch.nn.functional.cross_entropy(logits, x[0, 1:]).item())
        assert stream_ppl(model, ids, eos_id=0, chunk=37) == pytest.approx(direct, rel=1e-5)


def test_bad_arguments_are_user_errors(corpus, tmp_path, capsys) -> None:
    train, _ = corpus
    out = str(tmp_path / "x")
    assert (
        main(
            ["compare", "--corpus", str(train), "--tokens", "100", "--models", "gpt9", "--out", out]
        )
        == 2
    )
    assert (
        main(
            ["compare", "--corpus", str(tmp_path / "missing.txt"), "--tokens", "100", "--out", out]
        )
        == 2
    )
    assert "Traceback" not in capsys.readouterr().err


def test_wall_clock_budget_stops_training_in_time(corpus, tmp_path) -> None:
    train, valid = corpus
    out = tmp_path / "timed"
    argv = ["compare", "--corpus", str(train), "--valid", str(valid), "--minutes", "0.05",
            "--context", "16", "--batch-size", "8", "--max-vocab", "800", "--threads", "1",
            "--models", "nplm,nplm_numpy", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    for r in json.loads((out / "results.json").read_text()):
        assert 0 < r["train_seconds"] < 3 + 2  # 3 s budget, plus one step and the final eval
        assert r["tokens_seen"] > 0


def test_lstm_rung_uses_carried_state_and_an_adaptive_softmax_on_word_vocabularies() -> None:
    from types import SimpleNamespace

    from lmlab.compare.ladder import rung_config
    from lmlab.tokenize.char import CharTokenizer
    from lmlab.tokenize.word import WordTokenizer

    words = SimpleNamespace(tokenizer=WordTokenizer([f"w{i}" for i in range(9998)]))
    model, train = rung_config("lstm", words)
    assert train == {"carry_state": True}
    assert model["adaptive_cutoffs"] == [2000, 6000] and not model["tie_embeddings"]
    build_model("rnn", {**{k: v for k, v in model.items() if k != "family"}, "vocab_size": 10000})
    chars = SimpleNamespace(tokenizer=CharTokenizer(list("abc")))
    model, _ = rung_config("lstm", chars)
    assert "adaptive_cutoffs" not in model  # char ids are not frequency-ordered


def test_table_without_unknown_words_has_no_warning() -> None:
    from lmlab.compare.ladder import RungResult
    from lmlab.compare.report import markdown_table

    row = dict(family="ngram", params=10, train_seconds=1.0, tokens_seen=5, tokens_per_second=5.0)
    old = RungResult("old", valid_ppl=3.0, test_ppl=None, sample="", **row)  # before the share
    table = markdown_table([old])
    assert "<unk>" not in table and "warning" not in table
    clean = RungResult("bpe", valid_ppl=3.0, test_ppl=None, sample="", valid_unk=0.0, **row)
    table = markdown_table([clean, old])
    assert "| 0.00% |" in table and "| - |" in table and "warning" not in table
