"""The FastAPI application: OpenAI-compatible routes, health, models and the playground.

``create_app(registry, settings)`` wires the pieces: the API-key check on every ``/v1``
route, the body-size limit, optional CORS, OpenAI-shaped errors, and the static
playground at ``/``. The model workers start with the app and stop with it.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from lmlab import __version__
from lmlab.serve import completions, embeddings, errors, tasks
from lmlab.serve.limits import BodyLimit, ServeSettings, require_api_key
from lmlab.serve.registry import Registry
from lmlab.serve.schemas import ErrorResponse, Health, ModelCard, ModelList


def static_dir():
    return resources.files("lmlab.serve") / "static"


def create_app(registry: Registry, settings: ServeSettings | None = None) -> FastAPI:
    """The server for ``registry``'s models; workers run while the app's lifespan lasts."""
    settings = settings or ServeSettings()
    for m in registry.models.values():
        m.max_tokens = settings.max_tokens

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        registry.start_workers(
            batch=settings.batch,
            max_batch=settings.max_batch,
            window_s=settings.batch_window_s,
            prefill_chunk=settings.prefill_chunk,
            max_requests=settings.max_requests,
            threads=settings.threads,
        )
        try:
            yield
        finally:
            registry.close()

    app = FastAPI(
        title="lmlab server",
        version=__version__,
        description="OpenAI-compatible completions, chat completions and embeddings for "
        "lmlab runs, lmlab's /v1/classify and /v1/qa for task runs, and a web playground at /.",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's docs pages load their scripts from a CDN: off
        redoc_url=None,
    )
    app.state.registry, app.state.settings = registry, settings
    errors.install(app)
    auth = [Depends(require_api_key)]
    app.include_router(completions.router, dependencies=auth)
    app.include_router(embeddings.router, dependencies=auth)
    app.include_router(tasks.router, dependencies=auth)

    @app.get("/v1/models", response_model=ModelList, dependencies=auth,
             responses={401: {"model": ErrorResponse}}, summary="The served models")  # fmt: skip
    async def list_models() -> Any:
        return {"object": "list", "data": [m.card() for m in registry.models.values()]}

    @app.get("/v1/models/{model_id}", response_model=ModelCard, dependencies=auth,
             responses={401: {"model": ErrorResponse}, 404: {"model": ErrorResponse}},
             summary="One served model")  # fmt: skip
    async def get_model(model_id: str) -> Any:
        return registry.get(model_id).card()

    @app.get("/health", response_model=Health, summary="Liveness: the server and its models")
    async def health() -> Any:
        return {"status": "ok", "models": list(registry.models)}

    @app.get("/", include_in_schema=False)
    async def playground() -> FileResponse:
        return FileResponse(str(static_dir() / "index.html"), media_type="text/html")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:
        return FileResponse(str(static_dir() / "favicon.svg"), media_type="image/svg+xml")

    app.mount("/static", StaticFiles(directory=str(static_dir())), name="static")
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    return app
