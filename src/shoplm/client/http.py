"""HTTP clients (sync and async) for the model server.

Request building and response parsing are shared; the two classes differ only in how they send.
Retries on 429/502/503/504 and on connection errors come from ``httpx-retries``, which honours
the server's ``Retry-After``.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
from httpx_retries import Retry, RetryTransport

from shoplm.client.errors import ModelServerError, ModelServerUnavailable
from shoplm.client.results import Classification, classifications

RETRY_STATUSES = (429, 502, 503, 504)


@dataclass(frozen=True)
class ChatResult:
    """One completion: its text, why it stopped, token usage and the model version.

    With ``n`` above 1, ``text`` and ``finish_reason`` are the first choice's, ``texts`` holds
    every choice's text in order, and ``completion_tokens`` counts all of them.
    """

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    model_version: str | None
    texts: tuple[str, ...] = ()


def _retry(max_retries: int) -> Retry:
    return Retry(
        total=max_retries,
        allowed_methods=["GET", "POST"],
        status_forcelist=RETRY_STATUSES,
        retry_on_exceptions=[httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError],
        backoff_factor=0.2,
        respect_retry_after_header=True,
        max_backoff_wait=30.0,
    )


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _checked(response: httpx.Response) -> Any:
    if response.status_code < 400:
        return response.json()
    try:
        error = response.json().get("error")
        message = str(error.get("message") if isinstance(error, dict) else error)
    except (ValueError, AttributeError):
        message = response.text[:500]
    request_id = response.headers.get("x-request-id")
    if response.status_code in RETRY_STATUSES:
        raise ModelServerUnavailable(response.status_code, message, request_id)
    raise ModelServerError(response.status_code, message, request_id)


def _chat_body(model: str, messages: list[dict[str, str]], params: dict[str, Any], stream: bool) -> dict[str, Any]:
    return {"model": model, "messages": messages, "stream": stream, **params}


def _chat_result(body: dict[str, Any]) -> ChatResult:
    choices = sorted(body["choices"], key=lambda choice: choice.get("index", 0))
    texts = tuple(choice["message"]["content"] if "message" in choice else choice["text"] for choice in choices)
    fingerprint = body.get("system_fingerprint") or ""
    version = fingerprint.rsplit("-v", 1)[1] if "-v" in fingerprint else None
    usage = body.get("usage") or {}
    return ChatResult(texts[0], choices[0]["finish_reason"], usage.get("prompt_tokens", 0),
                      usage.get("completion_tokens", 0), version, texts)


def _infer_body(inputs: dict[str, list[str]], parameters: dict[str, Any] | None) -> dict[str, Any]:
    tensors = [{"name": name, "datatype": "BYTES", "shape": [len(values)], "data": values}
               for name, values in inputs.items()]
    return {"inputs": tensors, **({"parameters": parameters} if parameters else {})}


def _infer_outputs(body: dict[str, Any]) -> dict[str, np.ndarray]:
    outputs = {}
    for tensor in body["outputs"]:
        data = tensor["data"]
        dtype = object if tensor["datatype"] == "BYTES" else np.float32
        outputs[tensor["name"]] = np.array(data, dtype=dtype).reshape(tensor["shape"])
    return outputs


def _sse_text(line: str) -> str | None:
    """The text delta of one server-sent event line, or None for other lines."""
    if not line.startswith("data: ") or line == "data: [DONE]":
        return None
    event = json.loads(line.removeprefix("data: "))
    if "error" in event:
        raise ModelServerError(int(event["error"].get("code", 500)), event["error"]["message"])
    if not event.get("choices"):
        return None
    choice = event["choices"][0]
    return str(choice.get("delta", {}).get("content") or choice.get("text") or "")


def checked_base_url(base_url: str) -> str:
    """The server's URL without a trailing slash; ValueError for one that is not http(s)://host."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"base_url must be an http:// or https:// URL with a host, e.g. http://127.0.0.1:8100; "
                         f"got {base_url!r}")
    return base_url.rstrip("/")


def check_limits(timeout: float, max_retries: int) -> None:
    """ValueError unless ``timeout`` is a positive number of seconds and ``max_retries`` a count,
    so that a bad setting fails when the client is made, not on its first call."""
    if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ValueError(f"max_retries must be a whole number, 0 or more, got {max_retries!r}")


class ModelClient:
    """Synchronous client for the model server's HTTP API."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 30.0, max_retries: int = 3) -> None:
        check_limits(timeout, max_retries)
        self._client = httpx.Client(
            base_url=checked_base_url(base_url), headers=_headers(api_key), timeout=timeout,
            transport=RetryTransport(retry=_retry(max_retries)),
        )

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            return _checked(self._client.request(method, path, json=body))
        except httpx.TransportError as error:
            raise ModelServerUnavailable(0, f"model server unreachable: {error}") from error

    def ready(self, model: str | None = None) -> bool:
        """Whether the server (or one model) is ready to answer."""
        path = f"/v2/models/{model}/ready" if model else "/v2/health/ready"
        try:
            return self._client.get(path).status_code == 200
        except httpx.TransportError:
            return False

    def models(self) -> list[dict[str, Any]]:
        return list(self._request("GET", "/v1/models")["data"])

    def chat(self, model: str, messages: list[dict[str, str]], **params: Any) -> ChatResult:
        return _chat_result(self._request("POST", "/v1/chat/completions", _chat_body(model, messages, params, False)))

    def stream_chat(self, model: str, messages: list[dict[str, str]], **params: Any) -> Iterator[str]:
        """Text deltas as the server generates them."""
        body = _chat_body(model, messages, params, True)
        with self._client.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code >= 400:
                response.read()
                _checked(response)
            for line in response.iter_lines():
                text = _sse_text(line)
                if text:
                    yield text

    def complete(self, model: str, prompt: str, **params: Any) -> ChatResult:
        return _chat_result(self._request("POST", "/v1/completions", {"model": model, "prompt": prompt, **params}))

    def embed(self, model: str, texts: list[str]) -> np.ndarray:
        body = self._request("POST", "/v1/embeddings", {"model": model, "input": texts})
        return np.array([item["embedding"] for item in body["data"]], dtype=np.float32)

    def infer(self, model: str, inputs: dict[str, list[str]], parameters: dict[str, Any] | None = None
              ) -> dict[str, np.ndarray]:
        """A KServe v2 inference with BYTES inputs; returns the outputs by name."""
        return _infer_outputs(self._request("POST", f"/v2/models/{model}/infer", _infer_body(inputs, parameters)))

    def classify(self, model: str, texts: list[str]) -> list[Classification]:
        return classifications(self.infer(model, {"text": texts}))

    def admin_models(self) -> list[dict[str, Any]]:
        """Every model in the server's config with its state and version (an admin route)."""
        return list(self._request("GET", "/admin/models")["models"])

    def load_model(self, model: str, version: str | None = None, path: str | None = None) -> dict[str, Any]:
        """Ask the server to load (and swap in, once warm) a version or a path of ``model``."""
        body = {key: value for key, value in (("version", version), ("path", path)) if value is not None}
        return dict(self._request("POST", f"/admin/models/{model}/load", body))

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ModelClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncModelClient:
    """Asynchronous client for the model server's HTTP API (same methods, awaitable)."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 30.0, max_retries: int = 3) -> None:
        check_limits(timeout, max_retries)
        self._client = httpx.AsyncClient(
            base_url=checked_base_url(base_url), headers=_headers(api_key), timeout=timeout,
            transport=RetryTransport(retry=_retry(max_retries)),
        )

    async def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            return _checked(await self._client.request(method, path, json=body))
        except httpx.TransportError as error:
            raise ModelServerUnavailable(0, f"model server unreachable: {error}") from error

    async def ready(self, model: str | None = None) -> bool:
        path = f"/v2/models/{model}/ready" if model else "/v2/health/ready"
        try:
            return (await self._client.get(path)).status_code == 200
        except httpx.TransportError:
            return False

    async def models(self) -> list[dict[str, Any]]:
        return list((await self._request("GET", "/v1/models"))["data"])

    async def chat(self, model: str, messages: list[dict[str, str]], **params: Any) -> ChatResult:
        body = _chat_body(model, messages, params, False)
        return _chat_result(await self._request("POST", "/v1/chat/completions", body))

    async def stream_chat(self, model: str, messages: list[dict[str, str]], **params: Any) -> AsyncIterator[str]:
        body = _chat_body(model, messages, params, True)
        async with self._client.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code >= 400:
                await response.aread()
                _checked(response)
            async for line in response.aiter_lines():
                text = _sse_text(line)
                if text:
                    yield text

    async def complete(self, model: str, prompt: str, **params: Any) -> ChatResult:
        body = {"model": model, "prompt": prompt, **params}
        return _chat_result(await self._request("POST", "/v1/completions", body))

    async def embed(self, model: str, texts: list[str]) -> np.ndarray:
        body = await self._request("POST", "/v1/embeddings", {"model": model, "input": texts})
        return np.array([item["embedding"] for item in body["data"]], dtype=np.float32)

    async def infer(self, model: str, inputs: dict[str, list[str]], parameters: dict[str, Any] | None = None
                    ) -> dict[str, np.ndarray]:
        body = await self._request("POST", f"/v2/models/{model}/infer", _infer_body(inputs, parameters))
        return _infer_outputs(body)

    async def classify(self, model: str, texts: list[str]) -> list[Classification]:
        return classifications(await self.infer(model, {"text": texts}))

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> AsyncModelClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
