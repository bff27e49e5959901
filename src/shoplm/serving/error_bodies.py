"""One error path per protocol: exceptions below the routes become that protocol's error body."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shoplm.serving.errors import ServerBusyError, ServingError

logger = logging.getLogger(__name__)


def _protocol(path: str) -> str:
    if path.startswith("/v2"):
        return "kserve"
    return "openai"


def error_response(request: Request, status: int, message: str, *, error_type: str,
                   param: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    """The error response of the protocol that ``request`` speaks."""
    body = error_body(request.url.path, status, message, error_type=error_type, param=param)
    return JSONResponse(body, status_code=status, headers=headers)


def error_body(path: str, status: int, message: str, *, error_type: str, param: str | None = None
               ) -> dict[str, Any]:
    """The error body for a request to ``path``: KServe's shape under /v2, OpenAI's elsewhere."""
    if _protocol(path) == "kserve":
        return {"error": message}
    return {"error": {"message": message, "type": error_type, "param": param, "code": status}}


def describe_validation_error(error: RequestValidationError) -> tuple[str, str | None]:
    """A message naming each bad field (``messages.0.role: ...``) and the first field's name."""
    parts, first = [], None
    for problem in error.errors():
        if problem.get("type") == "json_invalid":
            first = first or "body"
            parts.append(f"body is not valid JSON: {problem.get('ctx', {}).get('error', problem['msg'])}")
            continue
        location = [str(p) for p in problem.get("loc", ()) if p != "body"]
        field = ".".join(location) or "body"
        if field == "body" and problem.get("type") == "missing":
            first = first or field
            parts.append("request body is missing; send a JSON object")
            continue
        first = first or field
        parts.append(f"{field}: {problem['msg']}")
    return "; ".join(parts) or "invalid request", first


async def on_serving_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ServingError)
    headers = None
    if isinstance(error, ServerBusyError):
        headers = {"Retry-After": str(math.ceil(error.retry_after_s))}
    return error_response(request, error.status_code, error.message, error_type=error.error_type,
                          param=error.param, headers=headers)


async def on_validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    message, field = describe_validation_error(error)
    return error_response(request, 400, message, error_type="invalid_request_error", param=field)


# FastAPI's words when the body bytes cannot even be decoded (e.g. invalid UTF-8).
_UNPARSABLE_BODY = "There was an error parsing the body"


async def on_http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    message = str(error.detail)
    if error.status_code == 400 and message == _UNPARSABLE_BODY:
        message = "body is not valid JSON: it is not UTF-8 encoded text"
    return error_response(request, error.status_code, message, error_type="http_error",
                          headers=getattr(error, "headers", None))


async def on_unexpected_error(request: Request, error: Exception) -> JSONResponse:
    """The one place a bare exception is caught: logged with the request id, answered 500."""
    request_id = getattr(request.state, "request_id", None)
    logger.error("unhandled error", exc_info=error, extra={"request_id": request_id})
    return error_response(request, 500, f"internal error (request id {request_id})", error_type="server_error")


def install(app: Any) -> None:
    """Register the handlers on a FastAPI app."""
    app.add_exception_handler(ServingError, on_serving_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected_error)
