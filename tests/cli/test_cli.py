"""End-to-end: the lmlab command on real text, and one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lmlab.cli import main

TINY = [
    "--steps",
    "8",
    "--batch-size",
    "4",
    "--context",
    "32",
    "--eval-every",
    "4",
    "--set",
    "model.depth=1",
    "--set",
    "train.eval_batches=2",
    "--set",
    "train.sample_tokens=20",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "sonnets"
    assert main(["train", "--out", str(run), "--corpus", "builtin:shakespeare-sonnets", *TINY]) == 0
    return run


def test_train_writes_a_complete_run(trained: Path) -> None:
    for name in (
        "config.toml",
        "tokenizer.json",
        "model.safetensors",
        "optimizer.safetensors",
        "metrics.jsonl",
        "loss.png",
        "samples.txt",
        "card.md",
    ):
        assert (trained / name).is_file(), name
    card = (trained / "card.md").read_text(encoding="utf-8")
    assert "parameters" in card and "torch" in card and "seed: 1337" in card
    assert (trained / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_generate_eval_info(trained: Path, capsys) -> None:
    assert (
        main(
            [
                "generate",
                "--run",
                str(trained),
                "--prompt",
                "Shall I",
                "--max-new-tokens",
                "20",
                "--seed",
                "1",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.startswith("Shall I") and len(out) > len("Shall I")
    assert main(["eval", "--run", str(trained), "--json"]) == 0
    score = json.loads(capsys.readouterr().out)
    assert score["tokens"] > 1000 and 1 < score["ppl"] < 400 and score["bpb"] > 0
    assert main(["info", "--run", str(trained)]) == 0
    assert "transformer model" in capsys.readouterr().out


def test_resume_extends_a_finished_run(trained: Path, tmp_path) -> None:
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(trained, run)
    assert main(["train", "--out", str(run), "--resume", "--steps", "10"]) == 0
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 10


def test_word_and_chinese_training(tmp_path) -> None:
    zh = tmp_path / "zh.txt"
    zh.write_text(
        "天地玄黄，宇宙洪荒。日月盈昃，辰宿列张。寒来暑往，秋收冬藏。\n" * 60, encoding="utf-8"
    )
    assert (
        main(
            [
                "train",
                "--out",
                str(tmp_path / "zh"),
                "--corpus",
                str(zh),
                "--tokenizer",
                "word",
                "--model",
                "rnn",
                *TINY[:-4],
            ]
        )
        == 0
    )
    tok = json.loads((tmp_path / "zh" / "tokenizer.json").read_text(encoding="utf-8"))
    assert "宇宙" in tok["words"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lmlab", *args], capture_output=True, text=True, timeout=300
    )


def assert_one_line_error(res: subprocess.CompletedProcess, pattern: str) -> None:
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("lmlab: error:"), res.stderr
    assert pattern in lines[0], lines[0]


def test_bad_inputs_give_one_line_errors(tmp_path, trained: Path) -> None:
    gbk = tmp_path / "gbk.txt"
    gbk.write_bytes("你好，世界".encode("gbk"))
    empty = tmp_path / "empty.txt"
    empty.write_text("   ", encoding="utf-8")
    out = str(tmp_path / "r")
    assert_one_line_error(
        run_cli("train", "--out", out, "--corpus", str(tmp_path / "missing.txt")), "not found"
    )
    assert_one_line_error(run_cli("train", "--out", out, "--corpus", str(gbk)), "byte offset 0")
    assert_one_line_error(run_cli("train", "--out", out, "--corpus", str(empty)), "empty")
    assert_one_line_error(
        run_cli("train", "--out", out, "--corpus", str(gbk), "--set", "train.stepz=3"),
        "unknown config key 'stepz'",
    )
    assert_one_line_error(
        run_cli("train", "--out", out, "--corpus", str(gbk), "--set", "train.steps=many"),
        "must be int",
    )
    assert_one_line_error(
        run_cli("train", "--out", str(trained), "--corpus", str(gbk)), "--overwrite"
    )
    assert_one_line_error(run_cli("generate", "--run", str(tmp_path / "nope")), "not found")
    assert_one_line_error(
        run_cli("train", "--out", out, "--corpus", str(gbk), "--set", "model.n_layers=2"),
        "unknown config key 'n_layers' in [model]",
    )


def test_corrupt_checkpoint_is_reported_and_left_alone(tmp_path, trained: Path) -> None:
    import shutil

    run = tmp_path / "corrupt"
    shutil.copytree(trained, run)
    weights = run / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    before = weights.read_bytes()
    assert_one_line_error(run_cli("generate", "--run", str(run)), "corrupt or truncated")
    assert_one_line_error(run_cli("train", "--out", str(run), "--resume"), "corrupt or truncated")
    assert weights.read_bytes() == before


def test_data_prepare_and_train_from_it(tmp_path, tiny_corpus, capsys) -> None:
    ds = tmp_path / "ds"
    assert (
        main(
            [
                "data",
                "prepare",
                str(tiny_corpus),
                "--tokenizer",
                "bpe",
                "--vocab-size",
                "400",
                "--out",
                str(ds),
            ]
        )
        == 0
    )
    assert "train on it" in capsys.readouterr().out
    assert main(["train", "--data", str(ds), "--out", str(tmp_path / "r"), *TINY]) == 0
    assert main(["data", "list"]) == 0
    assert "shakespeare" in capsys.readouterr().out


def test_data_prepare_from_url(tmp_path, local_http, capsys) -> None:
    import hashlib

    base, www = local_http
    body = ("It was the best of times, it was the worst of times.\n" * 200).encode()
    (www / "dickens.txt").write_bytes(body)
    url = f"{base}/dickens.txt"
    out = tmp_path / "ds"
    sha = hashlib.sha256(body).hexdigest()
    assert main(["data", "prepare", "--url", url, "--sha256", sha, "--out", str(out)]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["train_tokens"] + meta["val_tokens"] == len(body)
    assert (
        main(
            ["data", "prepare", "--url", url, "--sha256", "1" * 64, "--out", str(tmp_path / "bad")]
        )
        == 2
    )
    assert "expected" in capsys.readouterr().err
