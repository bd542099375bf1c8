"""``lmlab task train qa`` / ``task eval`` / ``task predict`` end to end on a tiny base, and
one-line errors."""

from __future__ import annotations

import json

import pytest
from qa_synth import synthetic_squad

from lmlab.cli import main
from tiny_hf import save_tiny

pytestmark = pytest.mark.slow  # fine-tunes a tiny model (about 30 s of CPU)


@pytest.fixture(scope="module")
def qa_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("qacli")
    save_tiny("llama", d / "base")
    train, test = synthetic_squad(d / "train.json", 120, 1), synthetic_squad(d / "test.json", 30, 2)
    out = d / "run"
    args = ["task", "train", "qa", "--data", str(train), "--test", str(test), "--base",
            str(d / "base"), "--max-len", "112", "--stride", "16", "--epochs", "2",
            "--batch-size", "8", "--lr", "3e-3", "--head-lr", "3e-3", "--eval-every", "10",
            "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    return d, out


def test_train_eval_predict(qa_run, capsys):
    d, out = qa_run
    cfg = (out / "config.toml").read_text()
    assert 'kind = "qa"' in cfg and "fingerprint" in cfg
    results = json.loads((out / "results.json").read_text())
    assert results["test"]["n"] == 30 and results["test"]["f1"] > 30
    capsys.readouterr()
    assert main(["task", "eval", "--run", str(out), "--json", "--bootstrap", "200"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["n"] == 30 and rep["f1"] == pytest.approx(results["test"]["f1"], abs=1e-6)
    assert rep["f1_ci95"][0] <= rep["f1"] <= rep["f1_ci95"][1]
    preds = d / "preds.json"
    assert main(["task", "eval", "--run", str(out), "--data", str(d / "train.json"),
                 "--qa-limit", "20", "--qa-predictions", str(preds)]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "seeded sample of 20" in text and "F1" in text and "n = 20" in text
    assert len(json.loads(preds.read_text())) == 20
    ctx = d / "ctx.txt"
    ctx.write_text("pack my box the code is zebra. how five dozen", encoding="utf-8")
    assert main(["task", "predict", "--run", str(out), "--question", "What is the code?",
                 "--context-file", str(ctx), "--top", "2", "--json"]) == 0  # fmt: skip
    got = json.loads(capsys.readouterr().out)
    a = got["answers"][0]
    assert ctx.read_text()[a["start"] : a["end"]] == a["text"] and len(got["answers"]) == 2
    assert main(["task", "predict", "--run", str(out), "--question", "What is the code?",
                 "--context", "the code is fox. pack"]) == 0  # fmt: skip
    assert "answer:" in capsys.readouterr().out


def test_one_line_errors(qa_run, tmp_path, capsys):
    d, out = qa_run
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]", encoding="utf-8")
    cases = [
        (
            ["task", "predict", "--run", str(out), "--question", " ", "--context", "x"],
            "no question",
        ),
        (
            ["task", "predict", "--run", str(out), "--question", "Q?", "--context", "  "],
            "context is empty",
        ),
        (["task", "eval", "--run", str(out), "--data", str(bad)], "not SQuAD-format"),
        (["task", "train", "qa", "--data", "nosuch", "--out", str(tmp_path / "r")], "neither"),
        (
            [
                "task",
                "train",
                "qa",
                "--data",
                str(d / "train.json"),
                "--lora-rank",
                "4",
                "--out",
                str(tmp_path / "r"),
            ],
            "need --lora",
        ),  # fmt: skip
    ]
    for args, msg in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err, err
