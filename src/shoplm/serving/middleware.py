"""ASGI middleware: request ids, the body size limit, one log line and metrics per request.

Written as plain ASGI (not BaseHTTPMiddleware) so that streamed responses pass through
untouched and the latency covers the whole stream.
"""

from __future__ import annotations

import json
import logging
import random
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shoplm.serving.error_bodies import error_body
from shoplm.serving.errors import PayloadTooLargeError
from shoplm.serving.metrics import ServerMetrics

logger = logging.getLogger("shoplm.access")
_REQUEST_ID_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")


class RequestContextMiddleware:
    """Tags each HTTP request with an id, bounds its body, logs it and counts it."""

    def __init__(self, app: ASGIApp, *, metrics: ServerMetrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        status = {"code": 500}

        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await self._reject_too_large(scope, send, request_id, declared)
            self._finish(scope, request_id, 413, started)
            return

        # Read the body up front (it is bounded) so an over-long chunked body is refused with a
        # clean 413 before any route sees it.
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                await self._reject_too_large(scope, send, request_id, None)
                self._finish(scope, request_id, 413, started)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay_receive() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        async def tagged_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                version = scope.get("state", {}).get("model_version")
                if version:  # which model version answered, so clients see a hot swap happen
                    headers.append((b"x-model-version", str(version).encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, replay_receive, tagged_send)
        finally:
            self._finish(scope, request_id, status["code"], started)

    async def _reject_too_large(self, scope: Scope, send: Send, request_id: str, size: int | None) -> None:
        told = f"is {size} bytes" if size is not None else "is too large"
        message = f"request body {told}; the limit is max_body_bytes={self.max_body_bytes}"
        body = error_body(scope["path"], 413, message, error_type=PayloadTooLargeError.error_type)
        payload = json.dumps(body).encode()
        await send({
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                        (b"x-request-id", request_id.encode()), (b"connection", b"close")],
        })
        await send({"type": "http.response.body", "body": payload})

    def _finish(self, scope: Scope, request_id: str, status: int, started: float) -> None:
        elapsed = time.perf_counter() - started
        state = scope.get("state", {})
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        model = state.get("model", "")
        version = state.get("model_version", "")
        self.metrics.requests.labels(model, version, route, str(status)).inc()
        self.metrics.request_latency.labels(model, route).observe(elapsed)
        logger.info(
            "request",
            extra={
                "request_id": request_id,
                "method": scope.get("method"),
                "path": scope.get("path"),
                "route": route,
                "status": status,
                "latency_ms": round(elapsed * 1000, 2),
                "model": model or None,
                "model_version": version or None,
                "client": (scope.get("client") or ("", 0))[0],
            },
        )


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            candidate = value.decode("latin-1")[:128]
            if candidate and set(candidate) <= _REQUEST_ID_OK:
                return candidate
    # Ids need to be unique, not secret: the Mersenne Twister is far cheaper than uuid4's urandom.
    return f"{random.getrandbits(128):032x}"


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
