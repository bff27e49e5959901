"""The model server's FastAPI application: front ends, health, metrics, admin."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shoplm import __version__
from shoplm.config import ServeConfig
from shoplm.serving import admin, error_bodies
from shoplm.serving.kserve.routes import router as kserve_router
from shoplm.serving.metrics import ServerMetrics
from shoplm.serving.middleware import RequestContextMiddleware
from shoplm.serving.openai.routes import router as openai_router
from shoplm.serving.registry import ModelRegistry
from shoplm.serving.service import InferenceService
from shoplm.serving.state import ServerState, read_api_keys


def build_state(config: ServeConfig, config_path: Path | None = None) -> ServerState:
    """The registry, service and metrics one server process shares across protocols."""
    metrics = ServerMetrics()
    registry = ModelRegistry(config, metrics)
    service = InferenceService(registry, config.server.request_timeout_s)
    return ServerState(config, metrics, registry, service, read_api_keys(config), config_path)


def create_app(state: ServerState, *, manage_models: bool = True) -> FastAPI:
    """The HTTP app; with ``manage_models`` its lifespan loads and unloads the models."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if manage_models:
            await state.registry.load_startup_models()
        yield
        if manage_models:
            await state.registry.close()

    app = FastAPI(title="shoplm model server", version=__version__, lifespan=lifespan)
    app.state.shoplm = state
    error_bodies.install(app)
    app.add_middleware(
        RequestContextMiddleware, metrics=state.metrics, max_body_bytes=state.config.server.max_body_bytes
    )
    app.include_router(openai_router)
    app.include_router(kserve_router)
    app.include_router(admin.router)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/health", tags=["health"])
    async def health() -> dict[str, Any]:
        """Liveness plus each model's state (always public)."""
        models = {name: entry.state.value for name, entry in state.registry.entries.items()}
        return {"status": "ok", "models": models}

    return app
