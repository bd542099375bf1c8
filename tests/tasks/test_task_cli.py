"""``lmlab task``: train, eval, predict (with explanations) and data, and one-line errors."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from lmlab.cli import main
from shared_data import SHARED_DATA

POS = ["great", "superb", "lovely", "wonderful", "moving"]
NEG = ["awful", "dull", "tedious", "clumsy", "boring"]
FILL = ["the", "film", "plot", "was", "and", "a", "story", "actors", "quite", "long"]


def synthetic(path: Path, n: int, seed: int, header: str = "review,label") -> Path:
    """Sentences of filler words with one sentiment word: learnable in a few steps."""
    import random

    rng = random.Random(seed)
    rows = [header]
    for _ in range(n):
        label = rng.choice(["pos", "neg"])
        words = rng.sample(FILL, 5)
        words.insert(rng.randrange(6), rng.choice(POS if label == "pos" else NEG))
        rows.append(f"{' '.join(words)},{label}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("task")
    train = synthetic(d / "train.csv", 400, seed=1)
    test = synthetic(d / "test.csv", 100, seed=2)
    out = d / "run"
    args = ["task", "train", "classify", "--data", str(train), "--test", str(test),
            "--model", "textcnn", "--embed-dim", "24", "--set", "model.filters=8",
            "--epochs", "6", "--batch-size", "16", "--lr", "0.01", "--threads", "1",
            "--set", "train.n_boot=100", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    return out


def test_train_prints_scores_and_writes_the_run(run_dir: Path, capsys) -> None:
    cfg = (run_dir / "config.toml").read_text(encoding="utf-8")
    assert 'kind = "classify"' in cfg and 'labels = [\n    "neg",\n    "pos",\n]' in cfg
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    assert results["test"]["accuracy"] > 0.9
    card = (run_dir / "card.md").read_text(encoding="utf-8")
    assert "textcnn" in card and "| test | 100 |" in card


def test_eval(run_dir: Path, capsys) -> None:
    assert main(["task", "eval", "--run", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "on train.csv test:" in out and "95% CI" in out and "n = 100" in out
    assert main(["task", "eval", "--run", str(run_dir), "--split", "validation", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["n"] == 40 and rec["labels"] == ["neg", "pos"] and len(rec["macro_f1_ci95"]) == 2
    png = run_dir.parent / "cm.png"
    other = synthetic(run_dir.parent / "other.csv", 30, seed=3)
    assert (
        main(["task", "eval", "--run", str(run_dir), "--data", str(other), "--confusion", str(png)])
        == 0
    )
    assert png.is_file() and "n = 30" in capsys.readouterr().out


def test_predict_and_explain(run_dir: Path, capsys, monkeypatch) -> None:
    assert (
        main(["task", "predict", "--run", str(run_dir), "the film was superb", "a dull story"]) == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("pos ") and lines[1].startswith("neg ")
    assert main(["task", "predict", "--run", str(run_dir), "--json", "--explain",
                 "the plot was quite lovely"]) == 0  # fmt: skip
    rec = json.loads(capsys.readouterr().out)
    assert rec["label"] == "pos" and rec["probability"] > 0.5
    assert sum(rec["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    tokens = rec["explanation"]["tokens"]
    assert [t for t, _ in tokens] == ["the", "plot", "was", "quite", "lovely"]
    assert max(tokens, key=lambda ts: ts[1])[0] == "lovely"  # the word that decides it
    monkeypatch.setattr("sys.stdin", io.StringIO("an awful film\n\nthe actors were boring\n"))
    assert main(["task", "predict", "--run", str(run_dir), "--explain",
                 "--explain-method", "occlusion"]) == 0  # fmt: skip
    captured = capsys.readouterr()
    out = captured.out.splitlines()
    assert out[0].startswith("neg ") and "occlusion for neg: an(" in out[1]
    assert "most for it: awful" in out[2]
    assert "1 empty line skipped" in captured.err


def test_data_lists_builtins(capsys) -> None:
    assert main(["task", "data"]) == 0
    out = capsys.readouterr().out
    for name in ("sst2", "agnews", "chnsenticorp", "waimai", "thucnews"):
        assert f"  {name} " in out
    if (SHARED_DATA / "sst2").is_dir():
        assert main(["task", "data", "sst2"]) == 0
        assert "60,614 train / 6,735 validation / 872 test" in capsys.readouterr().out


def one_line_error(args: list[str], capsys) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lmlab: error: ") and "\n" not in err, err
    return err


def test_bad_input_is_one_line(tmp_path: Path, capsys) -> None:
    data = synthetic(tmp_path / "d.csv", 50, seed=1)
    out = ["--out", str(tmp_path / "r")]
    err = one_line_error(
        ["task", "train", "classify", "--data", str(data), "--text-column", "text", *out], capsys
    )
    assert "no column named 'text' (first row: 'review', 'label')" in err
    one = tmp_path / "one.csv"
    one.write_text("review,label\ngood,pos\nfine,pos\nnice,pos\n", encoding="utf-8")
    err = one_line_error(["task", "train", "classify", "--data", str(one), *out], capsys)
    assert "single class ('pos')" in err
    test = tmp_path / "t.csv"
    test.write_text("review,label\nso so,neutral\n", encoding="utf-8")
    err = one_line_error(
        ["task", "train", "classify", "--data", str(data), "--test", str(test), *out], capsys
    )
    assert "test has label(s) never seen in training: 'neutral' (1 rows)" in err
    err = one_line_error(
        ["task", "train", "classify", "--data", str(data), "--freeze-embeddings", *out], capsys
    )
    assert "--freeze-embeddings needs --vectors" in err
    err = one_line_error(["task", "train", "classify", "--data", "sst3", *out], capsys)
    assert "neither a file nor a built-in data set" in err
    assert not (tmp_path / "r").exists()  # nothing half-written
    err = one_line_error(["task", "eval", "--run", str(tmp_path)], capsys)
    assert "config file" in err and "not found" in err
    err = one_line_error(["task", "predict", "--run", str(tmp_path / "r"), "x"], capsys)
    assert "run directory" in err and "not found" in err


def test_command_line_lists_every_classifier_without_importing_them() -> None:
    import subprocess
    import sys

    from lmlab.tasks import CLASSIFIERS
    from lmlab.tasks.classify.models import FAMILIES

    assert tuple(FAMILIES) == CLASSIFIERS
    code = (
        "import sys, lmlab.cli; lmlab.cli.build_parser(); "
        "print(sorted(m for m in ('torch', 'matplotlib', 'numba') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"  # `lmlab --help` starts without the heavy libraries
