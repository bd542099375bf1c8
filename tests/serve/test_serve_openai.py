"""The official ``openai`` client against a live lmlab server: what existing programs see."""

from __future__ import annotations

import math

import numpy as np
import openai
import pytest
from _serve_helpers import API_KEY

from lmlab.generate import SamplingParams, generate


def test_models_lists_every_served_model(client) -> None:
    models = {m.id: m for m in client.models.list().data}
    assert set(models) == {"tiny", "lstm", "kn", "vec"}
    tiny = models["tiny"].model_dump()
    assert tiny["kind"] == "lm" and tiny["family"] == "transformer"
    assert tiny["context_length"] == 96 and tiny["max_tokens"] == 64
    assert models["vec"].model_dump()["kind"] == "embeddings"
    assert client.models.retrieve("kn").model_dump()["family"] == "ngram"


def test_completion_matches_the_engine_for_the_same_seed(client, server) -> None:
    r = client.completions.create(model="tiny", prompt="Shall I", max_tokens=12, seed=5,
                                  temperature=0.9, extra_body={"top_k": 20})  # fmt: skip
    run = server[1].models["tiny"].run
    want = generate(run.model, run.tokenizer, "Shall I",
                    SamplingParams(max_new_tokens=12, temperature=0.9, top_k=20, seed=5))[0]  # fmt: skip
    assert r.choices[0].text == want.text
    assert r.choices[0].finish_reason == "length"
    assert r.usage.prompt_tokens == 7 and r.usage.completion_tokens == 12
    assert r.usage.total_tokens == 19 and r.model == "tiny" and r.object == "text_completion"


def test_streamed_completion_equals_the_whole_one(client) -> None:
    kw = dict(model="lstm", prompt="When I do count", max_tokens=20, seed=3, temperature=0.8)
    whole = client.completions.create(**kw)
    chunks = list(client.completions.create(**kw, stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.choices[0].text
    assert chunks[-1].choices[0].finish_reason == "length"
    assert chunks[-1].usage.completion_tokens == 20  # usage rides on the last chunk
    with_usage = list(client.completions.create(**kw, stream=True,
                                                stream_options={"include_usage": True}))  # fmt: skip
    assert with_usage[-1].choices == [] and with_usage[-1].usage.total_tokens == 15 + 20


def test_logprobs_give_top_alternatives(client) -> None:
    r = client.completions.create(model="tiny", prompt="love", max_tokens=5, logprobs=3, seed=1)
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == 5
    for lps, tops in zip(lp.token_logprobs, lp.top_logprobs, strict=True):
        assert lps <= 0 and len(tops) == 3
        assert max(tops.values()) >= lps - 1e-6  # the best alternative is at least as likely
        assert sum(math.exp(v) for v in tops.values()) <= 1 + 1e-5


def test_greedy_stop_strings_and_several_samples(client) -> None:
    greedy = [client.completions.create(model="kn", prompt="the ", max_tokens=15, temperature=0)
              for _ in range(2)]  # fmt: skip
    assert greedy[0].choices[0].text == greedy[1].choices[0].text
    text = greedy[0].choices[0].text
    stop = text[5:7]
    r = client.completions.create(
        model="kn", prompt="the ", max_tokens=15, temperature=0, stop=stop
    )
    assert r.choices[0].text == text[: text.index(stop)] and r.choices[0].finish_reason == "stop"
    r = client.completions.create(model="tiny", prompt=["a", "b"], max_tokens=4, n=3, seed=2)
    assert [c.index for c in r.choices] == list(range(6))
    assert r.usage.completion_tokens == 24 and r.usage.prompt_tokens == 2


def test_chat_multi_turn_with_the_default_and_a_stored_template(client, server) -> None:
    messages = [
        {"role": "system", "content": "Speak in verse."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hail"},
        {"role": "user", "content": "Why?"},
    ]
    r = client.chat.completions.create(model="tiny", messages=messages, max_tokens=10, seed=4)
    msg = r.choices[0]
    assert msg.message.role == "assistant" and isinstance(msg.message.content, str)
    assert msg.finish_reason in ("stop", "length") and r.object == "chat.completion"
    assert "\nUser:" not in msg.message.content
    run = server[1].models["tiny"].run
    prompt = "System: Speak in verse.\nUser: Hi\nAssistant: Hail\nUser: Why?\nAssistant:"
    assert r.usage.prompt_tokens == len(run.tokenizer.encode(prompt))
    # a long conversation keeps its latest turns that fit the context
    long = [{"role": "user", "content": "word " * 12}, {"role": "assistant", "content": "ok"}] * 3
    r = client.chat.completions.create(model="tiny", messages=[*long, messages[3]], max_tokens=2)
    assert r.usage.prompt_tokens == len(run.tokenizer.encode("User: Why?\nAssistant:")) + len(
        run.tokenizer.encode("Assistant: ok\n")
    )
    # the LSTM run's chat_template.json: "Q: ...\nA:"
    r = client.chat.completions.create(model="lstm", messages=messages[1:2], max_tokens=5, seed=1)
    assert r.usage.prompt_tokens == len(server[1].models["lstm"].run.tokenizer.encode("Q: Hi\nA:"))


def test_streamed_chat_with_logprobs(client) -> None:
    kw = dict(model="tiny", messages=[{"role": "user", "content": "Hello"}], max_tokens=15,
              seed=9, temperature=0.7)  # fmt: skip
    whole = client.chat.completions.create(**kw)
    chunks = list(client.chat.completions.create(**kw, stream=True, logprobs=True, top_logprobs=2))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    entries = [e for c in chunks if c.choices and c.choices[0].logprobs
               for e in c.choices[0].logprobs.content]  # fmt: skip
    assert entries and all(len(e.top_logprobs) == 2 and e.logprob <= 0 for e in entries)
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    assert chunks[-1].usage.completion_tokens == len(entries)


def test_embeddings_from_hidden_states_and_word_vectors(client, serve_runs) -> None:
    r = client.embeddings.create(model="tiny", input=["Shall I compare", "thee"])
    assert len(r.data) == 2 and len(r.data[0].embedding) == 64
    assert r.usage.prompt_tokens == len("Shall I compare") + len("thee")
    floats = client.embeddings.create(model="tiny", input="thee", encoding_format="float")
    assert np.allclose(floats.data[0].embedding, r.data[1].embedding, atol=1e-6)
    lstm = client.embeddings.create(model="lstm", input=[[5, 6, 7]], encoding_format="float")
    assert len(lstm.data[0].embedding) == 32
    vec = client.embeddings.create(model="vec", input=["king", "King Man"], encoding_format="float")
    king, king_man = (np.array(d.embedding) for d in vec.data)
    from lmlab.embeddings.vectors import Vectors

    v = Vectors.load(serve_runs["vec"])
    assert np.allclose(king, v["king"], atol=1e-5)  # one word: its vector
    assert np.allclose(king_man, (v["king"] + v["man"]) / 2, atol=1e-5)  # lower-cased, averaged
    assert vec.usage.prompt_tokens == 3


def test_errors_come_in_openai_shape(client, server) -> None:
    bad = openai.OpenAI(base_url=server[0] + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as e:
        bad.models.list()
    assert e.value.body["code"] == "invalid_api_key"
    with pytest.raises(openai.NotFoundError) as e:
        client.completions.create(model="nope", prompt="x")
    assert e.value.body["type"] == "not_found_error" and e.value.body["param"] == "model"
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="tiny", prompt="x" * 100)  # context is 96
    assert e.value.body["code"] == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="tiny", prompt="x", temperature=-1)
    assert e.value.body["param"] == "temperature"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="vec", messages=[{"role": "user", "content": "x"}])
    assert "word vectors" in e.value.body["message"]
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model="kn", input="x")
    assert "hidden states" in e.value.body["message"]
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="tiny", prompt=[99999])
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="tiny", prompt="x", presence_penalty=1.0)


def test_max_tokens_within_the_model_limit(client) -> None:
    r = client.completions.create(model="kn", prompt="a", max_tokens=64, temperature=0,
                                  extra_body={"ignore_eos": True})  # fmt: skip
    assert r.usage.completion_tokens == 64 and r.choices[0].finish_reason == "length"
    r = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "x"}],
                                       stop=["\n", " ", "e", "a", "t"], seed=1)  # fmt: skip
    assert r.usage.completion_tokens <= 64  # a chat without max_tokens gets the cap


def test_api_key_is_not_needed_for_health_and_the_playground(server) -> None:
    import httpx

    assert httpx.get(server[0] + "/health").json() == {
        "status": "ok",
        "models": ["tiny", "lstm", "kn", "vec"],
    }
    page = httpx.get(server[0] + "/")
    assert page.status_code == 200 and "lmlab playground" in page.text
    assert httpx.get(server[0] + "/static/app.js").status_code == 200
    assert httpx.get(server[0] + "/v1/models").status_code == 401
    ok = httpx.get(server[0] + "/v1/models", headers={"Authorization": f"Bearer {API_KEY}"})
    assert ok.status_code == 200


def test_echo_returns_the_prompt_before_the_completion(client, server) -> None:
    r = client.completions.create(model="kn", prompt="Shall", echo=True, max_tokens=3, seed=1)
    plain = client.completions.create(model="kn", prompt="Shall", max_tokens=3, seed=1)
    assert r.choices[0].text == "Shall" + plain.choices[0].text
    tok = server[1].models["kn"].run.tokenizer
    ids = tok.encode("love")
    r = client.completions.create(model="kn", prompt=ids, echo=True, max_tokens=2, stream=True)
    assert "".join(c.choices[0].text for c in r if c.choices).startswith("love")
