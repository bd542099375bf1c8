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


class OverlapReader:
    """A small question answerer that honours the QA run's contract (``kind == "qa"``,
    ``answer(question, context, top) -> [{text, start, end, score}]``): the context's
    sentences ranked by the share of the question's words they contain (the classic
    sliding-window lexical-overlap baseline, one sentence per window)."""

    kind = "qa"

    def answer(self, question: str, context: str, top: int = 1) -> list[dict]:
        import re

        words = {w.lower() for w in re.findall(r"\w+", question)}
        spans = [(m.start(), m.end()) for m in re.finditer(r"[^.!?]+[.!?]?", context)]
        scored = []
        for start, end in spans:
            while start < end and context[start].isspace():
                start += 1
            found = {w.lower() for w in re.findall(r"\w+", context[start:end])}
            scored.append((len(words & found) / max(1, len(words)), start, end))
        scored.sort(key=lambda s: (-s[0], s[1]))
        return [{"text": context[s:e], "start": s, "end": e, "score": sc}
                for sc, s, e in scored[:top]]  # fmt: skip


def train_sst2_classifier(out: Path) -> Path:
    """A bag-of-embeddings sentiment classifier trained in seconds on 3,000 SST-2 phrases."""
    import warnings

    from lmlab.tasks.classify.run import train_run
    from shared_data import shared_file

    lines = shared_file("sst2", "train.tsv").read_text(encoding="utf-8").splitlines()
    data = out.parent / "sst2_slice.tsv"
    data.write_text("\n".join(lines[:3001]) + "\n", encoding="utf-8")
    cfg = {"task": {"data": {"train": str(data)}},
           "model": {"family": "bow", "embed_dim": 32, "hidden": 32},
           "train": {"epochs": 3, "batch_size": 32, "lr": 1e-2, "threads": 1, "n_boot": 20,
                     "max_len": 24, "patience": 0}}  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # texts cut to max_len
        train_run(cfg, out, progress=False, log=lambda s: None)
    return out
