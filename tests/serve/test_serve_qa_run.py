"""/v1/qa with a real question-answering run: a span model fine-tuned here for a few steps
on XQuAD passages, on top of the tiny character Transformer the server tests train."""

from __future__ import annotations

import json

import httpx
import pytest
from _serve_helpers import API_KEY, make_server

from shared_data import shared_file

qa_run = pytest.importorskip("lmlab.tasks.qa.run", reason="the QA task kind is not installed")


@pytest.fixture(scope="module")
def qa_dir(serve_runs, tmp_path_factory):
    src = json.loads(shared_file("qa_en", "xquad.en.json").read_text(encoding="utf-8"))
    root = tmp_path_factory.mktemp("qa")
    # eight short passages, with their questions, in SQuAD's format
    paragraphs = [p for art in src["data"] for p in art["paragraphs"] if len(p["context"]) < 700]
    data = root / "squad.json"
    data.write_text(json.dumps({"version": "1.1", "data": [{"title": "x", "paragraphs": paragraphs[:8]}]}),
                    encoding="utf-8")  # fmt: skip
    cfg = {"task": {"data": {"train": str(data)}, "max_len": 96, "stride": 8,
                    "max_answer_tokens": 20},
           "init": {"source": str(serve_runs["tiny"])},
           "train": {"max_steps": 2, "batch_size": 4, "val_questions": 4, "n_boot": 10,
                     "threads": 1, "bf16": False, "warmup": 1}}  # fmt: skip
    qa_run.train_run(cfg, root / "run", progress=False, log=lambda s: None)
    return root / "run", paragraphs[0]


def test_qa_endpoint_answers_as_the_run_does(qa_dir) -> None:
    from lmlab.tasks.rundir import load_task_run

    run_dir, para = qa_dir
    question, context = para["qas"][0]["question"], para["context"]
    srv, registry = make_server({"squad": run_dir})
    assert registry.models["squad"].kind == "qa"
    with srv:
        r = httpx.post(srv.url + "/v1/qa", json={"question": question, "context": context,
                                                  "top": 3},
                       headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60)  # fmt: skip
        assert r.status_code == 200, r.text
        answers = r.json()["answers"]
        bad = httpx.post(srv.url + "/v1/qa", json={"question": question, "context": "  "},
                         headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60)  # fmt: skip
    assert 1 <= len(answers) <= 3
    assert [a["score"] for a in answers] == sorted((a["score"] for a in answers), reverse=True)
    for a in answers:
        assert context[a["start"] : a["end"]] == a["text"]
    want = load_task_run(run_dir).answer(question, context, top=3)
    assert [(a["text"], a["start"], a["end"]) for a in answers] == [
        (w["text"], w["start"], w["end"]) for w in want
    ]
    assert [a["score"] for a in answers] == pytest.approx([w["score"] for w in want], abs=1e-5)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "context"
