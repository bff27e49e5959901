"""Shared server state and the FastAPI dependencies that hand it to routes."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from shoplm.config import ServeConfig, env_settings, read_key_file
from shoplm.serving.errors import AuthenticationError
from shoplm.serving.metrics import ServerMetrics
from shoplm.serving.registry import ModelRegistry
from shoplm.serving.service import InferenceService


@dataclass
class ApiKeys:
    """Accepted bearer tokens; an empty set for a scope means that scope is open."""

    inference: frozenset[str] = field(default_factory=frozenset)
    admin: frozenset[str] = field(default_factory=frozenset)

    def allows(self, token: str | None, *, admin: bool) -> bool:
        accepted = (self.admin or self.inference) if admin else (self.inference | self.admin)
        if not accepted:
            return True
        return token is not None and any(hmac.compare_digest(token, key) for key in accepted)


@dataclass
class ServerState:
    """Everything the routes share, created once per server process."""

    config: ServeConfig
    metrics: ServerMetrics
    registry: ModelRegistry
    service: InferenceService
    api_keys: ApiKeys
    config_path: Path | None = None


def read_api_keys(config: ServeConfig) -> ApiKeys:
    """Keys from SHOPLM_API_KEYS / SHOPLM_ADMIN_API_KEYS and the files named in the config."""
    env = env_settings()
    auth = config.auth
    return ApiKeys(
        inference=frozenset(env.api_keys) | _keys_in(auth.api_keys_file, "auth.api_keys_file"),
        admin=frozenset(env.admin_api_keys) | _keys_in(auth.admin_api_keys_file, "auth.admin_api_keys_file"),
    )


def _keys_in(path: Path | None, field: str) -> frozenset[str]:
    return frozenset() if path is None else read_key_file(path, field)


# Dependencies are async on purpose: FastAPI runs plain-def dependencies in a thread pool,
# a thread hop per dependency per request.
async def server_state(request: Request) -> ServerState:
    return _state(request)


def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.shoplm
    return state


async def inference_service(request: Request) -> InferenceService:
    return _state(request).service


StateDep = Annotated[ServerState, Depends(server_state)]
ServiceDep = Annotated[InferenceService, Depends(inference_service)]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def require_api_key(request: Request) -> None:
    """Inference routes: a configured inference or admin key, when keys are configured."""
    if not _state(request).api_keys.allows(_bearer(request), admin=False):
        raise AuthenticationError("missing or invalid API key; send 'Authorization: Bearer <key>'")


async def require_admin_key(request: Request) -> None:
    """Admin routes: an admin key (or, when none are configured, an inference key)."""
    if not _state(request).api_keys.allows(_bearer(request), admin=True):
        raise AuthenticationError("missing or invalid admin API key; send 'Authorization: Bearer <key>'")


def note_model(request: Request, model: str, version: str) -> None:
    """Record which model version answered, for the request log and metrics."""
    request.state.model = model
    request.state.model_version = version
