"""lmlab's task endpoints: /v1/classify with a classification run trained here on SST-2,
/v1/qa with a question answerer that honours the QA run's contract; bad requests get 4xx."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from _serve_helpers import API_KEY

from lmlab.tasks.rundir import load_task_run

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def post(server, path: str, body: dict) -> httpx.Response:
    return httpx.post(server[0] + path, json=body, headers=AUTH, timeout=60)


def test_classify_returns_the_runs_probabilities(task_server, classifier_run) -> None:
    texts = ["a gorgeous , witty , moving film", "dull , tedious and badly acted", "the film"]
    r = post(task_server, "/v1/classify", {"model": "sst", "input": texts})
    assert r.status_code == 200, r.text
    body = r.json()
    run = load_task_run(classifier_run)
    assert body["labels"] == run.labels == ["0", "1"] and body["model"] == "sst"
    want = run.predict_proba(texts)
    for i, item in enumerate(body["data"]):
        got = [item["probabilities"][lab] for lab in run.labels]
        np.testing.assert_allclose(got, want[i], atol=1e-6)
        assert item["index"] == i and item["label"] == run.labels[int(want[i].argmax())]
        assert item["probability"] == pytest.approx(want[i].max(), abs=1e-6)
        assert item["num_tokens"] == len(run.tokenizer.encode(texts[i]))
        assert item["truncated"] is False and item.get("explanation") is None
    assert body["usage"]["prompt_tokens"] == sum(d["num_tokens"] for d in body["data"])
    # one string, the default model (the first classifier), a text longer than max_len (24)
    long = "a gorgeous film " * 10
    one = post(task_server, "/v1/classify", {"input": long}).json()
    assert len(one["data"]) == 1 and one["data"][0]["truncated"] is True
    assert one["data"][0]["num_tokens"] == 30


def test_classify_explains_a_prediction(task_server, classifier_run) -> None:
    text = "a gorgeous , witty , moving film"
    run = load_task_run(classifier_run)
    for method in ("grad", "occlusion"):
        r = post(task_server, "/v1/classify", {"input": [text], "explain": method})
        item = r.json()["data"][0]
        ex = item["explanation"]
        pieces, scores, target = run.explain(text, method, run.labels.index(item["label"]))
        assert ex["method"] == method and ex["label"] == item["label"]
        assert [t for t, _ in ex["tokens"]] == pieces
        np.testing.assert_allclose([s for _, s in ex["tokens"]], scores, atol=1e-5)


def test_qa_returns_spans_of_the_context(task_server) -> None:
    context = ("The Normans were the people who in the 10th and 11th centuries gave their name "
               "to Normandy. They were descended from Norse raiders. Their leader was Rollo.")  # fmt: skip
    r = post(task_server, "/v1/qa", {"model": "reader", "question": "Who was their leader?",
                                      "context": context, "top": 2})  # fmt: skip
    assert r.status_code == 200, r.text
    answers = r.json()["answers"]
    assert len(answers) == 2 and answers[0]["score"] >= answers[1]["score"]
    for a in answers:
        assert context[a["start"] : a["end"]] == a["text"]
    assert answers[0]["text"] == "Their leader was Rollo."
    assert r.json()["model"] == "reader"


@pytest.mark.parametrize(
    ("path", "body", "status", "param", "words"),
    [
        ("/v1/classify", {"model": "reader", "input": "x"}, 400, "model", "question-answering"),
        ("/v1/classify", {"model": "tiny", "input": "x"}, 400, "model", "language model"),
        ("/v1/classify", {"model": "vec", "input": "x"}, 400, "model", "word-vectors"),
        ("/v1/classify", {"model": "nope", "input": "x"}, 404, "model", "does not exist"),
        ("/v1/classify", {"input": []}, 400, "input", "must not be empty"),
        ("/v1/classify", {"input": ["fine", "  "]}, 400, "input", "input 1 is empty"),
        ("/v1/classify", {"input": "x" * 2001}, 400, "input", "at most 2,000"),
        ("/v1/classify", {"input": ["x"] * 257}, 400, "input", "at most 256"),
        ("/v1/classify", {"input": ["x"] * 33, "explain": "grad"}, 400, "explain", "at most 32"),
        ("/v1/classify", {"input": "x", "explain": "shap"}, 400, "explain", ""),
        ("/v1/classify", {}, 400, "input", "Field required"),
        ("/v1/classify", {"input": 5}, 400, "input", ""),
        ("/v1/qa", {"model": "sst", "question": "q", "context": "c"}, 400, "model", "classif"),
        ("/v1/qa", {"question": "who?"}, 400, "context", "Field required"),
        ("/v1/qa", {"question": "", "context": "text"}, 400, "question", "empty"),
        ("/v1/qa", {"question": "who?", "context": "y" * 2001}, 400, "context", "at most"),
        ("/v1/qa", {"question": "who?", "context": "c", "top": 0}, 400, "top", ""),
        ("/v1/completions", {"model": "sst", "prompt": "x"}, 400, "model", "/v1/classify"),
        (
            "/v1/chat/completions",
            {"model": "reader", "messages": [{"role": "user", "content": "x"}]},
            400,
            "model",
            "/v1/qa",
        ),  # fmt: skip
        ("/v1/embeddings", {"model": "sst", "input": "x"}, 400, "model", "classification run"),
    ],
)
def test_bad_task_requests_get_4xx(task_server, path, body, status, param, words) -> None:
    r = post(task_server, path, body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["param"] == param and words in err["message"]


def test_default_models_skip_runs_of_another_kind(task_server) -> None:
    """The first served model is the classifier: requests without a model go to the first
    model that can answer them."""
    r = post(task_server, "/v1/embeddings", {"input": "thee"})
    assert r.status_code == 200 and r.json()["model"] == "tiny"
    r = post(task_server, "/v1/completions", {"prompt": "a", "max_tokens": 2})
    assert r.status_code == 200 and r.json()["model"] == "tiny"
    r = post(task_server, "/v1/qa", {"question": "who?", "context": "Rollo led them."})
    assert r.status_code == 200 and r.json()["model"] == "reader"


def test_models_list_task_runs_with_their_labels(task_server) -> None:
    cards = {
        m["id"]: m for m in httpx.get(task_server[0] + "/v1/models", headers=AUTH).json()["data"]
    }
    assert cards["sst"]["kind"] == "classify" and cards["sst"]["labels"] == ["0", "1"]
    assert cards["sst"]["family"] == "bow" and cards["sst"]["route"] == "/v1/classify"
    assert cards["sst"]["params"] > 0 and cards["sst"]["max_len"] == 24
    assert cards["reader"]["kind"] == "qa" and cards["reader"]["route"] == "/v1/qa"
    assert httpx.get(task_server[0] + "/v1/classify", headers=AUTH).status_code == 405
    spec = httpx.get(task_server[0] + "/openapi.json").json()
    assert {"/v1/classify", "/v1/qa"} <= set(spec["paths"])


def test_serve_cli_loads_a_task_run(classifier_run) -> None:
    from lmlab.serve.registry import load_model

    m = load_model(f"sent={classifier_run}")
    assert m.kind == "classify" and m.name == "sent" and m.run is None
    assert m.card()["labels"] == ["0", "1"]
