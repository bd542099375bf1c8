"""No silent NaN: training stops with a clear message when the loss stops being finite (the
last good checkpoint is kept), metrics.jsonl stays valid JSON, loading refuses NaN weights,
and sampling refuses a NaN temperature."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from lmlab.errors import LmlabError
from lmlab.train.runner import run_training


def config(corpus: Path, **train) -> dict:
    return {
        "data": {"corpus": [str(corpus)]},
        "tokenizer": {"kind": "char"},
        "model": {"family": "transformer", "n_layer": 1, "n_head": 2, "d_model": 32},
        "train": {"steps": 6, "batch_size": 4, "context": 32, "eval_every": 2,
                  "checkpoint_every": 2, "log_every": 1, "eval_batches": 1, "sample_tokens": 0,
                  "threads": 1, **train},
    }  # fmt: skip


def _poison(model) -> None:
    with torch.no_grad():
        next(iter(model.parameters())).view(-1)[0] = float("nan")


def _records(run: Path) -> list[dict]:
    # json.loads accepts bare NaN; a strict reader (the JSON standard) does not
    def strict(x):
        raise ValueError(f"not JSON: {x}")

    lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(ln, parse_constant=strict) for ln in lines]


def test_nan_loss_stops_training_before_anything_is_saved(tmp_path, tiny_corpus) -> None:
    run = tmp_path / "nan"
    with pytest.raises(
        LmlabError, match=r"training diverged: the loss became nan at step 1.*no checkpoint"
    ):
        run_training(config(tiny_corpus), run, quiet=True, init_model=lambda m, t: _poison(m))
    assert not (run / "model.safetensors").exists() and not (run / "card.md").exists()
    assert not (run / "metrics.jsonl").exists()  # step 1 never logged its NaN


def test_divergence_keeps_the_last_good_checkpoint(tmp_path, tiny_corpus) -> None:
    from lmlab.run import load_run

    holder = {}

    def init(model, tok):
        holder["model"] = model

    def poison_after_step_3(step: int) -> bool:
        if step == 3:
            _poison(holder["model"])
        return False

    run = tmp_path / "late"
    with pytest.raises(LmlabError, match=r"the loss became nan at step 4.*checkpoint of step 2"):
        run_training(config(tiny_corpus), run, quiet=True, init_model=init,
                     should_stop=poison_after_step_3)  # fmt: skip
    with safe_open(str(run / "model.safetensors"), framework="pt") as f:
        assert f.metadata()["step"] == "2"
    assert load_run(run).model is not None  # the kept checkpoint is sound
    assert max(r["step"] for r in _records(run)) == 3


def test_metrics_jsonl_writes_null_for_non_finite_values(tmp_path) -> None:
    from lmlab.train.loop import _append_jsonl

    path = tmp_path / "metrics.jsonl"
    _append_jsonl(path, {"step": 1, "val_loss": float("nan"), "val_ppl": float("inf"), "x": 2.5})
    assert json.loads(path.read_text()) == {"step": 1, "val_loss": None, "val_ppl": None, "x": 2.5}


@pytest.fixture
def good_run(tmp_path, tiny_corpus) -> Path:
    run = tmp_path / "good"
    run_training(config(tiny_corpus, steps=2), run, quiet=True)
    return run


def test_loading_refuses_nan_weights(good_run) -> None:
    from lmlab.run import load_run

    path = good_run / "model.safetensors"
    tensors = load_file(str(path))
    name = next(k for k, v in tensors.items() if v.is_floating_point())
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[3] = float("nan")
    save_file(tensors, str(path))
    with pytest.raises(LmlabError, match=rf"NaN or infinite values in '{name}'"):
        load_run(good_run)
    cli = subprocess.run([sys.executable, "-m", "lmlab", "generate", "--run", str(good_run)],
                         capture_output=True, text=True)  # fmt: skip
    assert cli.returncode == 2 and "Traceback" not in cli.stderr
    assert "NaN or infinite" in cli.stderr


@pytest.mark.parametrize("flag", ["--temperature", "--top-p", "--min-p", "--repetition-penalty"])
def test_generate_rejects_a_nan_sampling_setting(good_run, flag) -> None:
    cli = subprocess.run([sys.executable, "-m", "lmlab", "generate", "--run", str(good_run), flag,
                          "nan"], capture_output=True, text=True)  # fmt: skip
    assert cli.returncode == 2 and "must be a finite number" in cli.stderr, cli.stderr
    assert "Traceback" not in cli.stderr


def test_check_finite_allows_minus_inf_and_overflowing_sums_only() -> None:
    import torch

    from lmlab.run import check_finite

    big = torch.full((10,), 3e38)  # finite values whose sum overflows to +inf
    logp = torch.tensor([-1.0, float("-inf")])  # an impossible event in a probability table
    check_finite({"big": big, "logp": logp, "ids": torch.arange(3)}, "x")
    for bad in (float("nan"), float("inf")):
        t = torch.zeros(5)
        t[2] = bad
        with pytest.raises(LmlabError, match="NaN or infinite values in 'w'"):
            check_finite({"w": t}, "x")
    mixed = torch.tensor([float("inf"), float("-inf")])  # sums to NaN; holds +inf
    with pytest.raises(LmlabError):
        check_finite({"w": mixed}, "x")
