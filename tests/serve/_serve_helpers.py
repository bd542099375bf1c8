"""Helpers shared by the server tests (constants, a word-vectors file, a server factory)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

API_KEY = "test-key-123"
TINY = ["--steps", "6", "--batch-size", "4", "--context", "32", "--eval-every", "1000",
        "--set", "train.eval_batches=1", "--set", "train.sample_tokens=0",
        "--set", "train.log_every=100", "--set", "train.threads=1"]  # fmt: skip
CORPUS = "builtin:shakespeare-sonnets"


def write_vectors(path: Path) -> Path:
    """A small word2vec text file whose geometry is known: king - man + woman = queen."""
    from lmlab.embeddings.vectors import Vectors

    rng = np.random.default_rng(0)
    base = {
        "royal": rng.normal(size=16),
        "male": rng.normal(size=16),
        "female": rng.normal(size=16),
    }
    words = {
        "king": base["royal"] + base["male"],
        "queen": base["royal"] + base["female"],
        "man": base["male"],
        "woman": base["female"],
        "prince": base["royal"] + base["male"] + 0.2 * rng.normal(size=16),
    }
    for i in range(20):
        words[f"noise{i}"] = rng.normal(size=16)
    Vectors(list(words), np.stack(list(words.values())).astype(np.float32)).save(path)
    return path


def make_server(runs: dict[str, Path], **settings):
    from lmlab.serve.app import create_app
    from lmlab.serve.limits import ServeSettings
    from lmlab.serve.registry import load_registry
    from lmlab.serve.server import BackgroundServer

    specs = [f"{k}={v}" for k, v in runs.items()]
    options = {"api_key": API_KEY, "max_tokens": 64, **settings}
    registry = load_registry(specs)
    return BackgroundServer(create_app(registry, ServeSettings(**options))), registry
