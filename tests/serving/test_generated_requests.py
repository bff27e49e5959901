"""Requests generated from the server's OpenAPI document (schemathesis): none gets a 5xx.

The schemathesis command sends examples, boundary values (say a ``top_p`` just above 0, or an
empty tensor), random valid and invalid bodies, wrong methods and request sequences to every
route the document lists. ``schemathesis_hooks.py`` points most of them at the served models.
The admin routes unload models, so they get a server of their own, which must still answer after.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.helpers.server import ServerProcess
from tests.helpers.tiny_models import tiny_model_configs

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]


def run_schemathesis(server: ServerProcess, workdir: Path, *paths: str) -> str:
    """Run the schemathesis command on ``server``'s routes matching ``paths``; its report, after
    asserting that no request got a 5xx."""
    command = [
        str(Path(sys.executable).with_name("st")), "run", f"{server.http_url}/openapi.json", *paths,
        "--checks", "not_a_server_error", "--max-examples", "50", "--request-timeout", "60", "--no-color",
    ]
    environment = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.serving.schemathesis_hooks",
                   "PYTHONPATH": str(REPOSITORY_ROOT)}

    finished = subprocess.run(command, cwd=workdir, env=environment, capture_output=True, text=True, timeout=900)

    report = finished.stdout + finished.stderr
    assert finished.returncode == 0, report[-6000:]
    assert "generated" in report and "passed" in report, report[-3000:]
    return report


def test_no_generated_request_gets_a_server_error(tiny_server: ServerProcess, tmp_path: Path) -> None:
    run_schemathesis(tiny_server, tmp_path, "--exclude-path-regex", "^/admin")


def test_no_generated_admin_request_gets_a_server_error(tiny_models_root: Path, tmp_path: Path) -> None:
    config = {"server": {"model_repository": str(tmp_path / "repo"), "request_timeout_s": 30},
              "models": tiny_model_configs(tiny_models_root)}
    with ServerProcess(tmp_path, config) as server:
        report = run_schemathesis(server, tmp_path, "--include-path-regex", "^/admin")

        assert "Tested: 4" in report  # list, load, unload, reload
        assert httpx.get(f"{server.http_url}/v2/health/live", timeout=10).status_code == 200
        reloaded = httpx.post(f"{server.http_url}/admin/reload", timeout=120)
        assert reloaded.status_code == 200, reloaded.text
        loaded = httpx.post(f"{server.http_url}/admin/models/embed/load", json={}, timeout=120)  # if unloaded
        assert loaded.status_code == 200, loaded.text
        embedded = httpx.post(f"{server.http_url}/v1/embeddings", json={"model": "embed", "input": ["red shoes"]},
                              timeout=60)
        assert embedded.status_code == 200, embedded.text
