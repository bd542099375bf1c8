"""From the model's worker thread to the HTTP handler: token events as an async iterator.

:func:`token_events` submits one :class:`GenRequest` per prompt to the model's worker and
yields ``(prompt index, TokenEvent)`` pairs as the worker produces them. Leaving the
iterator early (the client went away, an error, a timeout) cancels the requests, and the
worker drops their rows at its next step.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request

from lmlab.errors import LmlabError
from lmlab.generate.engine import TokenEvent
from lmlab.generate.sampling import SamplingParams
from lmlab.serve.batcher import FINISHED, GenRequest, PromptScores, QueueFull, RequestTimeout
from lmlab.serve.errors import APIError, error_body
from lmlab.serve.registry import ServedModel


async def token_events(
    served: ServedModel,
    prompts: list[list[int]],
    params: SamplingParams,
    timeout_s: float,
    logprobs: bool = False,
    top_logprobs: int = 0,
    score_prompt: bool = False,
) -> AsyncIterator[tuple[int, TokenEvent | PromptScores]]:
    """``(prompt index, event)`` pairs: with ``score_prompt``, each prompt's
    :class:`PromptScores` first, then its :class:`TokenEvent` objects."""
    loop = asyncio.get_running_loop()
    q: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()
    deadline = time.monotonic() + timeout_s
    reqs: list[GenRequest] = []

    def emitter(k: int):
        return lambda item: loop.call_soon_threadsafe(q.put_nowait, (k, item))

    try:
        for k, ids in enumerate(prompts):
            req = GenRequest(ids, params, emitter(k), logprobs, top_logprobs, deadline,
                             score_prompt=score_prompt)  # fmt: skip
            try:
                served.worker.submit(req)
            except QueueFull as e:
                raise APIError(429, f"{e}; retry shortly", "rate_limit_exceeded") from None
            reqs.append(req)
        left = len(reqs)
        while left:
            k, item = await q.get()
            if item == FINISHED:
                left -= 1
            elif isinstance(item, (TokenEvent, PromptScores)):
                yield k, item
            elif isinstance(item, RequestTimeout):
                raise APIError(408, f"{item}; ask for fewer tokens", "timeout")
            elif isinstance(item, LmlabError):
                raise APIError(400, str(item), "invalid_value")
            elif isinstance(item, Exception):
                raise APIError(400, f"the model failed on this input: {item}", "model_error")
    finally:
        for r in reqs:
            r.cancelled.set()


async def collect(agen: AsyncIterator[Any], request: Request | None) -> list[Any]:
    """All items of ``agen``; stops (cancelling the generation) if the client disconnects."""
    items: list[Any] = []

    async def drain() -> None:
        async for item in agen:
            items.append(item)

    task = asyncio.ensure_future(drain())
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=0.25)
            if done:
                task.result()
                return items
            if request is not None and await request.is_disconnected():
                raise APIError(400, "the client disconnected", "client_disconnected")
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await agen.aclose()


def sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


SSE_DONE = "data: [DONE]\n\n"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse_error(e: APIError) -> str:
    return sse(error_body(e.status, e.message, e.code, e.param))


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


class Trim:
    """Strips a streamed reply's leading and trailing whitespace without buffering it all:
    leading whitespace is dropped, trailing whitespace is held until more text follows."""

    def __init__(self, on: bool) -> None:
        self.on, self.started, self.held = on, False, ""

    def push(self, text: str) -> str:
        if not self.on or not text:
            return text
        if not self.started:
            text = text.lstrip()
            if not text:
                return ""
            self.started = True
        text = self.held + text
        body = text.rstrip()
        self.held = text[len(body) :]
        return body
