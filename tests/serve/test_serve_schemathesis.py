"""Schemathesis against the live server's ``/openapi.json``: no input makes it answer 5xx."""

from __future__ import annotations

import pytest
from _serve_helpers import API_KEY
from hypothesis import HealthCheck, given, settings

schemathesis = pytest.importorskip("schemathesis")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_no_input_gives_a_server_error(server, mode: str) -> None:
    from schemathesis import GenerationMode

    url = server[0]
    schema = schemathesis.openapi.from_url(url + "/openapi.json")
    auth = {"Authorization": f"Bearer {API_KEY}"}
    failures: list[str] = []
    seen: dict[str, int] = {}
    # The OpenAI endpoints get their own examples, the rest of the API shares as many: one
    # draw over every operation could leave one of them out (the API keeps growing).
    core = "^/v1/(completions|chat/completions|embeddings)$"
    for part in (schema.include(path_regex=core), schema.exclude(path_regex=core)):
        strategy = part.as_strategy(generation_mode=GenerationMode(mode), headers=auth)

        @settings(max_examples=60, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(case=strategy)
        def check(case) -> None:
            r = case.call(base_url=url, headers=auth, timeout=30)
            key = f"{case.method} {case.path}"
            seen[key] = seen.get(key, 0) + 1
            if r.status_code >= 500:
                failures.append(f"{key} {case.body!r} -> {r.status_code} {r.text[:200]}")
            elif r.status_code >= 400:  # every refusal in OpenAI's error shape
                assert set(r.json()["error"]) == {"message", "type", "param", "code"}, r.text

        check()
    assert not failures, failures[:5]
    assert {"POST /v1/completions", "POST /v1/chat/completions", "POST /v1/embeddings"} <= set(seen)
    assert len(seen) > 3, seen  # and the rest of the API


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_task_endpoints_never_answer_5xx(task_server, mode: str) -> None:
    """/v1/classify with a real classifier and /v1/qa with a contract-honouring reader."""
    from schemathesis import GenerationMode

    url = task_server[0]
    schema = schemathesis.openapi.from_url(url + "/openapi.json").include(
        path_regex="^/v1/(classify|qa)$"
    )
    auth = {"Authorization": f"Bearer {API_KEY}"}
    failures: list[str] = []
    seen: dict[str, int] = {}
    strategy = schema.as_strategy(generation_mode=GenerationMode(mode), headers=auth)

    @settings(max_examples=60, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(case=strategy)
    def check(case) -> None:
        r = case.call(base_url=url, headers=auth, timeout=30)
        key = f"{case.method} {case.path}"
        seen[key] = seen.get(key, 0) + 1
        if r.status_code >= 500:
            failures.append(f"{key} {case.body!r} -> {r.status_code} {r.text[:200]}")
        elif r.status_code >= 400:
            assert set(r.json()["error"]) == {"message", "type", "param", "code"}, r.text

    check()
    assert not failures, failures[:5]
    assert {"POST /v1/classify", "POST /v1/qa"} <= set(seen)
