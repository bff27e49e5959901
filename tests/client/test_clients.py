"""The Python SDK against a real server: HTTP (sync, async) and gRPC, errors and retries."""

from __future__ import annotations

import asyncio
import re
import threading
from pathlib import Path

import numpy as np
import pytest

from shoplm.client import (
    AsyncModelClient,
    GrpcModelClient,
    ModelClient,
    ModelServerError,
    ModelServerUnavailable,
)
from shoplm.client.grpc import checked_grpc_address
from tests.helpers.server import ServerProcess, free_port
from tests.helpers.tiny_models import tiny_model_configs


def test_http_client_covers_chat_completion_embeddings_and_classification(tiny_server: ServerProcess) -> None:
    with ModelClient(tiny_server.http_url) as client:
        chat = client.chat("gen", [{"role": "user", "content": "red shoes"}], max_tokens=8, temperature=0)
        streamed = "".join(client.stream_chat("gen", [{"role": "user", "content": "red shoes"}], max_tokens=8,
                                              temperature=0))
        completion = client.complete("gen", "blue", max_tokens=4, temperature=0)
        choices = client.complete("gen", "blue", max_tokens=4, temperature=1.0, seed=3, n=3)
        vectors = client.embed("embed", ["a", "b", "c"])
        labels = client.classify("classify", ["great product", "terrible"])
        ready = client.ready(), client.ready("embed"), client.ready("missing")

    assert streamed == chat.text
    assert chat.model_version == "1"
    assert completion.completion_tokens <= 4 and completion.texts == (completion.text,)
    assert len(choices.texts) == 3 and choices.text == choices.texts[0] and choices.completion_tokens <= 12
    assert vectors.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert [c.label in {"negative", "positive"} for c in labels] == [True, True]
    assert all(abs(sum(c.probabilities) - 1) < 1e-5 and c.score == max(c.probabilities) for c in labels)
    assert ready == (True, True, False)


def test_http_client_raises_named_errors(tiny_server: ServerProcess) -> None:
    with ModelClient(tiny_server.http_url, max_retries=0) as client:
        with pytest.raises(ModelServerError) as missing:
            client.embed("missing", ["x"])
        with pytest.raises(ModelServerError) as empty:
            client.embed("embed", [""])

    assert (missing.value.status_code, empty.value.status_code) == (404, 400)
    assert "missing" in missing.value.message
    assert missing.value.request_id


def test_async_client_runs_concurrent_calls(tiny_server: ServerProcess) -> None:
    async def run() -> list[np.ndarray]:
        async with AsyncModelClient(tiny_server.http_url) as client:
            return await asyncio.gather(*(client.embed("embed", [f"text {i}"]) for i in range(12)))

    results = asyncio.run(run())

    assert [r.shape for r in results] == [(1, 32)] * 12


def test_unreachable_server_is_model_server_unavailable() -> None:
    with ModelClient(f"http://127.0.0.1:{free_port()}", timeout=2, max_retries=1) as client:
        with pytest.raises(ModelServerUnavailable) as error:
            client.models()
        assert client.ready() is False

    assert error.value.status_code == 0
    assert str(error.value).startswith("model server unreachable: ")  # no status code to show


@pytest.mark.parametrize("url", ["localhost:8100", "ftp://host", "http://", ""])
def test_a_base_url_that_is_not_http_is_refused_at_once(url: str) -> None:
    for client_class in (ModelClient, AsyncModelClient):
        with pytest.raises(ValueError, match="base_url must be an http:// or https:// URL with a host"):
            client_class(url)


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("http://127.0.0.1:8101", "a gRPC address has no scheme"),
        ("127.0.0.1", "no port given"),
        ("", "no port given"),
        (":8101", "no host given"),
        ("no such host:8101", "the host has spaces"),
        ("127.0.0.1:99999", "the port must be a number from 1 to 65535"),  # gRPC would dial 34463
        ("127.0.0.1:0", "the port must be a number from 1 to 65535"),
        ("localhost:abc", "the port must be a number from 1 to 65535"),
    ],
)
def test_a_grpc_address_that_is_not_host_port_is_refused_at_once(address: str, problem: str) -> None:
    with pytest.raises(ValueError, match=f"address must be host:port, e.g. 127.0.0.1:8101; {problem}: "):
        GrpcModelClient(address)


@pytest.mark.parametrize("address", ["localhost:8101", "[::1]:8101", "unix:/tmp/shoplm.sock", "dns:///localhost:8101"])
def test_grpc_addresses_that_grpc_can_dial_are_accepted(address: str) -> None:
    assert checked_grpc_address(address) == address


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"timeout": 0}, "timeout must be a positive number of seconds, got 0"),
        ({"timeout": -1.0}, "timeout must be a positive number of seconds, got -1.0"),
        ({"timeout": float("nan")}, "timeout must be a positive number of seconds, got nan"),
        ({"max_retries": -1}, "max_retries must be a whole number, 0 or more, got -1"),
        ({"max_retries": 2.5}, "max_retries must be a whole number, 0 or more, got 2.5"),
    ],
)
def test_client_limits_out_of_range_are_refused_at_once(limits: dict[str, float], message: str) -> None:
    for client_class, address in ((ModelClient, "http://127.0.0.1:8100"), (AsyncModelClient, "http://127.0.0.1:8100"),
                                  (GrpcModelClient, "127.0.0.1:8101")):
        with pytest.raises(ValueError, match=re.escape(message)):
            client_class(address, **limits)  # type: ignore[arg-type]


def test_grpc_client_embeds_and_reports_errors(tiny_server: ServerProcess) -> None:
    with GrpcModelClient(tiny_server.grpc_address) as client:
        vectors = client.embed("embed", ["red shoes", "blue shirt"])
        live, ready = client.live(), client.ready("embed")
        with pytest.raises(ModelServerError) as missing:
            client.embed("missing", ["x"])

    assert vectors.shape == (2, 32)
    assert (live, ready) == (True, True)
    assert missing.value.status_code == 404


def test_grpc_client_classifies_as_the_http_client_does(tiny_server: ServerProcess) -> None:
    texts = ["great product", "terrible", "红色的鞋"]
    with GrpcModelClient(tiny_server.grpc_address) as client:
        over_grpc = client.classify("classify", texts)
        raw_labels = client.infer("classify", {"text": texts}, ["label"])["label"]
        with pytest.raises(ModelServerError) as empty:
            client.classify("classify", [""])
    with ModelClient(tiny_server.http_url) as client:
        over_http = client.classify("classify", texts)

    assert [c.label for c in over_grpc] == [c.label for c in over_http] == list(raw_labels)
    assert all(isinstance(c.label, str) and c.label in {"negative", "positive"} for c in over_grpc)
    for grpc_result, http_result in zip(over_grpc, over_http, strict=True):
        np.testing.assert_allclose(grpc_result.probabilities, http_result.probabilities, atol=1e-6)
        assert grpc_result.score == max(grpc_result.probabilities)
    assert empty.value.status_code == 400


def test_http_client_retries_a_busy_server_until_it_answers(tmp_path: Path, tiny_models_root: Path) -> None:
    gen = next(m for m in tiny_model_configs(tiny_models_root) if m["name"] == "gen")
    gen = {**gen, "batching": {"max_num_seqs": 1, "max_queue_size": 1},
           "limits": {"max_new_tokens": 400, "max_input_tokens": 128}}
    with ServerProcess(tmp_path, {"models": [gen]}) as server:
        start = threading.Barrier(6)
        outcomes: list[str] = []

        def call(retries: int) -> None:
            with ModelClient(server.http_url, max_retries=retries, timeout=120) as client:
                start.wait()
                try:
                    client.complete("gen", "red", max_tokens=300)
                    outcomes.append(f"ok-{retries}")
                except ModelServerUnavailable:
                    outcomes.append(f"busy-{retries}")

        threads = [threading.Thread(target=call, args=(20 if i < 3 else 0,)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert sorted(o for o in outcomes if o.endswith("-20")) == ["ok-20"] * 3
    assert "busy-0" in outcomes
