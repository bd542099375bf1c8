"""Running the app under uvicorn: in the foreground (``lmlab serve``) or in a background
thread on a free port (tests, benchmarks, notebooks)."""

from __future__ import annotations

import logging
import sys
import threading
import time

import uvicorn
from fastapi import FastAPI


def uvicorn_config(
    app: FastAPI, host: str, port: int, log_level: str = "warning"
) -> uvicorn.Config:
    """uvicorn's settings for lmlab's server; its loggers get lmlab's handlers
    (:func:`uvicorn_logging`) instead of uvicorn's ``logging.config.dictConfig``."""
    uvicorn_logging()
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=5,
        access_log=log_level in ("info", "debug", "trace"),
    )


class _StderrHandler(logging.StreamHandler):
    """Writes to ``sys.stderr`` (or ``sys.stdout``) as it is when a record comes, not as it
    was when the server started (a notebook's or a test's stream may be replaced since)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self._name = name

    @property
    def stream(self):  # noqa: D102
        return getattr(sys, self._name)

    @stream.setter
    def stream(self, value) -> None:
        pass


def uvicorn_logging() -> None:
    """Give uvicorn's loggers the handlers and formats of uvicorn's default configuration,
    once per process. uvicorn would install them with ``logging.config.dictConfig``, which
    first closes every other handler of the process, and some close their stream there
    (absl's, imported by rouge-score, closes the ``sys.stderr`` it started with: in pytest
    that was its capture file, and the whole run crashed)."""
    from uvicorn.logging import AccessFormatter, DefaultFormatter

    for name, stream, fmt in (
        ("uvicorn", "stderr", DefaultFormatter("%(levelprefix)s %(message)s", use_colors=None)),
        ("uvicorn.access", "stdout", AccessFormatter(
            '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s')),
    ):  # fmt: skip
        log = logging.getLogger(name)
        if not any(isinstance(h, _StderrHandler) for h in log.handlers):
            handler = _StderrHandler(stream)
            handler.setFormatter(fmt)
            log.addHandler(handler)
        log.propagate = False
        if log.level == logging.NOTSET:
            log.setLevel(logging.INFO)


class BackgroundServer:
    """``with BackgroundServer(app) as srv: httpx.get(srv.url + "/health")``."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = uvicorn.Server(uvicorn_config(app, host, port))
        self.thread = threading.Thread(target=self.server.run, name="lmlab-uvicorn", daemon=True)
        self.host, self.port = host, port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        self.thread.start()
        until = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > until:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
