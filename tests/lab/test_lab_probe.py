"""``lmlab lab probe`` on real runs of two families, and the lab reproduction commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lmlab.cli import main
from lmlab.lab.probe import probe_run, text_ids
from lmlab.run import load_run

TINY = ["--steps", "8", "--batch-size", "4", "--context", "32", "--eval-every", "8",
        "--set", "train.eval_batches=2", "--set", "train.sample_tokens=20"]  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("probe_runs")
    corpus = ["--corpus", "builtin:shakespeare-sonnets"]
    out = {"transformer": root / "tf", "rnn": root / "rnn"}
    assert main(["train", "--out", str(out["transformer"]), *corpus, *TINY, "--depth", "1"]) == 0
    rnn = ["--model", "rnn", "--set", "model.embed_dim=8", "--set", "model.hidden_size=16"]
    assert main(["train", "--out", str(out["rnn"]), *corpus, *TINY, *rnn]) == 0
    return out


def test_probe_transformer_run_writes_a_report(runs, tmp_path, capsys) -> None:
    out = tmp_path / "report"
    args = ["lab", "probe", "--run", str(runs["transformer"]), "--windows", "12", "--out", str(out)]
    assert main([*args, "--repeats", "4"]) == 0
    printed = capsys.readouterr().out
    assert "in-context-learning score" in printed and "layer 0 head 0" in printed
    res = json.loads((out / "probe.json").read_text())
    assert res["family"] == "transformer" and res["context"] == 32 and res["n_windows"] == 12
    assert len(res["position_loss"]) == 32 and res["icl"]["late_position"] == 31
    assert np.asarray(res["prefix_matching"]).shape == (1, 1)
    assert res["top_heads"][0]["layer"] == 0
    for png in ("icl.png", "heads.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert "prefix-matching" in (out / "report.md").read_text()


def test_probe_rnn_run_gives_the_icl_score_only(runs, capsys) -> None:
    args = ["lab", "probe", "--run", str(runs["rnn"]), "--windows", "8", "--repeats", "4"]
    assert main([*args, "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["family"] == "rnn" and res["prefix_matching"] is None
    assert any("no attention heads" in n for n in res["notes"])
    assert res["context"] == 32  # the run's training window
    report = runs["rnn"] / "probe"
    assert (report / "icl.png").is_file() and not (report / "heads.png").exists()


def test_probe_library_on_the_trained_run(runs) -> None:
    """8 steps of training make no copying and no induction head; the measurements say so.
    (A model that does copy is probed in test_lab_induction.py.)"""
    run = load_run(runs["transformer"])
    ids, what = text_ids(run)
    assert what == "validation split" and len(ids) > 1000
    res = probe_run(run, ids, what, n_windows=6, n_repeats=3, progress=False)
    assert res.second_copy_loss > 0.9 * res.first_copy_loss
    assert np.asarray(res.prefix_matching).max() < 0.5
    assert res.n_windows == 6 and res.icl.late == 31 and res.icl.early == 3


def test_probe_on_a_corpus_and_bad_inputs(runs, tmp_path) -> None:
    text = tmp_path / "t.txt"
    text.write_text("Shall I compare thee to a summer's day?\n" * 20, encoding="utf-8")
    run = load_run(runs["transformer"])
    ids, what = text_ids(run, [str(text)])
    assert what == str(text) and ids[0] == run.tokenizer.eos_id
    res = probe_run(run, ids, what, context=16, n_windows=4, n_repeats=2, progress=False)
    assert res.context == 16 and len(res.position_loss) == 16 and res.repeat_k == 7

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "lmlab", "lab", *args],
                              capture_output=True, text=True)  # fmt: skip

    for args, message in [
        (["probe", "--run", str(tmp_path / "nope")], "not found"),
        (["probe", "--run", str(runs["transformer"]), "--context", "999"], "exceeds"),
        (["probe", "--run", str(runs["transformer"]), "--corpus", str(tmp_path / "no.txt")], ""),
    ]:
        r = cli(*args)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.startswith("lmlab: error:") and message in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


def test_grok_and_induction_commands(tmp_path, capsys) -> None:
    out = tmp_path / "grok"
    grok = ["lab", "grok", "--out", str(out), "--p", "7", "--steps", "4", "--eval-every", "2",
            "--threads", "1"]  # fmt: skip
    assert main(grok) == 0
    printed = capsys.readouterr().out
    assert "weight decay 1" in printed and "weight decay 0" in printed
    hist = json.loads((out / "history.json").read_text())
    assert [r["weight_decay"] for r in hist["runs"]] == [1.0, 0.0]
    assert main(grok) == 2  # never overwrites silently
    assert "--overwrite" in capsys.readouterr().err
    assert main([*grok, "--overwrite", "--no-control"]) == 0
    assert len(json.loads((out / "history.json").read_text())["runs"]) == 1

    ind = tmp_path / "ind"
    assert main(["lab", "induction", "--out", str(ind), "--layers", "1", "--steps", "3",
                 "--eval-every", "3", "--vocab-size", "16", "--seq-len", "16"]) == 0  # fmt: skip
    assert "1-layer" in capsys.readouterr().out and (ind / "induction.png").is_file()
    assert main(["lab", "induction", "--out", str(tmp_path / "x"), "--vocab-size", "4"]) == 2
