"""Server settings and the guards around every request: API key, body size, CORS.

The API key is compared in constant time (``hmac.compare_digest``); the body-size limit is
enforced on the bytes actually received (a missing or lying ``Content-Length`` does not
get around it); CORS is off unless origins are given.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lmlab.serve.errors import APIError, error_body


@dataclass
class ServeSettings:
    api_key: str | None = None
    cors_origins: list[str] = field(default_factory=list)
    max_body_bytes: int = 1 << 20  # 1 MiB
    timeout_s: float = 300.0  # per request, queueing included
    max_tokens: int = 512  # the most new tokens one request gets (a request's max_tokens is capped)
    max_prompt_tokens: int = 8192  # for models without a context limit (RNN, n-gram, NPLM)
    max_embedding_inputs: int = 2048
    max_task_chars: int = 20_000  # longest text, question or context on /v1/classify, /v1/qa
    batch: bool = True  # batch concurrent requests through one forward where the family allows
    max_batch: int = 64  # rows per forward
    max_requests: int = 256  # requests in flight per model before 429
    batch_window_s: float = 0.004
    prefill_chunk: int = 256  # prompt tokens per forward for long prompts (0: all at once)
    threads: int | None = None  # torch intra-op threads; None: half the cores over the models


def check_api_key(settings: ServeSettings, authorization: str | None) -> None:
    """Raise a 401 unless the ``Authorization: Bearer KEY`` header carries the key."""
    if not settings.api_key:
        return
    given = ""
    if authorization:
        scheme, _, token = authorization.partition(" ")
        given = token.strip() if scheme.lower() == "bearer" else ""
    if not hmac.compare_digest(given.encode(), settings.api_key.encode()):
        raise APIError(
            401,
            "a valid API key is required: send the header 'Authorization: Bearer KEY'",
            "invalid_api_key",
        )


async def require_api_key(request: Request) -> None:
    """FastAPI dependency: the API key check for the ``/v1`` routes."""
    check_api_key(request.app.state.settings, request.headers.get("authorization"))


class BodyLimit:
    """ASGI middleware: answer 413 once a request body exceeds ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    await self._refuse(send)
                    return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            error_body(
                413,
                f"the request body is larger than {self.max_bytes} bytes; send less",
                "request_too_large",
            )
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLarge(HTTPException):
    """Raised from ``receive``; FastAPI passes HTTP exceptions through to the error handlers."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"the request body is larger than {max_bytes} bytes; send less")
