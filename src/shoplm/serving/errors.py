"""Exceptions raised below the protocol front ends.

Each front end maps them to its own error shape in one function::

    ServingError
    ├── InvalidRequestError      400  a field is missing, malformed or over a limit
    ├── AuthenticationError      401  missing or wrong API key
    ├── ModelNotFoundError       404  no model (or version) of that name
    ├── PayloadTooLargeError     413  the body exceeds server.max_body_bytes
    ├── ServerBusyError          429  the model's queue is full (carries retry_after_s)
    ├── ModelNotReadyError       503  the model exists but is loading, unloaded or failed
    └── RequestTimeoutError      504  the request ran past server.request_timeout_s
"""

from __future__ import annotations


class ServingError(Exception):
    """Base of every error the model server answers with a 4xx/5xx status."""

    status_code = 500
    error_type = "server_error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidRequestError(ServingError):
    """A request field is missing, malformed or over a configured limit."""

    status_code = 400
    error_type = "invalid_request_error"


class AuthenticationError(ServingError):
    """The request carries no API key or a wrong one."""

    status_code = 401
    error_type = "authentication_error"


class ModelNotFoundError(ServingError):
    """No model, or no such version of it, is configured."""

    status_code = 404
    error_type = "model_not_found"


class PayloadTooLargeError(ServingError):
    """The request body is larger than the configured maximum."""

    status_code = 413
    error_type = "payload_too_large"


class ServerBusyError(ServingError):
    """The model's queue is full; the client should retry after ``retry_after_s``."""

    status_code = 429
    error_type = "server_busy"

    def __init__(self, message: str, *, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ModelNotReadyError(ServingError):
    """The model is configured but not loaded (loading, unloaded or failed)."""

    status_code = 503
    error_type = "model_not_ready"


class RequestTimeoutError(ServingError):
    """The request did not finish within the configured timeout."""

    status_code = 504
    error_type = "timeout"
