"""Each classifier family learns from a small slice of real data; models and runs behave."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from lmlab.errors import LmlabError
from lmlab.tasks.classify import build_classifier, load_run, train_run
from lmlab.tasks.classify.batches import pad
from lmlab.tasks.rundir import load_task_run
from shared_data import shared_file

SMALL = {
    "bow": {"embed_dim": 32, "hidden": 32},
    "textcnn": {"embed_dim": 32, "filters": 16},
    "bilstm": {"embed_dim": 32, "hidden": 32},
    "bigru": {"embed_dim": 32, "hidden": 32},
}


@pytest.fixture(scope="module")
def agnews_slice(tmp_path_factory) -> dict:
    """1,500 AG News descriptions to train on, 400 others held out (4 classes: chance 25%)."""
    lines = shared_file("agnews", "dev.tsv").read_text(encoding="utf-8").splitlines()
    d = tmp_path_factory.mktemp("agnews")
    (d / "train.tsv").write_text("\n".join(lines[:1500]) + "\n", encoding="utf-8")
    (d / "test.tsv").write_text("\n".join(lines[-400:]) + "\n", encoding="utf-8")
    return {"train": str(d / "train.tsv"), "test": str(d / "test.tsv"), "text_column": 0,
            "label_column": 1}  # fmt: skip


@pytest.mark.parametrize("family", list(SMALL))
def test_family_learns_above_chance(family: str, agnews_slice: dict, tmp_path: Path) -> None:
    rnn = family in ("bilstm", "bigru")
    cfg = {
        "task": {"data": agnews_slice},
        "model": {"family": family, **SMALL[family]},
        "train": {"epochs": 3 if rnn else 4, "batch_size": 32, "lr": 1e-2, "threads": 1,
                  "n_boot": 100, "max_len": 32 if rnn else 40, "patience": 0},
    }  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # texts cut to max_len
        run, reports = train_run(cfg, tmp_path / family, progress=False, log=lambda s: None)
    assert reports["test"].n == 400
    assert reports["test"].accuracy > 0.5, reports["test"].format()  # chance: 0.25
    for name in ("config.toml", "tokenizer.json", "model.safetensors", "metrics.jsonl",
                 "results.json", "confusion.png", "learning_curve.png", "card.md"):  # fmt: skip
        assert (tmp_path / family / name).is_file(), name
    reopened = load_task_run(tmp_path / family)
    texts = ["Stocks fell sharply as oil prices rose.", "The striker scored twice in the final."]
    np.testing.assert_allclose(reopened.predict_proba(texts), run.predict_proba(texts), atol=1e-6)
    # The reopened run scores its own test split as training reported it.
    again = reopened.evaluate(reopened.task_data().test, n_boot=100)
    assert again.accuracy == pytest.approx(reports["test"].accuracy)


@pytest.mark.parametrize("family", list(SMALL))
def test_padding_does_not_change_scores(family: str) -> None:
    torch.manual_seed(0)
    model = build_classifier(family, {"vocab_size": 50, "n_classes": 3, **SMALL[family]}).eval()
    short, long = np.array([3, 4]), np.arange(1, 20)
    with torch.no_grad():
        alone = model(*pad([short], model.pad_id, model.min_length))
        batched = model(*pad([short, long], model.pad_id, model.min_length))
    torch.testing.assert_close(alone[0], batched[0], atol=1e-5, rtol=1e-5)


def test_static_word_vectors(tmp_path: Path) -> None:
    """Vectors from a file initialise the embedding; frozen, they stay as they were."""
    pos = ["great", "superb", "lovely", "wonderful"]
    neg = ["awful", "dull", "bleak", "tedious"]
    rng = np.random.default_rng(0)
    rows = [
        f"{w} " + " ".join(f"{x:.4f}" for x in rng.normal(size=8)) for w in pos + neg + ["film"]
    ]
    vec = tmp_path / "vec.txt"
    vec.write_text(f"{len(rows)} 8\n" + "\n".join(rows) + "\n", encoding="utf-8")
    lines = ["text\tlabel"]
    for i in range(200):
        w = (pos if i % 2 else neg)[(i // 2) % 4]
        lines.append(f"the film was {w} and long\t{'pos' if i % 2 else 'neg'}")
    data = tmp_path / "d.tsv"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = {"task": {"data": {"train": str(data)}, "embeddings": {"path": str(vec), "freeze": True}},
           "model": {"family": "bow", "hidden": 16},
           "train": {"epochs": 10, "batch_size": 16, "lr": 1e-2, "threads": 1, "n_boot": 50,
                     "patience": 0}}  # fmt: skip
    run, reports = train_run(cfg, tmp_path / "run", progress=False, log=lambda s: None)
    emb = run.config["task"]["embeddings"]
    assert emb["freeze"] is True and emb["found"] == 9
    assert run.model.config.embed_dim == 8 and not run.model.embedding.weight.requires_grad
    i = run.tokenizer.encode("superb")[0]
    want = np.array(next(r for r in rows if r.startswith("superb ")).split()[1:], dtype=np.float32)
    np.testing.assert_allclose(run.model.embedding.weight[i].detach().numpy(), want, atol=1e-4)
    assert reports["test"].accuracy > 0.75  # only the vectors of 8 words tell the classes
    assert "word vectors" in (tmp_path / "run" / "card.md").read_text(encoding="utf-8")


def test_results_and_metrics_files(tmp_path: Path) -> None:
    lines = ["text\tlabel"] + [
        f"{'good fine' if i % 2 else 'bad poor'} {i}\t{i % 2}" for i in range(120)
    ]
    data = tmp_path / "d.tsv"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = {"task": {"data": {"train": str(data)}}, "model": {"family": "textcnn", **SMALL["textcnn"]},
           "train": {"epochs": 2, "eval_every": 2, "batch_size": 8, "threads": 1, "n_boot": 50,
                     "patience": 0}}  # fmt: skip
    train_run(cfg, tmp_path / "run", progress=False, log=lambda s: None)
    results = json.loads((tmp_path / "run" / "results.json").read_text(encoding="utf-8"))
    assert set(results) >= {"validation", "test", "train_seconds", "parameters", "best_step"}
    assert results["test"]["labels"] == ["0", "1"] and len(results["test"]["accuracy_ci95"]) == 2
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(2, 25, 2))
    assert {"train_loss", "val_loss", "val_accuracy", "val_macro_f1"} <= set(records[0])
    with pytest.raises(LmlabError, match="already exists"):
        train_run(cfg, tmp_path / "run", progress=False, log=lambda s: None)


def test_bad_model_settings(tmp_path: Path) -> None:
    with pytest.raises(LmlabError, match="unknown config key 'filterz'"):
        build_classifier("textcnn", {"vocab_size": 10, "filterz": 3})
    with pytest.raises(LmlabError, match="model.cell must be"):
        build_classifier("bilstm", {"vocab_size": 10, "cell": "rnn"})
    with pytest.raises(LmlabError, match="unknown classifier 'svm'"):
        build_classifier("svm", {"vocab_size": 10})
    with pytest.raises(LmlabError, match="not a task run"):
        (tmp_path / "x").mkdir()
        (tmp_path / "x" / "config.toml").write_text('[model]\nfamily = "transformer"\n')
        load_run(tmp_path / "x")


def test_character_vectors_for_the_char_tokenizer() -> None:
    from lmlab.embeddings.vectors import Vectors
    from lmlab.tasks.classify.vectors import init_from_vectors
    from lmlab.tokenize import train_tokenizer

    tok = train_tokenizer("char", ["服务很好", "太差了"])
    vectors = Vectors(["好", "差", "无"], np.arange(12, dtype=np.float32).reshape(3, 4))
    model = build_classifier("bow", {"vocab_size": tok.vocab_size, "embed_dim": 4})
    cover = init_from_vectors(model.embedding, tok, vectors, freeze=False)
    assert cover == {"found": 2, "words": 7, "coverage": 2 / 7}  # bytes and specials not counted
    row = model.embedding.weight[tok.encode("差")[0]].detach().numpy()
    np.testing.assert_array_equal(row, [4, 5, 6, 7])
    with pytest.raises(LmlabError, match="word or char tokenizer"):
        init_from_vectors(
            model.embedding, train_tokenizer("bpe", ["a b"] * 5, vocab_size=300), vectors, False
        )


def test_min_words_keeps_only_long_texts(tmp_path: Path) -> None:
    """train.min_words drops short texts from training and validation (counted), never from
    the test split; a threshold that empties a label is an error."""
    lines = ["text\tlabel"] + [
        f"{'good fine' if i % 2 else 'bad poor'}{' very' * (i % 7)} {i}\t{i % 2}"
        for i in range(200)
    ]
    data = tmp_path / "d.tsv"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = {"task": {"data": {"train": str(data)}}, "model": {"family": "bow", **SMALL["bow"]},
           "train": {"epochs": 1, "batch_size": 8, "threads": 1, "n_boot": 20, "patience": 0,
                     "min_words": 6}}  # fmt: skip
    logged: list[str] = []
    train_run(cfg, tmp_path / "run", progress=False, log=logged.append)
    results = json.loads((tmp_path / "run" / "results.json").read_text(encoding="utf-8"))
    kept = [m for m in logged if "have 6+ words" in m]
    assert len(kept) == 2 and kept[0].startswith("train: ")
    n_train = int(kept[0].split()[1].replace(",", ""))
    assert 0 < n_train < int(kept[0].split()[3].replace(",", ""))
    assert results["test"]["n"] > 0
    cfg["train"]["min_words"] = 50
    with pytest.raises(LmlabError, match="min_words=50 leaves a label"):
        train_run(cfg, tmp_path / "run2", progress=False, log=lambda s: None)
