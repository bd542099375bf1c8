"""Every failure as OpenAI's error JSON: ``{"error": {"message", "type", "param", "code"}}``.

Bad input gives a 4xx (validation errors included: 400, as OpenAI answers), never a 500
and never a crash; anything unexpected is logged and answered with a 500 in the same shape.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from lmlab.errors import LmlabError

log = logging.getLogger("lmlab.serve")

TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
}


class APIError(Exception):
    """An error to answer with ``status`` and OpenAI's error body."""

    def __init__(
        self, status: int, message: str, code: str | None = None, param: str | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param


def error_body(status: int, message: str, code: str | None = None, param: str | None = None):
    kind = TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error_response(
    status: int, message: str, code: str | None = None, param: str | None = None, headers=None
) -> JSONResponse:
    return JSONResponse(error_body(status, message, code, param), status, headers=headers)


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    errs = exc.errors()
    if not errs:
        return "invalid request", None
    first = errs[0]
    if first.get("type") == "json_invalid":
        return "the request body is not valid JSON", None
    # pydantic names the union member it tried ('str', 'list[int]'): not a field, leave it out
    loc = [
        str(x)
        for x in first.get("loc", ())
        if x != "body" and not (isinstance(x, str) and ("[" in x or x in _TYPE_TAGS))
    ]
    param = loc[0] if loc else None
    msg = first.get("msg", "invalid value")
    more = f" (and {len(errs) - 1} more problems)" if len(errs) > 1 else ""
    return (f"{'.'.join(loc)}: {msg}" if loc else msg) + more, param


_TYPE_TAGS = {"str", "int", "float", "bool", "dict", "list", "function-after", "literal"}


def install(app: FastAPI) -> None:
    """Register the handlers that turn every exception into OpenAI's error shape."""

    @app.exception_handler(APIError)
    async def _api(request: Request, exc: APIError):
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return error_response(exc.status, exc.message, exc.code, exc.param, headers)

    @app.exception_handler(LmlabError)
    async def _lmlab(request: Request, exc: LmlabError):
        return error_response(400, str(exc), "invalid_value")

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        msg, param = _validation_message(exc)
        return error_response(400, msg, "invalid_request", param)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        msg = exc.detail if isinstance(exc.detail, str) else "request failed"
        return error_response(exc.status_code, msg, None, None, exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, f"internal error: {type(exc).__name__}", "internal_error")
