"""``lmlab task train translate`` + ``task eval`` + ``task predict`` on a slice of Tatoeba
(a few steps: the wiring, files, exit codes and one-line errors, not the quality)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmlab.cli import main
from shared_data import shared_file

pytest.importorskip("sacrebleu")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    cmn = shared_file("translation", "cmn.txt")
    d = tmp_path_factory.mktemp("translate")
    lines = cmn.read_text(encoding="utf-8").splitlines()[::40]  # 712 pairs, all lengths
    (d / "slice.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = d / "run"
    args = ["task", "train", "translate", "--data", str(d / "slice.tsv"), "--direction", "zh-en",
            "--source-column", "1", "--target-column", "0", "--vocab-size", "400",
            "--d-model", "32", "--layers", "1", "--heads", "2", "--max-steps", "20",
            "--eval-every", "10", "--batch-size", "32", "--threads", "1", "--train-beam", "2",
            "--set", "model.d_ff=64", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    return out


def test_train_writes_a_task_run(run_dir: Path, capsys):
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    assert results["direction"] == "zh-en" and results["steps"] == 20
    assert set(results["test"]) == {"greedy", "beam"}
    assert "tok:13a" in results["test"]["beam"]["bleu_signature"]
    card = (run_dir / "card.md").read_text(encoding="utf-8")
    assert "OpenCC" in card and "BLEU signature" in card
    lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(x)["step"] for x in lines] == [10, 20]


def test_eval_reproduces_the_runs_test_scores(run_dir: Path, capsys):
    capsys.readouterr()
    assert main(["task", "eval", "--run", str(run_dir), "--beam", "2", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    want = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))["test"]["beam"]
    assert got["bleu"] == want["bleu"] and got["chrf"] == want["chrf"]
    assert main(["task", "eval", "--run", str(run_dir), "--decode", "greedy", "--limit", "5",
                 "--json"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["n"] == 5


def test_predict_translates_arguments_and_n_best(run_dir: Path, tmp_path, capsys):
    capsys.readouterr()
    assert main(["task", "predict", "--run", str(run_dir), "我們走吧。", "你好", "--json",
                 "--n-best", "2", "--beam", "3"]) == 0  # fmt: skip
    recs = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["source"] for r in recs] == ["我們走吧。", "你好"]
    assert all(len(r["translations"]) == 2 for r in recs)
    png = tmp_path / "attention.png"
    assert (
        main(["task", "predict", "--run", str(run_dir), "我們走吧。", "--attention", str(png)]) == 0
    )
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_one_line_errors(run_dir: Path, tmp_path, capsys):
    wmt = tmp_path / "w.csv"
    wmt.write_text("0,1\n你好,hello\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["task", "eval", "--run", str(run_dir), "--wmt", str(tmp_path / "no.csv")]) == 2
    assert "not found" in capsys.readouterr().err
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("x\ny\n", encoding="utf-8")
    b.write_text("x\n", encoding="utf-8")
    code = main(["task", "train", "translate", "--data", str(a), "--target-data", str(b),
                 "--direction", "en-fr", "--out", str(tmp_path / "r")])  # fmt: skip
    assert code == 2 and "aligned" in capsys.readouterr().err
    assert main(["task", "train", "translate", "--data", "tatoeba", "--direction", "zh-en",
                 "--model", "rnn", "--d-model", "64", "--out", str(tmp_path / "r")]) == 2  # fmt: skip
    assert "transformer options" in capsys.readouterr().err


def test_translate_command_reads_a_file_and_refuses_other_runs(run_dir: Path, tmp_path, capsys):
    """``lmlab translate`` is task predict for translation runs: one line out per line in,
    the same translations; any other run is a one-line error."""
    src = tmp_path / "src.txt"
    src.write_text("我們走吧。\n\n你好\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["translate", "--run", str(run_dir), "--file", str(src), "--decode", "greedy"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2  # one line out per non-empty line in (a tiny model may say nothing)
    assert main(["task", "predict", "--run", str(run_dir), "我們走吧。", "你好",
                 "--decode", "greedy"]) == 0  # fmt: skip
    assert capsys.readouterr().out.splitlines() == lines
    other = tmp_path / "cls"
    other.mkdir()
    (other / "config.toml").write_text('[task]\nkind = "classify"\n', encoding="utf-8")
    assert main(["translate", "--run", str(other), "x"]) == 2
    assert "not a translation run" in capsys.readouterr().err


def test_no_repeat_ngram_reaches_the_decoder(run_dir: Path, tmp_path, capsys):
    """``--no-repeat-ngram`` in ``lmlab translate``, ``task predict`` and ``task eval``
    gives the API's ``no_repeat_ngram`` outputs (which differ from the unbanned ones: the
    20-step model repeats itself); a negative N is a one-line error."""
    from lmlab.tasks.rundir import load_task_run

    run = load_task_run(run_dir)
    texts = ["我們走吧。", "你好", "我不知道他在哪裡。"]
    want = [h[0][0] for h in run.translate(texts, "greedy", no_repeat_ngram=1)]
    assert want != [h[0][0] for h in run.translate(texts, "greedy")]  # 20 steps: it repeats
    capsys.readouterr()
    for verb in (["translate"], ["task", "predict"]):
        assert main([*verb, "--run", str(run_dir), *texts, "--decode", "greedy", "--json",
                     "--no-repeat-ngram", "1"]) == 0  # fmt: skip
        recs = [json.loads(x) for x in capsys.readouterr().out.strip().split("\n")]
        assert [r["translations"][0]["text"] for r in recs] == want
    hyp = tmp_path / "hyp.txt"
    assert main(["task", "eval", "--run", str(run_dir), "--decode", "greedy", "--limit", "5",
                 "--no-repeat-ngram", "1", "--hyp-out", str(hyp), "--json"]) == 0  # fmt: skip
    sources = run.task_data().split("test").grouped()[0][:5]
    banned = [h[0][0] for h in run.translate(sources, "greedy", no_repeat_ngram=1)]
    assert hyp.read_text(encoding="utf-8").split("\n")[:-1] == banned  # (not splitlines: a
    # barely trained byte-level model writes control characters that it would split on)
    capsys.readouterr()
    assert main(["translate", "--run", str(run_dir), "x", "--no-repeat-ngram", "-1"]) == 2
    assert "--no-repeat-ngram must be 0" in capsys.readouterr().err
