"""Shared fixtures: a session-wide model server with tiny models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.server import ServerProcess
from tests.helpers.tiny_models import tiny_model_configs


@pytest.fixture(scope="session")
def tiny_models_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny-models")


@pytest.fixture(scope="session")
def tiny_server(tmp_path_factory: pytest.TempPathFactory, tiny_models_root: Path) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("tiny-server")
    config = {
        "server": {"model_repository": str(workdir / "repo"), "request_timeout_s": 30},
        "models": tiny_model_configs(tiny_models_root),
    }
    with ServerProcess(workdir, config) as server:
        yield server
