"""Errors raised by the model server clients."""

from __future__ import annotations


class ModelServerError(Exception):
    """The model server answered with an error status."""

    def __init__(self, status_code: int, message: str, request_id: str | None = None) -> None:
        # Status 0: no HTTP answer at all (connection refused, timed out); there is no code to show.
        status = f"{status_code}: " if status_code else ""
        super().__init__(status + message + (f" (request id {request_id})" if request_id else ""))
        self.status_code = status_code
        self.message = message
        self.request_id = request_id


class ModelServerUnavailable(ModelServerError):
    """The model server could not be reached in time, or stayed busy through every retry."""
