"""Summariser training data: the built-in splits (CSL's validation held out of its training
file, deterministic), text<TAB>summary files with their bad input, language guessing."""

from __future__ import annotations

import pytest

from lmlab.errors import LmlabError
from lmlab.tasks.summarize.data import guess_lang, load_task_data, read_pairs_tsv
from shared_data import shared_file


def test_csl_validation_is_held_out_of_training_deterministically():
    shared_file("summarization_zh", "csl_ts_dev.tsv")
    a, b = load_task_data({"name": "csl"}), load_task_data({"name": "csl"})
    assert a.sizes() == {"train": 900, "validation": 100, "test": 1000}
    assert a.validation.texts == b.validation.texts
    assert not set(a.validation.texts) & set(a.train.texts)
    assert a.lang == "zh" and "held out" in a.notes[0]
    c = load_task_data({"name": "csl"}, seed=2)
    assert c.validation.texts != a.validation.texts


def test_lcsts_keeps_its_fixed_split():
    shared_file("summarization_zh", "lcsts_part2.src.txt")
    d = load_task_data({"name": "lcsts"})
    assert len(set(d.test.texts)) == 500 and len(set(d.validation.texts)) == 500
    assert not set(d.test.texts) & set(d.train.texts)


def test_tsv_pairs_and_bad_input(tmp_path):
    p = tmp_path / "p.tsv"
    rows = [f"text number {i} is here\tsummary {i}" for i in range(60)]
    p.write_text("\n".join(rows + ["\tno text", ""]) + "\n", encoding="utf-8")
    with pytest.warns(UserWarning, match="2 lines with an empty text or summary skipped"):
        d = load_task_data({"path": str(p)})
    assert d.lang == "en" and d.sizes() == {"train": 54, "validation": 3, "test": 3}
    with pytest.raises(LmlabError, match="not found"):
        read_pairs_tsv(str(tmp_path / "missing.tsv"))
    (tmp_path / "bin.tsv").write_bytes(b"\xff\xfe\tx\n")
    with pytest.raises(LmlabError, match="not UTF-8"):
        read_pairs_tsv(str(tmp_path / "bin.tsv"))
    (tmp_path / "one.tsv").write_text("just one column\n", encoding="utf-8")
    with pytest.raises(LmlabError, match="fewer than 2 tab-separated columns"):
        read_pairs_tsv(str(tmp_path / "one.tsv"))
    with pytest.raises(LmlabError, match="test set only"):
        load_task_data({"name": "xsum"})


def test_guess_lang():
    assert guess_lang(["今天天气很好，我们去公园。"]) == "zh"
    assert guess_lang(["The weather is fine today."]) == "en"
