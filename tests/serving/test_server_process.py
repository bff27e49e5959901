"""Server-wide behaviour: auth, admin, full queues, batching metrics, logs, graceful stop."""

from __future__ import annotations

import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from tests.helpers.server import ServerProcess
from tests.helpers.tiny_models import tiny_model_configs


def metric_value(metrics_text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    for line in metrics_text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture(scope="module")
def secured_server(tmp_path_factory: pytest.TempPathFactory, tiny_models_root: Path):
    workdir = tmp_path_factory.mktemp("secured")
    models = [m for m in tiny_model_configs(tiny_models_root) if m["name"] in ("embed", "gen")]
    env = {"SHOPLM_API_KEYS": "inference-key", "SHOPLM_ADMIN_API_KEYS": "admin-key"}
    with ServerProcess(workdir, {"models": models}, env=env) as server:
        yield server


def test_inference_routes_need_a_valid_key(secured_server: ServerProcess) -> None:
    url = f"{secured_server.http_url}/v1/models"

    missing = httpx.get(url)
    wrong = httpx.get(url, headers={"Authorization": "Bearer nope"})
    right = httpx.get(url, headers={"Authorization": "Bearer inference-key"})
    admin_key_works_too = httpx.get(url, headers={"Authorization": "Bearer admin-key"})

    assert (missing.status_code, wrong.status_code, right.status_code) == (401, 401, 200)
    assert admin_key_works_too.status_code == 200
    assert "API key" in missing.json()["error"]["message"]


def test_health_and_metrics_stay_public(secured_server: ServerProcess) -> None:
    assert httpx.get(f"{secured_server.http_url}/health").status_code == 200
    assert httpx.get(f"{secured_server.http_url}/v2/health/ready").status_code == 200
    assert httpx.get(f"{secured_server.http_url}/metrics").status_code == 200


def test_admin_routes_need_the_admin_key(secured_server: ServerProcess) -> None:
    url = f"{secured_server.http_url}/admin/models"

    with_inference_key = httpx.get(url, headers={"Authorization": "Bearer inference-key"})
    with_admin_key = httpx.get(url, headers={"Authorization": "Bearer admin-key"})

    assert with_inference_key.status_code == 401
    assert with_admin_key.status_code == 200
    assert {m["name"] for m in with_admin_key.json()["models"]} == {"embed", "gen"}


def test_openai_client_with_wrong_key_gets_authentication_error(secured_server: ServerProcess) -> None:
    client = openai.OpenAI(base_url=f"{secured_server.http_url}/v1", api_key="wrong", max_retries=0)
    good = openai.OpenAI(base_url=f"{secured_server.http_url}/v1", api_key="inference-key", max_retries=0)

    with pytest.raises(openai.AuthenticationError):
        client.embeddings.create(model="embed", input="x")
    assert len(good.embeddings.create(model="embed", input="x").data[0].embedding) == 32


def test_request_id_is_echoed_and_logged_as_json(tiny_server: ServerProcess) -> None:
    response = httpx.post(
        f"{tiny_server.http_url}/v1/embeddings", json={"model": "embed", "input": "x"},
        headers={"X-Request-ID": "test-req-42"},
    )
    generated = httpx.get(f"{tiny_server.http_url}/v1/models")

    assert response.headers["x-request-id"] == "test-req-42"
    assert re.fullmatch(r"[0-9a-f]{32}", generated.headers["x-request-id"])
    lines = [json.loads(line) for line in tiny_server.log_text().splitlines() if "test-req-42" in line]
    assert len(lines) == 1
    assert lines[0]["route"] == "/v1/embeddings"
    assert lines[0]["status"] == 200
    assert lines[0]["model"] == "embed"
    assert lines[0]["model_version"] == "1"


def test_concurrent_load_forms_batches_larger_than_one(tiny_server: ServerProcess) -> None:
    before = httpx.get(f"{tiny_server.http_url}/metrics").text
    body = {"model": "classify", "input": "great product"}

    def call(_: int) -> int:
        with httpx.Client() as client:
            return sum(
                client.post(f"{tiny_server.http_url}/v1/embeddings", json={**body, "model": "embed"}).status_code
                == 200
                for _ in range(10)
            )

    with ThreadPoolExecutor(16) as pool:
        successes = sum(pool.map(call, range(16)))

    after = httpx.get(f"{tiny_server.http_url}/metrics").text
    batches = metric_value(after, "shoplm_batch_size_count", model="embed") - metric_value(
        before, "shoplm_batch_size_count", model="embed"
    )
    inputs = metric_value(after, "shoplm_batch_size_sum", model="embed") - metric_value(
        before, "shoplm_batch_size_sum", model="embed"
    )
    assert successes == 160
    assert inputs == 160
    assert batches < inputs  # at least one forward pass carried more than one input
    assert metric_value(after, "shoplm_queue_depth", model="embed") == 0


def test_metrics_cover_requests_latency_tokens_and_loads(tiny_server: ServerProcess) -> None:
    client = openai.OpenAI(base_url=f"{tiny_server.http_url}/v1", api_key="x", max_retries=0)
    list(client.completions.create(model="gen", prompt="red", max_tokens=4, stream=True, temperature=0))

    text = httpx.get(f"{tiny_server.http_url}/metrics").text

    assert metric_value(text, "shoplm_requests_total", model="gen", route="/v1/completions", status="200") >= 1
    for name in ("shoplm_request_latency_seconds_count", "shoplm_queue_time_seconds_count",
                 "shoplm_compute_time_seconds_count", "shoplm_time_to_first_token_seconds_count",
                 "shoplm_prompt_tokens_total", "shoplm_generation_tokens_total"):
        assert metric_value(text, name, model="gen") > 0, name
    assert metric_value(text, "shoplm_model_events_total", model="gen", event="loaded") == 1
    assert "shoplm_inter_token_latency_seconds_bucket" in text


def test_full_queue_answers_429_with_retry_after(tmp_path: Path, tiny_models_root: Path) -> None:
    gen = next(m for m in tiny_model_configs(tiny_models_root) if m["name"] == "gen")
    gen = {**gen, "batching": {"max_num_seqs": 1, "max_queue_size": 1},
           "limits": {"max_new_tokens": 4000, "max_input_tokens": 128}}
    long_body = {"model": "gen", "prompt": "red", "max_tokens": 1500, "stream": True}

    with ServerProcess(tmp_path, {"models": [gen]}) as server:
        statuses: list[int] = []
        retry_after: list[str] = []
        lock = threading.Lock()

        start_together = threading.Barrier(8)

        def call(_: int) -> None:
            start_together.wait()
            with httpx.stream("POST", f"{server.http_url}/v1/completions", json=long_body, timeout=120) as response:
                response.read()
                with lock:
                    statuses.append(response.status_code)
                    if response.status_code == 429:
                        retry_after.append(response.headers["retry-after"])

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(call, range(8)))
        # Two choices never fit a queue of one, even an empty one: all of a request's choices or none.
        two_choices = httpx.post(f"{server.http_url}/v1/completions", timeout=60,
                                 json={"model": "gen", "prompt": "red", "max_tokens": 4, "n": 2})
        healthy = httpx.get(f"{server.http_url}/v2/health/ready").status_code

    assert statuses.count(429) >= 1
    assert set(statuses) <= {200, 429}
    assert all(int(value) >= 1 for value in retry_after)
    assert two_choices.status_code == 429 and "queue is full" in two_choices.json()["error"]["message"]
    assert healthy == 200


def test_sigterm_lets_an_in_flight_stream_finish(tmp_path: Path, tiny_models_root: Path) -> None:
    gen = next(m for m in tiny_model_configs(tiny_models_root) if m["name"] == "gen")
    gen = {**gen, "limits": {"max_new_tokens": 2000, "max_input_tokens": 128, "default_max_new_tokens": 16}}
    # A grace period far longer than the stream takes on a slow, busy machine: the test is about
    # the stream finishing after SIGTERM, not about the default 30 s.
    grace_s = 600
    config = {"server": {"shutdown_grace_s": grace_s}, "models": [gen]}
    server = ServerProcess(tmp_path, config).start()
    body = {"model": "gen", "prompt": "red", "max_tokens": 1500, "stream": True, "temperature": 0}
    events: list[str] = []

    with httpx.stream("POST", f"{server.http_url}/v1/completions", json=body, timeout=grace_s) as response:
        lines = response.iter_lines()
        events.append(next(lines))  # the stream is under way
        stopper = threading.Thread(target=server.terminate, kwargs={"timeout_s": grace_s})
        stopper.start()
        events.extend(line for line in lines if line)
    stopper.join()

    assert events[-1] == "data: [DONE]"
    payloads = [json.loads(e.removeprefix("data: ")) for e in events if e.startswith("data: {")]
    assert payloads[-1]["choices"][0]["finish_reason"] in {"stop", "length"}
    assert server.process is not None and server.process.returncode == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.http_url}/health")


def test_request_past_the_timeout_is_504_and_the_server_goes_on(tmp_path: Path, tiny_models_root: Path) -> None:
    gen = next(m for m in tiny_model_configs(tiny_models_root) if m["name"] == "gen")
    gen = {**gen, "limits": {"max_new_tokens": 2000, "max_input_tokens": 128, "default_max_new_tokens": 16}}
    config = {"server": {"request_timeout_s": 0.3}, "models": [gen]}
    long = {"model": "gen", "prompt": "red", "max_tokens": 2000, "temperature": 0}

    with ServerProcess(tmp_path, config) as server:
        timed_out = httpx.post(f"{server.http_url}/v1/completions", json=long, timeout=60)
        with httpx.stream("POST", f"{server.http_url}/v1/completions", json={**long, "stream": True},
                          timeout=60) as stream:
            events = [line for line in stream.iter_lines() if line.startswith("data: {")]
        short = httpx.post(f"{server.http_url}/v1/completions", json={**long, "max_tokens": 2}, timeout=60)

    assert timed_out.status_code == 504
    assert "request_timeout_s (0.3 s)" in timed_out.json()["error"]["message"]
    assert json.loads(events[-1].removeprefix("data: "))["error"]["code"] == 504
    assert short.status_code == 200


def test_a_model_that_cannot_load_is_reported_and_the_others_serve(tmp_path: Path, tiny_models_root: Path) -> None:
    embed = next(m for m in tiny_model_configs(tiny_models_root) if m["name"] == "embed")
    broken = {"name": "broken", "task": "classify", "source": str(tmp_path / "no-such-checkpoint")}

    server = ServerProcess(tmp_path, {"models": [embed, broken]}).start(ready_path="/v2/health/live")
    try:
        for _ in range(100):  # the server is live at once; models load in the background
            listing = {m["name"]: m for m in httpx.get(f"{server.http_url}/admin/models").json()["models"]}
            if listing["broken"]["state"] == "failed" and listing["embed"]["state"] == "ready":
                break
            time.sleep(0.1)
        ready = httpx.get(f"{server.http_url}/v2/health/ready")
        call_broken = httpx.post(f"{server.http_url}/v2/models/broken/infer",
                                 json={"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["x"]}]})
        call_embed = httpx.post(f"{server.http_url}/v1/embeddings", json={"model": "embed", "input": "x"})

    finally:
        server.terminate()

    assert listing["broken"]["state"] == "failed"
    assert str(tmp_path / "no-such-checkpoint") in listing["broken"]["error"]
    assert ready.status_code == 503
    assert "broken" in ready.json()["error"]
    assert (call_broken.status_code, call_broken.json()) == (
        503, {"error": "model 'broken' failed to load; GET /admin/models shows why"})
    assert call_embed.status_code == 200


def test_a_stream_whose_client_disconnects_frees_its_slot(tmp_path: Path, tiny_models_root: Path) -> None:
    gen = next(m for m in tiny_model_configs(tiny_models_root) if m["name"] == "gen")
    gen = {**gen, "batching": {"max_num_seqs": 1, "max_queue_size": 4},
           "limits": {"max_new_tokens": 2000, "max_input_tokens": 128}}
    endless = {"model": "gen", "prompt": "red", "max_tokens": 2000, "stream": True, "ignore_eos": True}

    with ServerProcess(tmp_path, {"models": [gen]}) as server:
        with httpx.stream("POST", f"{server.http_url}/v1/completions", json=endless, timeout=60) as response:
            lines = response.iter_lines()
            first = next(line for line in lines if line.startswith("data: {"))
        # The only slot was held by the stream just closed; the next request must get it.
        short = httpx.post(f"{server.http_url}/v1/completions",
                           json={**endless, "stream": False, "max_tokens": 3}, timeout=60)
        metrics = httpx.get(f"{server.http_url}/metrics").text

    assert json.loads(first.removeprefix("data: "))["choices"][0]["finish_reason"] is None
    assert short.status_code == 200
    assert short.json()["usage"]["completion_tokens"] <= 3
    # The abandoned stream stopped long before its 2000 tokens.
    assert metric_value(metrics, "shoplm_generation_tokens_total", model="gen") < 1500
