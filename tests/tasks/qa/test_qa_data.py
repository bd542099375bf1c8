"""SQuAD-format reading: bad input counted or refused, zips, the built-in splits."""

from __future__ import annotations

import json
import zipfile

import pytest

from lmlab.errors import LmlabError
from lmlab.tasks.qa.data import read_squad
from lmlab.tasks.qa.datasets import data_spec, load_qa_data, split_by_paragraph
from shared_data import shared_file

CTX = "Albert Einstein was born in Ulm in 1879. He died in Princeton."


def squad(qas: list[dict], context: str = CTX) -> dict:
    return {
        "version": "1.1",
        "data": [{"title": "t", "paragraphs": [{"context": context, "qas": qas}]}],
    }


def qa(i: int, q: str, text: str, start: int) -> dict:
    return {"id": str(i), "question": q, "answers": [{"text": text, "answer_start": start}]}


def test_bad_input_is_counted(tmp_path):
    good = qa(1, "When was he born?", "1879", CTX.index("1879"))
    shifted = qa(2, "Where was he born?", "Ulm", CTX.index("Ulm") + 1)
    empty = qa(3, "  ", "Ulm", CTX.index("Ulm"))
    two = {"id": "4", "question": "Where did he die?",
           "answers": [{"text": "Princeton", "answer_start": 3},
                       {"text": "Princeton", "answer_start": CTX.index("Princeton")}]}  # fmt: skip
    p = tmp_path / "d.json"
    p.write_text(json.dumps(squad([good, shifted, empty, two])), encoding="utf-8")
    with pytest.warns(UserWarning) as rec:
        ex = read_squad(p)
    msgs = [str(w.message) for w in rec]
    assert any("2 answers skipped: offset mismatch" in m for m in msgs)
    assert any("1 question skipped: empty question" in m for m in msgs)
    assert any("1 question skipped: no answer left" in m for m in msgs)
    assert [e.id for e in ex] == ["1", "4"]
    assert ex[1].answers[0].start == CTX.index("Princeton")
    # for scoring, a mismatched offset still gives a reference text
    with pytest.warns(UserWarning, match="kept as reference texts"):
        scored = read_squad(p, for_scoring=True)
    assert [e.id for e in scored] == ["1", "2", "4"]
    assert scored[1].located is None and scored[1].answer_texts == ["Ulm"]


def test_zip_and_refusals(tmp_path):
    p = tmp_path / "d.json.zip"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("inner/dev.json", json.dumps(squad([qa(1, "Born?", "1879", CTX.index("1879"))])))
    assert read_squad(p)[0].answer_texts == ["1879"]
    bad = tmp_path / "bad.json"
    bad.write_text('{"rows": []}', encoding="utf-8")
    with pytest.raises(LmlabError, match="not SQuAD-format"):
        read_squad(bad)
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(LmlabError, match="not valid JSON"):
        read_squad(bad)
    none = tmp_path / "none.json"
    none.write_text(json.dumps(squad([qa(1, "Born?", "1879", 0)])), encoding="utf-8")
    with pytest.warns(UserWarning), pytest.raises(LmlabError, match="no usable question"):
        read_squad(none)
    with pytest.raises(LmlabError, match="neither"):
        data_spec(str(tmp_path / "missing.json"))


def test_split_by_paragraph_is_seeded_and_disjoint(tmp_path):
    qas = []
    data = {"version": "1.1", "data": [{"title": "t", "paragraphs": []}]}
    for k in range(30):
        ctx = f"Paragraph {k} says the answer is word{k}."
        data["data"][0]["paragraphs"].append(
            {"context": ctx, "qas": [qa(10 * k + j, f"q{j}?", f"word{k}", ctx.index(f"word{k}"))
                                     for j in range(3)]})  # fmt: skip
    p = tmp_path / "d.json"
    p.write_text(json.dumps(data), encoding="utf-8")
    ex = read_squad(p)
    a = split_by_paragraph(ex, [0.8, 0.1, 0.1], seed=3)
    b = split_by_paragraph(ex, [0.8, 0.1, 0.1], seed=3)
    assert [[e.id for e in part] for part in a] == [[e.id for e in part] for part in b]
    assert [len(part) for part in a] == [72, 9, 9]
    ctxs = [{e.context for e in part} for part in a]
    assert not (ctxs[0] & ctxs[1]) and not (ctxs[0] & ctxs[2]) and not (ctxs[1] & ctxs[2])
    c = split_by_paragraph(ex, [0.8, 0.1, 0.1], seed=4)
    assert [e.id for e in c[1]] != [e.id for e in a[1]]
    d = load_qa_data({"train": str(p)}, seed=3)
    assert (len(d.train), len(d.validation), len(d.test)) == (72, 9, 9)
    del qas


def test_builtin_squad_xquad_holds_out_xquad():
    shared_file("qa_en", "squad_dev-v1.1.json.zip")
    shared_file("qa_en", "xquad.en.json")
    with _no_fail():
        d = load_qa_data({"builtin": "squad-xquad"})
    assert len(d.test) == 1190
    assert len(d.train) + len(d.validation) == 10570 - 1190
    held = {e.context for e in d.test}
    assert not any(e.context in held for e in d.train + d.validation)
    assert "9,380 questions on 1,827 paragraphs remain" in d.notes[0]


def test_builtin_cmrc_scores_all_dev_questions():
    shared_file("qa_zh", "cmrc2018_dev.json")
    with _no_fail():
        d = load_qa_data({"builtin": "cmrc"})
    assert len(d.test) == 3219  # every dev question, as the official script scores them
    assert d.language == "zh"
    assert len(d.train) + len(d.validation) == 995


class _no_fail:
    """Warnings (the counted skips) are expected here; they must not fail the test."""

    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc):
        return self._w.__exit__(*exc)
