"""Model administration: list, unload (memory freed), load another version or path."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.helpers.server import ServerProcess
from tests.helpers.tiny_models import make_encoder, tiny_model_configs


@pytest.fixture()
def admin_server(tmp_path: Path, tiny_models_root: Path):
    models = [m for m in tiny_model_configs(tiny_models_root) if m["name"] in ("embed", "classify")]
    with ServerProcess(tmp_path, {"server": {"model_repository": str(tmp_path / "repo")}, "models": models}) as server:
        yield server


def embed(server: ServerProcess, text: str = "red shoes") -> httpx.Response:
    return httpx.post(f"{server.http_url}/v1/embeddings", json={"model": "embed", "input": text}, timeout=30)


def test_list_reports_state_version_and_memory(admin_server: ServerProcess) -> None:
    listing = httpx.get(f"{admin_server.http_url}/admin/models").json()

    by_name = {m["name"]: m for m in listing["models"]}
    assert by_name["embed"]["state"] == "ready"
    assert by_name["embed"]["version"] == "1"
    assert by_name["embed"]["task"] == "embed"
    assert by_name["embed"]["memory_bytes"] > 10_000
    assert listing["process"]["rss_bytes"] > 0


def test_unload_stops_serving_and_load_brings_it_back(admin_server: ServerProcess) -> None:
    unloaded = httpx.post(f"{admin_server.http_url}/admin/models/embed/unload").json()
    while_unloaded = embed(admin_server)
    ready_while_unloaded = httpx.get(f"{admin_server.http_url}/v2/models/embed/ready").status_code
    reloaded = httpx.post(f"{admin_server.http_url}/admin/models/embed/load", timeout=60).json()

    assert (unloaded["state"], unloaded["memory_bytes"]) == ("unloaded", 0)
    assert while_unloaded.status_code == 503
    assert "unloaded" in while_unloaded.json()["error"]["message"]
    assert ready_while_unloaded == 503
    assert reloaded["state"] == "ready"
    assert embed(admin_server).status_code == 200


def test_load_a_new_version_from_the_repository(admin_server: ServerProcess, tmp_path: Path) -> None:
    make_encoder(tmp_path / "repo" / "embed" / "2", "embed", seed=5)
    before = embed(admin_server).json()["data"][0]["embedding"]

    loaded = httpx.post(f"{admin_server.http_url}/admin/models/embed/load", json={"version": "2"}, timeout=60)
    after = embed(admin_server).json()["data"][0]["embedding"]
    models = httpx.get(f"{admin_server.http_url}/v1/models").json()["data"]

    assert loaded.status_code == 200, loaded.text
    assert loaded.json()["version"] == "2"
    assert after != before
    assert next(m for m in models if m["id"] == "embed")["version"] == "2"


def test_load_from_an_explicit_path(admin_server: ServerProcess, tmp_path: Path) -> None:
    directory = make_encoder(tmp_path / "elsewhere", "embed", seed=9)

    loaded = httpx.post(
        f"{admin_server.http_url}/admin/models/embed/load", json={"path": str(directory), "version": "9"}, timeout=60
    )

    assert loaded.status_code == 200, loaded.text
    assert (loaded.json()["version"], loaded.json()["source"]) == ("9", str(directory))


@pytest.mark.parametrize(
    ("name", "body", "status", "words"),
    [
        ("nope", {}, 404, ["nope"]),
        ("embed", {"version": "77"}, 400, ["not found", "77"]),
        ("embed", {"path": "/does/not/exist"}, 400, ["/does/not/exist"]),
        ("embed", {"path": "relative/dir"}, 400, ["absolute"]),
        ("embed", {"version": "../../etc"}, 400, ["version"]),
        ("embed", {"colour": "red"}, 400, ["colour"]),
    ],
)
def test_bad_load_requests_leave_the_model_serving(
    admin_server: ServerProcess, name: str, body: dict, status: int, words: list[str]
) -> None:
    response = httpx.post(f"{admin_server.http_url}/admin/models/{name}/load", json=body, timeout=60)

    assert response.status_code == status, response.text
    for word in words:
        assert word in response.json()["error"]["message"]
    assert embed(admin_server).status_code == 200
