"""Limits and safety on a live server: body size, CORS, batching, cancellation, timeouts, 429."""

from __future__ import annotations

import threading
import time

import httpx
import openai
import pytest
from _serve_helpers import API_KEY, make_server

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def wait_for(cond, timeout: float = 5.0) -> bool:
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


@pytest.fixture(scope="module")
def batch_server(serve_runs):
    """A batching server that waits up to 0.2 s for requests to batch together, with CORS."""
    runs = {k: serve_runs[k] for k in ("tiny", "kn")}
    srv, reg = make_server(runs, batch_window_s=0.2, cors_origins=["http://example.org"])
    with srv:
        yield srv.url, reg


@pytest.fixture(scope="module")
def slow_server(serve_runs):
    """Endless generations (no token limit to speak of), a 2.5 s timeout, two requests at most."""
    srv, reg = make_server({"lstm": serve_runs["lstm"]}, max_tokens=10**6, timeout_s=2.5,
                           max_requests=2)  # fmt: skip
    with srv:
        yield srv.url, reg


def test_body_size_limit_with_and_without_content_length(server) -> None:
    url = server[0] + "/v1/completions"
    big = b'{"prompt": "' + b"x" * (1 << 20) + b'"}'
    r = httpx.post(url, content=big, headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"

    def chunks():  # no Content-Length: chunked transfer encoding
        yield b'{"prompt": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}'

    r = httpx.post(url, content=chunks(), headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["type"] == "invalid_request_error"


def test_cors_is_off_by_default_and_on_for_given_origins(server, batch_server) -> None:
    pre = {"Origin": "http://example.org", "Access-Control-Request-Method": "POST",
           "Access-Control-Request-Headers": "authorization,content-type"}  # fmt: skip
    off = httpx.options(server[0] + "/v1/completions", headers=pre)
    assert "access-control-allow-origin" not in off.headers
    on = httpx.options(batch_server[0] + "/v1/completions", headers=pre)
    assert on.headers["access-control-allow-origin"] == "http://example.org"
    other = httpx.options(batch_server[0] + "/v1/completions",
                          headers={**pre, "Origin": "http://evil.example"})  # fmt: skip
    assert other.headers.get("access-control-allow-origin") != "http://evil.example"


def _concurrent(url: str, bodies: list[dict], stream: bool) -> list[str]:
    client = openai.OpenAI(base_url=url + "/v1", api_key=API_KEY, max_retries=0, timeout=30)
    out: list[str] = [""] * len(bodies)
    barrier = threading.Barrier(len(bodies))

    def one(i: int) -> None:
        barrier.wait()
        if stream:
            out[i] = "".join(
                c.choices[0].text
                for c in client.completions.create(**bodies[i], stream=True)
                if c.choices
            )
        else:
            out[i] = client.completions.create(**bodies[i]).choices[0].text

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def test_concurrent_requests_are_batched_and_match_solo_results(batch_server) -> None:
    url, reg = batch_server
    # Transformer: prompts of different lengths share one (ragged) KV cache, and each
    # request's text is what it would be alone
    bodies = [dict(model="tiny", prompt=p, max_tokens=10, seed=i, temperature=0.8)
              for i, p in enumerate(["Shall I", "When in the", "Let me not", "Love"])]  # fmt: skip
    solo = [_concurrent(url, [b], stream=False)[0] for b in bodies]
    before = dict(reg.models["tiny"].worker.stats)
    together = _concurrent(url, bodies, stream=True)
    stats = reg.models["tiny"].worker.stats
    assert together == solo
    assert stats["max_rows"] >= 2 and stats["max_active"] >= 2
    assert stats["forwards"] - before["forwards"] < 4 * 9  # fewer forwards than one per request
    # n-gram: rows are independent, prompts of any length batch together
    bodies = [dict(model="kn", prompt="x" * (i + 1), max_tokens=8, seed=i) for i in range(4)]
    _concurrent(url, bodies, stream=False)
    assert reg.models["kn"].worker.stats["max_rows"] >= 2


def test_unbatched_server_still_interleaves_streams(serve_runs) -> None:
    srv, reg = make_server({"kn": serve_runs["kn"]}, batch=False)
    with srv:
        bodies = [dict(model="kn", prompt="the", max_tokens=30, seed=i) for i in range(3)]
        texts = _concurrent(srv.url, bodies, stream=True)
        stats = reg.models["kn"].worker.stats
    assert all(texts) and stats["max_rows"] == 1
    assert stats["prefills"] == 3


def test_a_disconnected_stream_is_cancelled(slow_server) -> None:
    url, reg = slow_server
    worker = reg.models["lstm"].worker
    before = worker.stats["cancelled"]
    body = {"model": "lstm", "prompt": "a", "stream": True, "max_tokens": 10**6, "ignore_eos": True}
    with httpx.stream("POST", url + "/v1/completions", json=body, headers=AUTH) as r:
        lines = r.iter_lines()
        assert next(lines).startswith("data: ")
    assert wait_for(lambda: worker.stats["cancelled"] > before and worker.inflight == 0)


def test_a_disconnected_plain_request_is_cancelled(slow_server) -> None:
    url, reg = slow_server
    worker = reg.models["lstm"].worker
    before = worker.stats["cancelled"]
    with pytest.raises(httpx.TimeoutException):
        httpx.post(url + "/v1/completions", json={"model": "lstm", "prompt": "a", "max_tokens": 10**6,
                                                       "ignore_eos": True},
                   headers=AUTH, timeout=0.3)  # fmt: skip
    assert wait_for(lambda: worker.stats["cancelled"] > before and worker.inflight == 0)


def test_timeout_and_busy_answers(slow_server) -> None:
    url, reg = slow_server
    body = {"model": "lstm", "prompt": "a", "max_tokens": 10**6, "ignore_eos": True}
    r = httpx.post(url + "/v1/completions", json=body, headers=AUTH, timeout=20)
    assert r.status_code == 408 and r.json()["error"]["type"] == "timeout_error"
    client = openai.OpenAI(base_url=url + "/v1", api_key=API_KEY, max_retries=0, timeout=20)
    with pytest.raises(openai.APIError, match="timeout"):
        for _ in client.completions.create(
            model="lstm", prompt="a", max_tokens=10**6, stream=True, extra_body={"ignore_eos": True}
        ):
            pass
    # two endless streams fill the model; a third request is told to come back later
    # (keep the line iterators: dropping one closes the connection, which cancels the stream)
    stream = {**body, "stream": True}
    with httpx.stream("POST", url + "/v1/completions", json=stream, headers=AUTH) as a:
        lines_a = a.iter_lines()
        next(lines_a)
        with httpx.stream("POST", url + "/v1/completions", json=stream, headers=AUTH) as b:
            lines_b = b.iter_lines()
            next(lines_b)
            r = httpx.post(url + "/v1/completions", json=body, headers=AUTH)
            assert r.status_code == 429 and r.json()["error"]["type"] == "rate_limit_error"
            assert next(lines_a) is not None and next(lines_b) is not None  # both still going
    assert wait_for(lambda: reg.models["lstm"].worker.inflight == 0)


def test_bad_input_never_breaks_the_server(server) -> None:
    url = server[0]
    cases = [
        ("/v1/completions", b"{not json"),
        ("/v1/completions", b"[]"),
        ("/v1/completions", b'{"prompt": "\\ud800"}'),  # a lone surrogate
        ("/v1/completions", b'{"prompt": "a", "temperature": NaN}'),
        ("/v1/completions", b'{"prompt": "a", "seed": 1e400}'),
        ("/v1/completions", b'{"prompt": [[1, 2], "a"]}'),
        ("/v1/completions", b'{"prompt": "a", "stop": ["x", 3]}'),
        ("/v1/completions", b'{"prompt": "a", "n": 0}'),
        ("/v1/chat/completions", b'{"messages": []}'),
        ("/v1/chat/completions", b'{"messages": [{"role": "tool", "content": "x"}]}'),
        ("/v1/embeddings", b'{"input": []}'),
        ("/v1/embeddings", b'{"input": [-1]}'),
        ("/v1/neighbors", b'{"model": "vec", "positive": ["nosuchword"]}'),
        ("/v1/neighbors", b'{"model": "tiny", "positive": ["king"]}'),
    ]
    for path, body in cases:
        r = httpx.post(
            url + path, content=body, headers={**AUTH, "Content-Type": "application/json"}
        )
        assert 400 <= r.status_code < 500, (path, body, r.status_code, r.text)
        err = r.json()["error"]
        assert set(err) == {"message", "type", "param", "code"} and err["message"]
    assert httpx.get(url + "/v1/nowhere", headers=AUTH).json()["error"]["type"] == "not_found_error"
    assert httpx.get(url + "/health").status_code == 200
