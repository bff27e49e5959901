"""Model administration routes: list, load (another version or path) and unload."""

from __future__ import annotations

import os
import resource
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from shoplm.config import ConfigError, ServeConfig, load_serve_config
from shoplm.serving.errors import InvalidRequestError
from shoplm.serving.loading import ModelSourceError
from shoplm.serving.registry import ModelEntry
from shoplm.serving.state import ServerState, StateDep, read_api_keys, require_admin_key

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin_key)])


class LoadRequest(BaseModel):
    """Body of a load call; both fields are optional (default: the configured version)."""

    model_config = ConfigDict(extra="forbid")

    version: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    path: str | None = Field(None, min_length=1, description="A local checkpoint directory.")


def describe(entry: ModelEntry) -> dict[str, Any]:
    """What /admin/models reports for one model."""
    handle = entry.handle
    return {
        "name": entry.config.name,
        "task": entry.config.task,
        "state": entry.state.value,
        "version": handle.version if handle else None,
        "configured_version": entry.config.version,
        "source": str(handle.loaded.source.directory) if handle else entry.config.source,
        "device": str(handle.loaded.device) if handle else entry.config.device,
        "memory_bytes": handle.loaded.parameter_bytes if handle else 0,
        "queue_depth": handle.engine.queue_depth if handle else 0,
        "loaded_at": handle.loaded_at if handle else None,
        "card": handle.loaded.card if handle else None,
        "error": entry.error,
    }


def process_memory() -> dict[str, int]:
    """Resident and peak memory of the server process, in bytes."""
    with open("/proc/self/statm", encoding="ascii") as handle:
        resident_pages = int(handle.read().split()[1])
    page = os.sysconf("SC_PAGE_SIZE")
    return {
        "rss_bytes": resident_pages * page,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


@router.get("/models")
async def list_models(state: StateDep) -> dict[str, Any]:
    """Every configured model with its state, version and memory."""
    return {
        "models": [describe(entry) for entry in state.registry.entries.values()],
        "process": process_memory(),
    }


@router.post("/models/{name}/load")
async def load_model(name: str, state: StateDep, body: LoadRequest | None = None) -> dict[str, Any]:
    """Load ``name`` (optionally another version or a path) and swap it in once warmed up."""
    body = body or LoadRequest()
    state.registry.entry(name)  # 404 before any work
    path = Path(body.path) if body.path else None
    if path is not None and not path.is_absolute():
        raise InvalidRequestError("'path' must be an absolute directory path", param="path")
    try:
        entry = await state.registry.load(name, version=body.version, path=path)
    except ModelSourceError as error:
        raise InvalidRequestError(str(error), param="path" if path else "version") from None
    return describe(entry)


@router.post("/models/{name}/unload")
async def unload_model(name: str, state: StateDep) -> dict[str, Any]:
    """Finish in-flight requests of ``name`` and free its memory."""
    return describe(await state.registry.unload(name))


@router.post("/reload")
async def reload_config(state: StateDep) -> dict[str, Any]:
    """Re-read the serving config and apply it: changed models swap in without downtime."""
    if state.config_path is None:
        raise InvalidRequestError("the server was not started from a config file; nothing to reload")
    try:
        config = load_serve_config(state.config_path)
    except ConfigError as error:
        raise InvalidRequestError(str(error), param="config") from None
    return await apply_reload(state, config)


async def apply_reload(state: ServerState, config: ServeConfig) -> dict[str, Any]:
    """Apply ``config``'s models and keys; server-level settings need a restart."""
    restart_needed = config.server.model_dump(exclude={"watch_config", "watch_interval_s"}) != (
        state.config.server.model_dump(exclude={"watch_config", "watch_interval_s"})
    )
    state.api_keys = read_api_keys(config)
    summary: dict[str, Any] = await state.registry.apply_config(config)
    state.config = config
    summary["restart_needed_for_server_settings"] = restart_needed
    return summary
