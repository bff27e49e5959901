"""A session-wide model server with tiny models, shared by the serving tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.server import ServerProcess
from tests.helpers.tiny_models import make_causal_lm, make_encoder


def tiny_model_configs(root: Path) -> list[dict[str, Any]]:
    """Serve-config entries for the four tiny models, built under ``root``."""
    fast = {"max_queue_delay_ms": 5}
    return [
        {"name": "embed", "task": "embed", "source": str(make_encoder(root / "embed", "embed")), "batching": fast},
        {"name": "classify", "task": "classify", "source": str(make_encoder(root / "classify", "classify")),
         "batching": fast},
        {"name": "fill", "task": "fill-mask", "source": str(make_encoder(root / "fill", "fill-mask"))},
        {"name": "gen", "task": "generate", "source": str(make_causal_lm(root / "gen")),
         "limits": {"max_input_tokens": 128, "max_new_tokens": 64, "default_max_new_tokens": 16},
         "preprocessing": {"normalize": {"collapse_whitespace": False}}},
    ]


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
