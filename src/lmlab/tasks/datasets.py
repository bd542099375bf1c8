"""Data for a task run: the built-in data sets with their fixed splits, or your own files.

A *data spec* (stored in ``[task.data]`` of the run's ``config.toml``) says where the data
comes from, and with the split seed it rebuilds exactly the same splits:

* ``{"builtin": "sst2"}``: one of :data:`BUILTINS`, read in place from the shared data folder
  (``$LMLAB_SHARED_DATA``, else ``../shared/data`` beside the checkout);
* ``{"train": FILE, "validation": FILE?, "test": FILE?, "text_column": ..., "label_column":
  ..., "format": ...}``: your files. Without a validation file, 10% of the training file
  (stratified) is held out for model selection; without a test file too, 80/10/10.

The built-in splits (seed 1 unless ``--split-seed``):

========== =================================================== ===========================
name        train / validation                                  test (the reported score)
========== =================================================== ===========================
sst2        ``train.tsv`` / ``dev.tsv`` (GLUE train phrases)    ``test.tsv`` (GLUE dev)
agnews      ``dev.tsv`` 90/10 stratified                        ``test.tsv``
chnsenticorp ``ChnSentiCorp_htl_all.csv`` 80/10 stratified      the remaining 10%
waimai      ``waimai_10k.csv`` 80/10 stratified                 the remaining 10%
thucnews    ``dev.txt`` 90/10 stratified                        ``test.txt``
========== =================================================== ===========================
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmlab.errors import LmlabError
from lmlab.tasks.data import Examples, label_order, language_of, read_examples
from lmlab.tasks.splits import check_labels, stratified_split

DEFAULT_SPLIT_SEED = 1
SPLITS = ("train", "validation", "test")


@dataclass
class TaskData:
    """Train / validation / test examples, the label names (class ids are their positions)."""

    name: str
    train: Examples
    validation: Examples
    test: Examples | None
    labels: list[str]
    language: str
    spec: dict[str, Any]
    seed: int

    def split(self, name: str) -> Examples:
        if name not in SPLITS:
            raise LmlabError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")
        part = getattr(self, name)
        if part is None:
            raise LmlabError(f"{self.name} has no {name} split; use --split validation")
        return part

    def ids(self, part: Examples) -> list[int]:
        index = {n: i for i, n in enumerate(self.labels)}
        return [index[lab] for lab in part.labels]

    def sizes(self) -> str:
        t = len(self.test) if self.test is not None else 0
        return f"{len(self.train):,} train / {len(self.validation):,} validation / {t:,} test"


def data_root() -> Path:
    env = os.environ.get("LMLAB_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[3].parent / "shared" / "data"


def _file(*parts: str) -> Path:
    p = data_root().joinpath(*parts)
    if not p.is_file():
        raise LmlabError(
            f"built-in data file {p} not found; set LMLAB_SHARED_DATA to the shared data folder"
        )
    return p


def _held_out(ex: Examples, fractions: list[float], seed: int) -> list[Examples]:
    return [ex.subset(i) for i in stratified_split(ex.labels, fractions, seed)]


SENTIMENT = {"0": "negative", "1": "positive"}
AGNEWS = ["World", "Sports", "Business", "Sci/Tech"]


def _sst2(seed: int):
    read = lambda f: read_examples(_file("sst2", f), "sentence", "label", "tsv", SENTIMENT)  # noqa: E731
    return read("train.tsv"), read("dev.tsv"), read("test.tsv"), ["negative", "positive"]


def _agnews(seed: int):
    amap = {n: n for n in AGNEWS}
    dev = read_examples(_file("agnews", "dev.tsv"), 0, 1, "tsv", amap)
    train, val = _held_out(dev, [0.9, 0.1], seed)
    return train, val, read_examples(_file("agnews", "test.tsv"), 0, 1, "tsv", amap), AGNEWS


def _zh_sentiment(file: str):
    def load(seed: int):
        ex = read_examples(_file("sentiment_zh", file), "review", "label", "csv", SENTIMENT)
        return (*_held_out(ex, [0.8, 0.1, 0.1], seed), ["negative", "positive"])

    return load


def _thucnews(seed: int):
    names = _file("thucnews_titles", "class.txt").read_text(encoding="utf-8").split()
    tmap = {str(i): n for i, n in enumerate(names)}
    dev = read_examples(_file("thucnews_titles", "dev.txt"), 0, 1, "tsv", tmap)
    train, val = _held_out(dev, [0.9, 0.1], seed)
    test = read_examples(_file("thucnews_titles", "test.txt"), 0, 1, "tsv", tmap)
    return train, val, test, names


@dataclass(frozen=True)
class Builtin:
    name: str
    language: str
    description: str
    split: str  # how the splits are made, in words
    load: Callable[[int], tuple[Examples, Examples, Examples | None, list[str]]]


BUILTINS: dict[str, Builtin] = {
    b.name: b
    for b in [
        Builtin("sst2", "en", "SST-2 movie-review sentiment (GLUE), 2 classes",
                "train.tsv / dev.tsv / test.tsv (= GLUE dev)", _sst2),
        Builtin("agnews", "en", "AG News topics (descriptions only), 4 classes",
                "dev.tsv 90/10 stratified; test.tsv", _agnews),
        Builtin("chnsenticorp", "zh", "ChnSentiCorp hotel-review sentiment, 2 classes",
                "stratified 80/10/10", _zh_sentiment("ChnSentiCorp_htl_all.csv")),
        Builtin("waimai", "zh", "waimai_10k food-delivery review sentiment, 2 classes",
                "stratified 80/10/10", _zh_sentiment("waimai_10k.csv")),
        Builtin("thucnews", "zh", "THUCNews news titles, 10 topics",
                "dev.txt 90/10 stratified; test.txt", _thucnews),
    ]
}  # fmt: skip


def data_spec(
    data: str,
    validation: str | None = None,
    test: str | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
    fmt: str | None = None,
) -> dict[str, Any]:
    """The spec for ``--data`` (a built-in name or a file) and its companion options."""
    name = data.removeprefix("builtin:")
    if name in BUILTINS and not Path(data).is_file():
        extra = [validation, test, text_column, label_column, fmt]
        if any(x is not None for x in extra):
            raise LmlabError(
                f"{name} is a built-in data set with fixed splits and columns; "
                "--validation/--test/--text-column/--label-column/--format are for your own files"
            )
        return {"builtin": name}
    if data.startswith("builtin:"):
        raise LmlabError(f"no built-in data set {name!r}; see lmlab task data")
    if not Path(data).is_file():
        raise LmlabError(
            f"--data {data!r} is neither a file nor a built-in data set "
            f"({', '.join(BUILTINS)}); see lmlab task data"
        )
    spec: dict[str, Any] = {"train": str(Path(data).resolve())}
    for key, value in (("validation", validation), ("test", test)):
        if value is not None:
            spec[key] = str(Path(value).resolve())
    for key, value in (("text_column", text_column), ("label_column", label_column)):
        if value is not None:
            spec[key] = value
    if fmt is not None:
        spec["format"] = fmt
    return spec


def load_task_data(spec: dict[str, Any], seed: int = DEFAULT_SPLIT_SEED) -> TaskData:
    """Read and split the data of ``spec``, checking the labels."""
    if "builtin" in spec:
        b = BUILTINS.get(spec["builtin"])
        if b is None:
            raise LmlabError(f"no built-in data set {spec['builtin']!r}; see lmlab task data")
        train, val, test, names = b.load(seed)
        name, language = b.name, b.language
    else:
        cols = (spec.get("text_column"), spec.get("label_column"), spec.get("format"))
        train = read_examples(spec["train"], *cols)
        val = read_examples(spec["validation"], *cols) if spec.get("validation") else None
        test = read_examples(spec["test"], *cols) if spec.get("test") else None
        if val is None and test is None:
            train, val, test = _held_out(train, [0.8, 0.1, 0.1], seed)
        elif val is None:
            train, val = _held_out(train, [0.9, 0.1], seed)
        names = label_order(train.labels)
        name, language = Path(spec["train"]).name, language_of(train.texts)
    others = {"validation": val.labels}
    if test is not None:
        others["test"] = test.labels
    check_labels(train.labels, others)
    return TaskData(name, train, val, test, list(names), language, dict(spec), seed)
