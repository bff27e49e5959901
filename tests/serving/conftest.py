"""Fixtures shared by the KServe REST and gRPC tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.server import KEYED_API_KEY, ServerProcess
from tests.helpers.tiny_models import make_encoder


@pytest.fixture(scope="session")
def embedding_dim(tiny_models_root: Path) -> int:
    return int(json.loads((tiny_models_root / "embed" / "config.json").read_text())["hidden_size"])


@pytest.fixture(scope="session")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server that requires an API key, serving a tiny embedding model, an unloaded copy of it
    and a copy whose queue holds one input."""
    workdir = tmp_path_factory.mktemp("kserve-keyed")
    model = str(make_encoder(workdir / "embed", "embed"))
    config = {"server": {"model_repository": str(workdir / "repo")},
              "models": [{"name": "embed", "task": "embed", "source": model},
                         {"name": "idle", "task": "embed", "source": model, "load_on_start": False},
                         {"name": "tight", "task": "embed", "source": model, "batching": {"max_queue_size": 1}}]}
    with ServerProcess(workdir, config, env={"SHOPLM_API_KEYS": KEYED_API_KEY}) as server:
        yield server
