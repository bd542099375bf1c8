"""Two data-parallel processes (torchrun, gloo) follow the same losses as one process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def train_cmd(run, corpus) -> list[str]:
    return [
        "-m",
        "lmlab",
        "train",
        "--out",
        str(run),
        "--corpus",
        str(corpus),
        "--steps",
        "12",
        "--batch-size",
        "8",
        "--context",
        "32",
        "--eval-every",
        "6",
        "--set",
        "model.depth=1",
        "--set",
        "train.log_every=2",
        "--set",
        "train.sample_tokens=0",
        "--set",
        "train.eval_batches=2",
        "--set",
        "train.threads=1",
        "--device",
        "cpu",  # gloo, also on a machine with GPUs (tests/train/test_cuda.py covers NCCL)
    ]


def losses(run) -> list[float]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


@pytest.mark.slow
def test_two_processes_match_one(tmp_path, tiny_corpus) -> None:
    one = subprocess.run(
        [sys.executable, *train_cmd(tmp_path / "one", tiny_corpus)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            *train_cmd(tmp_path / "two", tiny_corpus),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert two.returncode == 0, two.stderr[-2000:]
    a, b = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(a) == len(b) == 6
    assert a == pytest.approx(b, rel=1e-4)
