"""``lmlab ngram`` end to end: build, eval, export, import, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmlab.cli import main
from lmlab.config import load_toml
from shared_data import SHARED_DATA as DATA  # noqa: E402  (tests/ is on sys.path)


@pytest.fixture()
def corpus(tmp_path) -> tuple[Path, Path]:
    src = DATA / "timemachine" / "timemachine.txt"
    if not src.is_file():
        pytest.skip(f"shared data not found at {src} (set LMLAB_SHARED_DATA)")
    lines = src.read_text().splitlines()
    train, valid = tmp_path / "train.txt", tmp_path / "valid.txt"
    train.write_text("\n".join(lines[:2800]) + "\n")
    valid.write_text("\n".join(lines[2800:]) + "\n")
    return train, valid


def test_build_eval_export_import(corpus, tmp_path, capsys) -> None:
    train, valid = corpus
    run = tmp_path / "kn3"
    assert main(["ngram", "build", "--corpus", str(train), "--order", "3", "--out", str(run)]) == 0
    cfg = load_toml(run / "config.toml")
    assert cfg["model"]["family"] == "ngram" and cfg["model"]["order"] == 3
    assert (run / "model.safetensors").is_file() and (run / "tokenizer.json").is_file()
    capsys.readouterr()
    assert main(["ngram", "eval", "--run", str(run), "--file", str(valid)]) == 0
    first = capsys.readouterr().out
    ppl = float(first.split("perplexity ")[1].split()[0])
    assert 20 < ppl < 2000
    assert main(["ngram", "export-arpa", "--run", str(run)]) == 0
    imported = tmp_path / "imported"
    assert (
        main(
            [
                "ngram",
                "import-arpa",
                str(run / "model.arpa"),
                "--out",
                str(imported),
                "--tokenizer-file",
                str(run / "tokenizer.json"),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["ngram", "eval", "--run", str(imported), "--file", str(valid)]) == 0
    assert f"perplexity {ppl:.2f}" in capsys.readouterr().out


def test_whitespace_tokenizer_and_errors(corpus, tmp_path, capsys) -> None:
    train, _ = corpus
    run = tmp_path / "ws"
    assert (
        main(
            [
                "ngram",
                "build",
                "--corpus",
                str(train),
                "--order",
                "2",
                "--out",
                str(run),
                "--tokenizer",
                "whitespace",
            ]
        )
        == 0
    )
    capsys.readouterr()
    # The same directory again without --overwrite, a bad order, a missing corpus or run.
    assert main(["ngram", "build", "--corpus", str(train), "--out", str(run)]) == 2
    assert (
        main(
            ["ngram", "build", "--corpus", str(train), "--order", "9", "--out", str(tmp_path / "x")]
        )
        == 2
    )
    assert (
        main(
            [
                "ngram",
                "build",
                "--corpus",
                str(tmp_path / "missing.txt"),
                "--out",
                str(tmp_path / "y"),
            ]
        )
        == 2
    )
    assert main(["ngram", "eval", "--run", str(tmp_path / "nope"), "--file", str(train)]) == 2
    bad = tmp_path / "bad.arpa"
    bad.write_text("not an arpa file\n")
    assert main(["ngram", "import-arpa", str(bad), "--out", str(tmp_path / "z")]) == 2
    err = capsys.readouterr().err
    assert err.count("lmlab: error:") == 5 and "Traceback" not in err
