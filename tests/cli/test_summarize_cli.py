"""``lmlab task train summarize`` + ``task eval`` + ``task predict`` + ``lmlab summarize`` on
a tiny LCSTS slice (a few steps: the wiring, files, exit codes and one-line errors, not the
quality)."""

from __future__ import annotations

import io
import json
from itertools import pairwise
from pathlib import Path

import pytest

from lmlab.cli import main
from shared_data import shared_file

pytest.importorskip("rouge_score")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    src = shared_file("summarization_zh", "lcsts_part2.src.txt").read_text("utf-8").splitlines()
    tgt = shared_file("summarization_zh", "lcsts_part2.tgt.txt").read_text("utf-8").splitlines()
    d = tmp_path_factory.mktemp("summarize_cli")
    rows = [f"{s.strip()}\t{t.strip()}" for s, t in zip(src[:240], tgt[:240], strict=True)]
    (d / "slice.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = d / "run"
    args = ["task", "train", "summarize", "--data", str(d / "slice.tsv"), "--d-model", "32",
            "--layers", "1", "--heads", "2", "--max-steps", "10", "--eval-every", "5",
            "--batch-size", "32", "--threads", "1", "--train-beam", "2", "--valid-rouge", "4",
            "--max-len", "120", "--summary-max-len", "24", "--set", "model.d_ff=64",
            "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    return out


def test_train_writes_a_summarisation_run(run_dir: Path):
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    assert results["lang"] == "zh" and results["steps"] == 10
    assert set(results["test"]["beam"]) >= {"rouge1", "rouge2", "rougeL"}
    card = (run_dir / "card.md").read_text(encoding="utf-8")
    assert "Chinese on characters" in card and "ROUGE-L" in card
    recs = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text("utf-8").splitlines()]
    assert [r["step"] for r in recs] == [5, 10] and all("rougeL" in r for r in recs)


def test_eval_reproduces_the_runs_test_scores(run_dir: Path, capsys):
    capsys.readouterr()
    assert main(["task", "eval", "--run", str(run_dir), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    want = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))["test"]["beam"]
    assert {k: got[k] for k in ("rouge1", "rouge2", "rougeL")} == {
        k: want[k] for k in ("rouge1", "rouge2", "rougeL")
    }
    assert main(["task", "eval", "--run", str(run_dir), "--decode", "greedy", "--limit", "3",
                 "--json"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["n"] == 3


def test_predict_and_summarize_agree(run_dir: Path, tmp_path, capsys):
    texts = ["今天北京天气很好，很多市民去公园游玩。", "央行宣布下调存款准备金率0.5个百分点。"]
    capsys.readouterr()
    assert main(["task", "predict", "--run", str(run_dir), *texts, "--json"]) == 0
    recs = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in recs] == texts
    assert main(["summarize", "--run", str(run_dir), *texts]) == 0
    assert capsys.readouterr().out.splitlines() == [r["summary"] for r in recs]
    f = tmp_path / "texts.txt"
    f.write_text("\n".join(texts) + "\n", encoding="utf-8")
    assert main(["summarize", "--run", str(run_dir), "--file", str(f), "--beam", "2"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_no_repeat_ngram_summaries_repeat_no_bigram(run_dir: Path, capsys):
    texts = ["今天北京天气很好，很多市民去公园游玩。", "央行宣布下调存款准备金率0.5个百分点。"]
    capsys.readouterr()
    assert main(["summarize", "--run", str(run_dir), *texts, "--no-repeat-ngram", "2"]) == 0
    for line in capsys.readouterr().out.splitlines():
        pairs = list(pairwise(line))  # characters are the tokens here
        assert len(set(pairs)) == len(pairs), line
    assert main(["summarize", "--run", str(run_dir), texts[0], "--no-repeat-ngram", "-1"]) == 2
    assert "--no-repeat-ngram must be 0" in capsys.readouterr().err


def test_summarize_reads_stdin_with_a_progress_bar(run_dir: Path, monkeypatch, capsys):
    lines = [f"第{i}条新闻：今天的天气很好，市民出门游玩。" for i in range(25)]
    stdin = io.TextIOWrapper(io.BytesIO(("\n".join(lines) + "\n\n").encode("utf-8")))
    monkeypatch.setattr("sys.stdin", stdin)
    capsys.readouterr()
    assert main(["summarize", "--run", str(run_dir), "--decode", "greedy", "--json"]) == 0
    captured = capsys.readouterr()
    assert [json.loads(x)["text"] for x in captured.out.splitlines()] == lines
    assert "summarize (greedy)" in captured.err  # the progress bar, on stderr
    assert "1 empty line skipped" in captured.err


def test_bad_input_is_one_line_and_exit_2(run_dir: Path, tmp_path, monkeypatch, capsys):
    capsys.readouterr()
    assert main(["summarize", "--run", str(run_dir), "--file", str(tmp_path / "no.txt")]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00bad")
    assert main(["summarize", "--run", str(run_dir), "--file", str(tmp_path / "bin.txt")]) == 2
    assert "not UTF-8" in capsys.readouterr().err
    (tmp_path / "empty.txt").write_text("\n  \n", encoding="utf-8")
    assert main(["summarize", "--run", str(run_dir), "--file", str(tmp_path / "empty.txt")]) == 2
    assert "input is empty" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"\xc3\x28")))
    assert main(["summarize", "--run", str(run_dir)]) == 2
    assert "standard input is not UTF-8" in capsys.readouterr().err
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.toml").write_text('[task]\nkind = "translate"\n', encoding="utf-8")
    assert main(["summarize", "--run", str(other), "hello"]) == 2
    assert "is a translate run" in capsys.readouterr().err
    assert main(["summarize", "--run", str(tmp_path / "nothing"), "hello"]) == 2
    assert capsys.readouterr().err.startswith("lmlab: error:")
