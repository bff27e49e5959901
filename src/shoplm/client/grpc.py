"""KServe v2 gRPC client: tritonclient's client with retries and an API key.

gRPC itself retries UNAVAILABLE and RESOURCE_EXHAUSTED through the channel's service config,
honouring the server's ``grpc-retry-pushback-ms``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

from shoplm.client.errors import ModelServerError, ModelServerUnavailable
from shoplm.client.http import check_limits
from shoplm.client.results import Classification, classifications

_UNAVAILABLE = {"StatusCode.UNAVAILABLE", "StatusCode.RESOURCE_EXHAUSTED", "StatusCode.DEADLINE_EXCEEDED"}


def _service_config(max_retries: int) -> str:
    policy = {
        "maxAttempts": max(2, max_retries + 1),
        "initialBackoff": "0.2s",
        "maxBackoff": "10s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE", "RESOURCE_EXHAUSTED"],
    }
    return json.dumps({"methodConfig": [{"name": [{"service": "inference.GRPCInferenceService"}],
                                         "retryPolicy": policy}]})


# gRPC's own target forms (unix:/path, dns:///host:port, ...) are passed on as they are.
_GRPC_TARGET_SCHEMES = ("unix:", "unix-abstract:", "dns:", "ipv4:", "ipv6:", "vsock:")


def checked_grpc_address(address: str) -> str:
    """``address`` if it is host:port with a port gRPC can dial (or a gRPC target URI); ValueError
    otherwise. gRPC would dial port 443 for a bare host, wrap a port above 65535, and treat an
    http:// URL as a host name, so each of those fails at once here instead of on every call."""
    if address.startswith(_GRPC_TARGET_SCHEMES):
        return address
    problem = _host_port_problem(address)
    if problem:
        raise ValueError(f"address must be host:port, e.g. 127.0.0.1:8101; {problem}: {address!r}")
    return address


def _host_port_problem(address: str) -> str | None:
    if "://" in address:
        return "a gRPC address has no scheme"
    host, colon, port = address.rpartition(":")
    if not colon:
        return "no port given"
    if not host.strip("[]") or any(character.isspace() for character in host):
        return "no host given" if not host.strip("[]") else "the host has spaces"
    if not port.isdecimal() or not 1 <= int(port) <= 65535:
        return "the port must be a number from 1 to 65535"
    return None


class GrpcModelClient:
    """Health, metadata and inference over the model server's gRPC port."""

    def __init__(self, address: str, api_key: str | None = None, timeout: float = 30.0, max_retries: int = 3) -> None:
        check_limits(timeout, max_retries)
        self._client = triton_grpc.InferenceServerClient(
            checked_grpc_address(address),
            channel_args=[("grpc.enable_retries", 1), ("grpc.service_config", _service_config(max_retries))],
        )
        self._headers = {"authorization": f"Bearer {api_key}"} if api_key else None
        self._timeout = timeout

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self._client, method)(*args, headers=self._headers, **kwargs)
        except InferenceServerException as error:
            status = str(error.status() or "")
            kind = ModelServerUnavailable if status in _UNAVAILABLE else ModelServerError
            raise kind(_GRPC_TO_HTTP.get(status, 500), error.message() or str(error)) from error

    def live(self) -> bool:
        return bool(self._call("is_server_live"))

    def ready(self, model: str | None = None) -> bool:
        return bool(self._call("is_model_ready", model) if model else self._call("is_server_ready"))

    def metadata(self, model: str) -> dict[str, Any]:
        return dict(self._call("get_model_metadata", model, as_json=True))

    def infer(self, model: str, inputs: dict[str, list[str]], outputs: list[str] | None = None
              ) -> dict[str, np.ndarray]:
        """BYTES inputs in, every (or each named) output back as numpy arrays."""
        tensors = []
        for name, values in inputs.items():
            tensor = triton_grpc.InferInput(name, [len(values)], "BYTES")
            tensor.set_data_from_numpy(np.array([v.encode() for v in values], dtype=object))
            tensors.append(tensor)
        requested = [triton_grpc.InferRequestedOutput(name) for name in outputs] if outputs else None
        result = self._call("infer", model, tensors, outputs=requested, client_timeout=self._timeout)
        names = outputs or [output["name"] for output in result.get_response(as_json=True)["outputs"]]
        return {name: _decoded(result.as_numpy(name)) for name in names}

    def embed(self, model: str, texts: list[str]) -> np.ndarray:
        return self.infer(model, {"text": texts}, ["embedding"])["embedding"]

    def classify(self, model: str, texts: list[str]) -> list[Classification]:
        return classifications(self.infer(model, {"text": texts}, ["label", "score", "probabilities"]))

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> GrpcModelClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _decoded(array: np.ndarray) -> np.ndarray:
    """BYTES tensors as text, as the HTTP client returns them (tritonclient leaves them as bytes)."""
    if array.dtype != object:
        return array
    return np.vectorize(lambda item: item.decode() if isinstance(item, bytes) else item, otypes=[object])(array)


_GRPC_TO_HTTP = {
    "StatusCode.INVALID_ARGUMENT": 400,
    "StatusCode.UNAUTHENTICATED": 401,
    "StatusCode.NOT_FOUND": 404,
    "StatusCode.RESOURCE_EXHAUSTED": 429,
    "StatusCode.UNAVAILABLE": 503,
    "StatusCode.DEADLINE_EXCEEDED": 504,
}
