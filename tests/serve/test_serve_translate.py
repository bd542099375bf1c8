"""``POST /v1/translate`` and ``POST /v1/summarize`` with small runs trained here on slices
of Tatoeba and LCSTS: the server's outputs are the run's own (beam and greedy, n-best), the
model card says the languages, and bad requests get 4xx with the parameter named."""

from __future__ import annotations

import httpx
import pytest
from _serve_helpers import API_KEY, make_server

from lmlab.tasks.rundir import load_task_run

pytest.importorskip("sacrebleu")
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module")
def server(translator, summarizer):
    srv, registry = make_server({"enzh": translator, "lcsts": summarizer}, max_task_chars=500)
    with srv:
        yield srv.url


def post(url: str, body: dict, route: str = "/v1/translate") -> httpx.Response:
    return httpx.post(url + route, json=body, headers=AUTH, timeout=60)


def test_translations_are_the_runs_own(server, translator) -> None:
    run = load_task_run(translator)
    texts = ["I like tea.", "Where is the station?"]
    r = post(server, {"input": texts, "beam": 3, "n_best": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "enzh" and body["direction"] == "en-zh"
    want = run.translate(texts, method="beam", beam=3, n_best=2)
    for i, item in enumerate(body["data"]):
        assert item["index"] == i
        assert [(a["text"], pytest.approx(a["score"])) for a in item["alternatives"]] == [
            (t, pytest.approx(s)) for t, s in want[i]
        ]
        assert item["text"] == want[i][0][0] and item["truncated"] is False
        assert item["num_tokens"] == len(run.src_tok.encode(texts[i]))
    usage = body["usage"]
    assert usage["prompt_tokens"] == sum(d["num_tokens"] for d in body["data"])
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    greedy = post(server, {"input": "I like tea.", "method": "greedy"}).json()["data"][0]
    assert greedy["text"] == run.translate(["I like tea."], method="greedy")[0][0][0]
    card = httpx.get(server + "/v1/models/enzh", headers=AUTH).json()
    assert card["kind"] == "translate" and card["direction"] == "en-zh"
    assert card["route"] == "/v1/translate"


def test_a_source_longer_than_the_context_is_cut_and_flagged(server, translator) -> None:
    run = load_task_run(translator)
    long = "tea " * (run.model.context_length + 20)
    item = post(server, {"input": long}).json()["data"][0]
    assert item["truncated"] is True and item["num_tokens"] > run.model.context_length


@pytest.mark.parametrize(
    ("body", "status", "param", "words"),
    [
        ({"input": []}, 400, "input", "must not be empty"),
        ({"input": ["fine", " "]}, 400, "input", "input 1 is empty"),
        ({"input": "x" * 501}, 400, "input", "at most 500"),
        ({"input": "x", "beam": 2, "n_best": 3}, 400, "n_best", "beam width"),
        ({"input": "x", "method": "greedy", "n_best": 2}, 400, "n_best", "greedy"),
        ({"model": "lcsts", "input": "x"}, 400, "model", "summarisation run"),
        ({"input": "x", "beam": 0}, 400, "beam", ""),
        ({"input": "x", "method": "sample"}, 400, "method", ""),
        ({"input": "x", "no_repeat_ngram": -1}, 400, "no_repeat_ngram", ""),
        ({"model": "nope", "input": "x"}, 404, "model", "does not exist"),
        ({}, 400, "input", "Field required"),
    ],
)
def test_bad_requests(server, body, status, param, words) -> None:
    r = post(server, body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["param"] == param and words in err["message"]


def test_summaries_are_the_runs_own(server, summarizer) -> None:
    run = load_task_run(summarizer)
    texts = ["今天北京的天气很好，很多人去公园散步。", "这家公司发布了新的手机，价格比去年便宜。"]
    r = post(server, {"input": texts, "beam": 2, "n_best": 2}, "/v1/summarize")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "lcsts" and body["language"] == "zh"
    want = run.translate(texts, method="beam", beam=2, n_best=2, max_len=run.summary_limit)
    for i, item in enumerate(body["data"]):
        assert [a["text"] for a in item["alternatives"]] == [t for t, _ in want[i]]
        assert item["text"] == run.summarize([texts[i]], beam=2)[0]
        assert item["num_tokens"] == len(texts[i]) and item["truncated"] is False  # characters
    long = post(server, {"input": "很" * 80}, "/v1/summarize").json()["data"][0]
    assert long["truncated"] is True and long["num_tokens"] == 80  # the run reads 60
    card = httpx.get(server + "/v1/models/lcsts", headers=AUTH).json()
    assert card["kind"] == "summarize" and card["route"] == "/v1/summarize"
    assert card["language"] == "zh" and card["context_length"] == run.source_limit == 60
    banned = post(server, {"input": texts, "beam": 2, "no_repeat_ngram": 2}, "/v1/summarize")
    assert [d["text"] for d in banned.json()["data"]] == run.summarize(
        texts, beam=2, no_repeat_ngram=2
    )
    wrong = post(server, {"model": "enzh", "input": "x"}, "/v1/summarize")
    assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "model"
