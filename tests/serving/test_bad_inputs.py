"""Every bad input gets a 4xx whose message names the problem, and the server stays up."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers.server import ServerProcess

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
EMBEDDINGS = "/v1/embeddings"
USER = [{"role": "user", "content": "hi"}]

JSON_CASES = [
    # (route, body, status, words the message must contain)
    (EMBEDDINGS, {"model": "embed", "input": ""}, 400, ["input", "empty"]),
    (EMBEDDINGS, {"model": "embed", "input": ["ok", "  "]}, 400, ["input[1]", "empty"]),
    (EMBEDDINGS, {"model": "embed", "input": []}, 400, ["input", "at least one"]),
    (EMBEDDINGS, {"model": "embed", "input": ["x"] * 65}, 400, ["65", "64"]),
    (EMBEDDINGS, {"model": "embed", "input": [1, 2]}, 400, ["input", "string"]),
    (EMBEDDINGS, {"model": "embed"}, 400, ["input", "Field required"]),
    (EMBEDDINGS, {"model": "embed", "input": "x", "dimensions": 8}, 400, ["dimensions", "32"]),
    (EMBEDDINGS, {"model": "embed", "input": "x", "encoding_format": "int8"}, 400, ["encoding_format"]),
    (EMBEDDINGS, {"model": "gen", "input": "x"}, 400, ["gen", "generate", "embed"]),
    (EMBEDDINGS, {"model": "missing", "input": "x"}, 404, ["missing", "does not exist"]),
    (CHAT, {"model": "gen", "messages": []}, 400, ["messages", "at least 1"]),
    (CHAT, {"model": "gen", "messages": [{"role": "wizard", "content": "x"}]}, 400, ["role"]),
    (CHAT, {"model": "gen", "messages": [{"role": "user", "content": 5}]}, 400, ["content"]),
    (CHAT, {"model": "gen", "messages": "hello"}, 400, ["messages"]),
    (CHAT, {"model": "gen", "messages": USER, "temperature": -0.5}, 400, ["temperature", "greater than or equal to 0"]),
    (CHAT, {"model": "gen", "messages": USER, "temperature": 1e9}, 400, ["temperature", "less than or equal to 2"]),
    (CHAT, {"model": "gen", "messages": USER, "top_p": 0}, 400, ["top_p"]),
    (CHAT, {"model": "gen", "messages": USER, "top_k": -3}, 400, ["top_k"]),
    (CHAT, {"model": "gen", "messages": USER, "max_tokens": -1}, 400, ["max_tokens"]),
    (CHAT, {"model": "gen", "messages": USER, "max_tokens": 10**9}, 400, ["max_tokens", "64"]),
    (CHAT, {"model": "gen", "messages": USER, "max_tokens": "many"}, 400, ["max_tokens"]),
    (CHAT, {"model": "gen", "messages": USER, "n": 17}, 400, ["n", "less than or equal to 16"]),
    (CHAT, {"model": "gen", "messages": USER, "n": 0}, 400, ["n", "greater than or equal to 1"]),
    (CHAT, {"model": "gen", "messages": USER, "seed": -1}, 400, ["seed"]),
    (CHAT, {"model": "gen", "messages": USER, "stop": ["a", "b", "c", "d", "e"]}, 400, ["stop", "4"]),
    (CHAT, {"model": "gen", "messages": USER, "stop": [""]}, 400, ["stop", "empty"]),
    (CHAT, {"model": "gen", "messages": USER, "logprobs": True}, 400, ["logprobs"]),
    (CHAT, {"model": "embed", "messages": USER}, 400, ["embed", "generate"]),
    (CHAT, {"messages": USER}, 400, ["model", "Field required"]),
    (COMPLETIONS, {"model": "gen", "prompt": ""}, 400, ["prompt", "empty"]),
    (COMPLETIONS, {"model": "gen", "prompt": "\u200b\u200b"}, 400, ["prompt", "no tokens"]),  # zero-width only
    (COMPLETIONS, {"model": "gen", "prompt": "shoes " * 400}, 400, ["prompt", "max_input_tokens=128"]),
    (COMPLETIONS, {"model": "gen", "prompt": ["a", "b"]}, 400, ["prompt", "one prompt"]),
    (COMPLETIONS, {"model": "gen", "prompt": "x", "echo": True}, 400, ["echo"]),
]


@pytest.mark.parametrize(("route", "body", "status", "words"), JSON_CASES, ids=lambda v: str(v)[:40])
def test_bad_json_body_is_answered_with_a_named_error(
    tiny_server: ServerProcess, route: str, body: object, status: int, words: list[str]
) -> None:
    response = httpx.post(f"{tiny_server.http_url}{route}", json=body, timeout=30)

    assert response.status_code == status, response.text
    error = response.json()["error"]
    for word in words:
        assert word in error["message"], error
    assert error["code"] == status


RAW_CASES = [
    (b"{not json", 400, "not valid JSON"),
    (b"\xff\xfe\xfa", 400, "not valid JSON"),
    (b'{"model": "embed", "input": "\xff\xfe"}', 400, "not valid JSON"),
    (b"[1, 2, 3]", 400, "valid dictionary"),
    (b"", 400, "body is missing"),
]


@pytest.mark.parametrize(("raw", "status", "words"), RAW_CASES)
def test_malformed_bytes_are_answered_400(tiny_server: ServerProcess, raw: bytes, status: int, words: str) -> None:
    response = httpx.post(
        f"{tiny_server.http_url}{EMBEDDINGS}", content=raw, headers={"content-type": "application/json"}
    )

    assert response.status_code == status, response.text
    assert words in response.json()["error"]["message"]


def test_body_over_the_limit_is_413_and_names_the_limit(tiny_server: ServerProcess) -> None:
    huge = {"model": "embed", "input": "x" * 2_000_000}

    response = httpx.post(f"{tiny_server.http_url}{EMBEDDINGS}", json=huge, timeout=30)

    assert response.status_code == 413
    assert "max_body_bytes=1048576" in response.json()["error"]["message"]


def test_chunked_body_over_the_limit_is_413(tiny_server: ServerProcess) -> None:
    def chunks():  # no Content-Length: the limit must hold while reading
        for _ in range(30):
            yield b"x" * 65536

    response = httpx.post(
        f"{tiny_server.http_url}{EMBEDDINGS}", content=chunks(), headers={"content-type": "application/json"}
    )

    assert response.status_code == 413


def test_unknown_route_is_404_and_wrong_method_405(tiny_server: ServerProcess) -> None:
    assert httpx.get(f"{tiny_server.http_url}/v1/nothing-here").status_code == 404
    assert httpx.get(f"{tiny_server.http_url}{CHAT}").status_code == 405


def test_server_still_healthy_and_serving_after_bad_inputs(tiny_server: ServerProcess) -> None:
    for route, body, _, _ in JSON_CASES:
        httpx.post(f"{tiny_server.http_url}{route}", json=body, timeout=30)

    health = httpx.get(f"{tiny_server.http_url}/health")
    good = httpx.post(f"{tiny_server.http_url}{EMBEDDINGS}", json={"model": "embed", "input": "still fine"})

    assert health.json()["status"] == "ok"
    assert good.status_code == 200
    assert "Traceback" not in tiny_server.log_text()
    assert '"status": 500' not in tiny_server.log_text()
