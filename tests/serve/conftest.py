"""Fixtures for the server tests: tiny real runs (trained here in seconds) and a live server.

``serve_runs`` trains a depth-1 character Transformer and a small character LSTM on the
sonnets, builds a 3-gram Kneser-Ney model, and writes a small word-vectors file; ``server``
serves all four on a free loopback port with an API key.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _serve_helpers import (
    API_KEY,
    CORPUS,
    TINY,
    OverlapReader,
    make_server,
    train_sst2_classifier,
    write_vectors,
)

from lmlab.cli import main
from shared_data import shared_file


@pytest.fixture(scope="session")
def serve_runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("serve_runs")
    runs = {"tiny": root / "tiny", "lstm": root / "lstm", "kn": root / "kn"}
    assert main(["train", "--out", str(runs["tiny"]), "--corpus", CORPUS, "--depth", "1", *TINY,
                 "--context", "96"]) == 0  # fmt: skip
    assert main(["train", "--out", str(runs["lstm"]), "--corpus", CORPUS, "--model", "rnn",
                 "--set", "model.embed_dim=16", "--set", "model.hidden_size=32", *TINY]) == 0  # fmt: skip
    corpus = root / "sonnets.txt"
    from lmlab.data.builtin import builtin_files

    corpus.write_text(
        builtin_files("shakespeare-sonnets")[0].read_text(encoding="utf-8")[:30000],
        encoding="utf-8",
    )
    assert main(["ngram", "build", "--corpus", str(corpus), "--order", "3", "--tokenizer", "char",
                 "--out", str(runs["kn"])]) == 0  # fmt: skip
    # the LSTM run carries its own chat template
    (runs["lstm"] / "chat_template.json").write_text(
        json.dumps(
            {
                "user": "Q: {content}\n",
                "assistant": "A: {content}\n",
                "generation_prompt": "A:",
                "stop": ["\nQ:"],
            }
        )  # fmt: skip
    )
    runs["vec"] = write_vectors(root / "words.txt")
    return runs


@pytest.fixture(scope="session")
def server(serve_runs):
    """(base URL, registry) of a live server with the four models."""
    srv, registry = make_server(serve_runs)
    with srv:
        yield srv.url, registry


@pytest.fixture
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=server[0] + "/v1", api_key=API_KEY, max_retries=0, timeout=30)


@pytest.fixture(scope="session")
def classifier_run(tmp_path_factory) -> Path:
    """A small SST-2 sentiment classifier (skips without the shared data)."""
    return train_sst2_classifier(tmp_path_factory.mktemp("classify") / "sst")


@pytest.fixture(scope="session")
def task_server(serve_runs, classifier_run):
    """(base URL, registry) of a live server with a classifier ('sst'), a question answerer
    honouring the QA contract ('reader'), a language model ('tiny') and word vectors ('vec')."""
    from lmlab.serve.registry import ServedModel

    srv, registry = make_server(
        {"sst": classifier_run, "tiny": serve_runs["tiny"], "vec": serve_runs["vec"]},
        max_task_chars=2000,
    )
    registry.models["reader"] = ServedModel("reader", Path("reader"), "qa", task=OverlapReader(),
                                            task_config={"model": {"family": "overlap"}})  # fmt: skip
    with srv:
        yield srv.url, registry


@pytest.fixture(scope="session")
def translator(tmp_path_factory) -> Path:
    """A tiny en->zh translation run on a slice of Tatoeba (skips without the shared data)."""
    pytest.importorskip("sacrebleu")
    cmn = shared_file("translation", "cmn.txt")
    d = tmp_path_factory.mktemp("translate-serve")
    lines = cmn.read_text(encoding="utf-8").splitlines()[::60]
    (d / "slice.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = d / "run"
    args = ["task", "train", "translate", "--data", str(d / "slice.tsv"), "--direction", "en-zh",
            "--vocab-size", "300", "--d-model", "32", "--layers", "1", "--heads", "2",
            "--max-steps", "6", "--eval-every", "6", "--batch-size", "32", "--threads", "1",
            "--train-beam", "2", "--set", "model.d_ff=64", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    return out


@pytest.fixture(scope="session")
def summarizer(tmp_path_factory) -> Path:
    """A tiny Chinese summarisation run on 240 LCSTS pairs (skips without the shared data)."""
    pytest.importorskip("rouge_score")
    src = shared_file("summarization_zh", "lcsts_part2.src.txt").read_text("utf-8").splitlines()
    tgt = shared_file("summarization_zh", "lcsts_part2.tgt.txt").read_text("utf-8").splitlines()
    d = tmp_path_factory.mktemp("summarize-serve")
    rows = [f"{s.strip()}\t{t.strip()}" for s, t in zip(src[:240], tgt[:240], strict=True)]
    (d / "slice.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = d / "run"
    args = ["task", "train", "summarize", "--data", str(d / "slice.tsv"), "--d-model", "32",
            "--layers", "1", "--heads", "2", "--max-steps", "4", "--eval-every", "4",
            "--batch-size", "32", "--threads", "1", "--train-beam", "2", "--valid-rouge", "2",
            "--max-len", "60", "--summary-max-len", "12", "--set", "model.d_ff=64",
            "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    return out
