"""Resuming continues exactly; interruptions leave a resumable checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lmlab.errors import LmlabError
from lmlab.train.runner import run_training


def config(corpus: Path, **train) -> dict:
    return {
        "data": {"corpus": [str(corpus)]},
        "tokenizer": {"kind": "char"},
        "model": {
            "family": "transformer",
            "n_layer": 2,
            "n_head": 2,
            "d_model": 32,
            "dropout": 0.1,
        },
        "train": {
            "steps": 30,
            "batch_size": 8,
            "context": 32,
            "warmup": 5,
            "eval_every": 10,
            "checkpoint_every": 10,
            "log_every": 5,
            "eval_batches": 2,
            "sample_tokens": 0,
            **train,
        },
    }


def losses(run: Path) -> dict[int, float]:
    out = {}
    for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        if "loss" in r:
            out[r["step"]] = r["loss"]
    return out


def test_interrupted_and_resumed_run_matches_uninterrupted(tmp_path, tiny_corpus) -> None:
    run_training(config(tiny_corpus), tmp_path / "a", quiet=True)
    _, res = run_training(
        config(tiny_corpus), tmp_path / "b", quiet=True, should_stop=lambda s: s == 15
    )
    assert res.interrupted and res.step == 15
    _, res = run_training({}, tmp_path / "b", resume=True, quiet=True)
    assert res.step == 30 and not res.interrupted
    a, b = losses(tmp_path / "a"), losses(tmp_path / "b")
    assert sorted(a) == sorted(b)
    for step in (20, 25, 30):
        assert a[step] == pytest.approx(b[step], abs=1e-6), step
    assert a[30] < a[5]  # and it learned something


def test_existing_run_is_never_overwritten(tmp_path, tiny_corpus) -> None:
    run_training(config(tiny_corpus, steps=5), tmp_path / "r", quiet=True)
    before = (tmp_path / "r" / "model.safetensors").read_bytes()
    with pytest.raises(LmlabError, match="already exists"):
        run_training(config(tiny_corpus, steps=5), tmp_path / "r", quiet=True)
    assert (tmp_path / "r" / "model.safetensors").read_bytes() == before


def test_half_written_checkpoint_is_detected(tmp_path, tiny_corpus) -> None:
    run_training(config(tiny_corpus), tmp_path / "r", quiet=True, should_stop=lambda s: s == 10)
    state = json.loads((tmp_path / "r" / "trainer_state.json").read_text())
    state["step"] = 20  # as if the state file were newer than the weights
    (tmp_path / "r" / "trainer_state.json").write_text(json.dumps(state))
    with pytest.raises(LmlabError, match="interrupted"):
        run_training({}, tmp_path / "r", resume=True, quiet=True)


@pytest.mark.slow
def test_sigterm_leaves_resumable_checkpoint(tmp_path, tiny_corpus) -> None:
    run = tmp_path / "r"
    cmd = [
        sys.executable,
        "-m",
        "lmlab",
        "train",
        "--out",
        str(run),
        "--corpus",
        str(tiny_corpus),
        "--steps",
        "100000",
        "--batch-size",
        "4",
        "--context",
        "16",
        "--set",
        "model.depth=1",
        "--set",
        "train.sample_tokens=0",
        "--set",
        "train.log_every=1",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        m = run / "metrics.jsonl"
        if m.is_file() and len(m.read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "--resume" in out and "Traceback" not in err
    step = json.loads((run / "trainer_state.json").read_text())["step"]
    assert step >= 3
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "lmlab",
            "train",
            "--out",
            str(run),
            "--resume",
            "--steps",
            str(step + 2),
        ],
        capture_output=True,
        text=True,
        env=os.environ,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert (run / "card.md").is_file()
