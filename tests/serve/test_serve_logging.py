"""Starting lmlab's server leaves the process's other logging alone."""

from __future__ import annotations

import io
import logging

import httpx
import pytest

from lmlab.serve.server import BackgroundServer, uvicorn_config


def _app():
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("boom")

    return app


def test_other_handlers_stay_open_when_a_server_starts(tmp_path) -> None:
    """uvicorn's own set-up (logging.config.dictConfig) closes every handler of the process
    first; absl's closes the stream it holds (in pytest, the capture file: the run crashed)."""
    log = logging.getLogger("lmlab-test-other")
    file_handler = logging.FileHandler(tmp_path / "other.log")
    log.addHandler(file_handler)
    absl_stream = io.StringIO()
    absl_logging = pytest.importorskip("absl.logging")
    absl_handler = absl_logging.PythonHandler(absl_stream)
    log.addHandler(absl_handler)
    try:
        uvicorn_config(_app(), "127.0.0.1", 0)
        with BackgroundServer(_app()):
            pass
        assert not absl_stream.closed
        log.warning("still here")
        file_handler.flush()
        assert "still here" in (tmp_path / "other.log").read_text()
    finally:
        log.removeHandler(file_handler)
        log.removeHandler(absl_handler)
        file_handler.close()


def test_server_errors_are_logged_to_the_current_stderr(capsys) -> None:
    with BackgroundServer(_app()) as srv:
        r = httpx.get(srv.url + "/boom", timeout=30)
    assert r.status_code == 500
    err = capsys.readouterr().err
    assert "Exception in ASGI application" in err and "RuntimeError: boom" in err
