"""Labelled data: readers, columns, bad input, splits and the built-in data sets."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from lmlab.errors import LmlabError
from lmlab.tasks.data import language_of, read_examples
from lmlab.tasks.datasets import data_spec, load_task_data
from lmlab.tasks.splits import check_labels, stratified_split
from shared_data import SHARED_DATA


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_tsv_with_header_found_by_usual_names(tmp_path: Path) -> None:
    f = write(tmp_path / "a.tsv", 'sentence\tlabel\na "quoted" film \t1\ndull\t0\n')
    ex = read_examples(f)
    assert ex.texts == ['a "quoted" film', "dull"] and ex.labels == ["1", "0"]


def test_tsv_without_header_by_index(tmp_path: Path) -> None:
    f = write(tmp_path / "a.txt", "体验2D巅峰\t8\n60年铁树开花\t5\n")
    ex = read_examples(f, "0", "1")
    assert ex.texts == ["体验2D巅峰", "60年铁树开花"] and ex.labels == ["8", "5"]
    # A header row is recognised by its label cell and skipped even with indexes.
    f2 = write(tmp_path / "b.tsv", "text\tlabel\ngood\tpos\n")
    assert read_examples(f2, 0, 1).texts == ["good"]


def test_csv_quoting_and_named_columns(tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", 'label,review,extra\n1,"距离较近,但是""蔡陆线""麻烦",x\n0,差,y\n')
    ex = read_examples(f, "review", "label")
    assert ex.texts == ['距离较近,但是"蔡陆线"麻烦', "差"]
    assert ex.labels == ["1", "0"]


def test_jsonl(tmp_path: Path) -> None:
    recs = [{"body": "great", "stars": 5}, {"body": "bad", "stars": 1}]
    f = write(tmp_path / "a.jsonl", "\n".join(json.dumps(r) for r in recs) + "\n")
    ex = read_examples(f, "body", "stars")
    assert ex.texts == ["great", "bad"] and ex.labels == ["5", "1"]
    with pytest.raises(LmlabError, match="no text field 'text'.*'body', 'stars'"):
        read_examples(f)
    write(tmp_path / "b.jsonl", '{"text": "x", "label": 1}\nnot json\n')
    with pytest.raises(LmlabError, match="line 2: not JSON"):
        read_examples(tmp_path / "b.jsonl")


def test_unknown_columns_name_what_is_there(tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", "label,review\n1,好\n")
    with pytest.raises(
        LmlabError, match=r"no column named 'stars' \(first row: 'label', 'review'\)"
    ):
        read_examples(f, "review", "stars")
    g = write(tmp_path / "b.tsv", "good film\tpositive\n")
    with pytest.raises(LmlabError, match="no usual text column.*0-based"):
        read_examples(g)
    with pytest.raises(LmlabError, match="label column 5 does not exist"):
        read_examples(g, 0, 5)


def test_malformed_row_is_an_error_with_its_line(tmp_path: Path) -> None:
    f = write(tmp_path / "a.tsv", "text\tlabel\ngood\t1\nno label here\n")
    with pytest.raises(LmlabError, match="line 3: 1 field"):
        read_examples(f)


def test_empty_texts_and_labels_are_counted_not_dropped_silently(tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", 'label,review\n1,好\n0,""\n1,  \n,还行\n0,差\n')
    with pytest.warns(UserWarning) as caught:
        ex = read_examples(f)
    messages = sorted(str(w.message) for w in caught)
    assert messages == ["a.csv: 1 row skipped: empty label", "a.csv: 2 rows skipped: empty text"]
    assert ex.texts == ["好", "差"] and ex.skipped == {"empty text": 2, "empty label": 1}


def test_unknown_label_under_a_label_map(tmp_path: Path) -> None:
    f = write(tmp_path / "a.tsv", "sentence\tlabel\ngood\t1\nodd\t2\n")
    with pytest.raises(LmlabError, match="line 3: unknown label '2'"):
        read_examples(f, label_map={"0": "negative", "1": "positive"})


def test_label_checks() -> None:
    with pytest.raises(LmlabError, match="single class \\('pos'\\)"):
        check_labels(["pos", "pos"], {})
    with pytest.raises(
        LmlabError, match="test has label\\(s\\) never seen in training: 'neu' \\(2 rows\\)"
    ):
        check_labels(["pos", "neg"], {"validation": ["pos"], "test": ["neu", "neu", "pos"]})


def test_stratified_split_is_seeded_and_keeps_proportions() -> None:
    labels = ["a"] * 700 + ["b"] * 200 + ["c"] * 100
    rng = np.random.default_rng(0)
    labels = list(rng.permutation(labels))
    parts = stratified_split(labels, [0.8, 0.1, 0.1], seed=5)
    again = stratified_split(labels, [0.8, 0.1, 0.1], seed=5)
    other = stratified_split(labels, [0.8, 0.1, 0.1], seed=6)
    assert all((x == y).all() for x, y in zip(parts, again, strict=True))
    assert not (parts[1] == other[1]).all()
    everything = np.concatenate(parts)
    assert sorted(everything.tolist()) == list(range(1000))  # a partition
    for part, frac in zip(parts, [0.8, 0.1, 0.1], strict=True):
        counts = Counter(labels[i] for i in part)
        for lab, total in (("a", 700), ("b", 200), ("c", 100)):
            assert abs(counts[lab] - frac * total) <= 1
        assert (np.diff(part) > 0).all()  # file order kept


def test_custom_files_split_80_10_10_or_90_10(tmp_path: Path) -> None:
    rows = "".join(f"text {i}\t{'pos' if i % 3 else 'neg'}\n" for i in range(300))
    f = write(tmp_path / "all.tsv", "text\tlabel\n" + rows)
    spec = data_spec(str(f))
    d = load_task_data(spec, seed=1)
    assert (len(d.train), len(d.validation), len(d.test)) == (240, 30, 30)
    assert d.labels == ["neg", "pos"] and d.language == "en"
    assert load_task_data(spec, seed=1).validation.texts == d.validation.texts
    t = write(tmp_path / "test.tsv", "text\tlabel\nx\tpos\n")
    d2 = load_task_data(data_spec(str(f), test=str(t)), seed=1)
    assert (len(d2.train), len(d2.validation), len(d2.test)) == (270, 30, 1)
    bad = write(tmp_path / "bad.tsv", "text\tlabel\nx\tneutral\n")
    with pytest.raises(LmlabError, match="test has label.*'neutral'"):
        load_task_data(data_spec(str(f), test=str(bad)))


def test_data_spec_errors(tmp_path: Path) -> None:
    with pytest.raises(LmlabError, match="neither a file nor a built-in data set"):
        data_spec("no_such_file.tsv")
    with pytest.raises(LmlabError, match="built-in data set with fixed splits"):
        data_spec("sst2", text_column="text")
    assert data_spec("builtin:agnews") == {"builtin": "agnews"}


def test_language_of() -> None:
    assert language_of(["服务很好，房间干净", "太差了"]) == "zh"
    assert language_of(["a good film", "服务"]) == "en"


@pytest.mark.skipif(not (SHARED_DATA / "sst2").is_dir(), reason="shared data not found")
def test_builtin_splits_are_fixed() -> None:
    sizes = {
        "sst2": (60614, 6735, 872),
        "agnews": (9000, 1001, 7600),
        "thucnews": (9000, 1000, 10000),
        "waimai": (9590, 1198, 1199),
    }
    for name, want in sizes.items():
        d = load_task_data({"builtin": name})
        assert (len(d.train), len(d.validation), len(d.test)) == want, name
    d = load_task_data({"builtin": "thucnews"})
    assert d.labels[0] == "finance" and d.labels[-1] == "entertainment"
    assert set(d.validation.counts().values()) == {100}  # stratified: 100 titles per class
    assert load_task_data({"builtin": "thucnews"}).validation.texts == d.validation.texts
    assert load_task_data({"builtin": "thucnews"}, seed=2).validation.texts != d.validation.texts
    with pytest.warns(UserWarning, match="1 row skipped: empty text"):
        c = load_task_data({"builtin": "chnsenticorp"})
    assert (len(c.train), len(c.validation), len(c.test)) == (6212, 777, 776)
    assert c.language == "zh" and c.labels == ["negative", "positive"]
