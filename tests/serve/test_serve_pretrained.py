"""The server with a pretrained chat model: the chat endpoint applies the model's own Jinja
template and the reply ends at its end-of-turn token."""

from __future__ import annotations

import pytest
from _serve_helpers import API_KEY, make_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2_server():
    from tiny_hf import require_smollm2

    require_smollm2()
    srv, registry = make_server({"smollm2": "builtin:smollm2"})
    with srv:
        yield srv.url, registry


def test_chat_endpoint_uses_the_models_template(smollm2_server) -> None:
    import httpx

    url, registry = smollm2_server
    served = registry.get("smollm2")
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = served.template.render(messages)
    assert prompt.startswith("<|im_start|>system\n") and prompt.endswith("<|im_start|>assistant\n")
    r = httpx.post(
        url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {API_KEY}"},
        json={"model": "smollm2", "messages": messages, "max_tokens": 40, "temperature": 0},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    reply = body["choices"][0]
    assert "Paris" in reply["message"]["content"]
    assert reply["finish_reason"] == "stop" and "<|im_end|>" not in reply["message"]["content"]
    tok = served.run.tokenizer
    from lmlab.serve.chat_template import encode_chat  # markers as specials, content as text

    assert body["usage"]["prompt_tokens"] == len(encode_chat(served.template, messages, tok))
    models = httpx.get(url + "/v1/models", headers={"Authorization": f"Bearer {API_KEY}"}).json()
    assert [m["id"] for m in models["data"]] == ["smollm2"]
