"""A tiny char-level teacher, trained once for the distillation tests (a few seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lmlab.cli import main

CORPUS = "builtin:shakespeare-sonnets"


@pytest.fixture(autouse=True)
def _keep_threads():
    n = torch.get_num_threads()  # --threads 1 (fast on a busy machine) must not leak
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def teacher_dir(tmp_path_factory) -> Path:
    """A 2-layer char-level Transformer run (context 32) trained for 150 steps."""
    d = tmp_path_factory.mktemp("distill_teacher")
    n = torch.get_num_threads()
    rc = main(["train", "--corpus", CORPUS, "--out", str(d / "teacher"), "--depth", "2",
               "--steps", "150", "--batch-size", "16", "--context", "32", "--lr", "3e-3",
               "--eval-every", "1000", "--set", "train.warmup=10", "--set",
               "train.sample_tokens=0", "--set", "train.threads=1"])  # fmt: skip
    torch.set_num_threads(n)
    assert rc == 0
    return d / "teacher"
