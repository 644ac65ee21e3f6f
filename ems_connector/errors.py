"""Domain errors with the stable codes and HTTP statuses of the wire contract."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refusal the client can act on; `code` is stable, `message` says what to fix."""

    status_code = 422

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


class BadRequest(DomainError):
    status_code = 400


class Unauthorized(DomainError):
    status_code = 401


class NotFound(DomainError):
    status_code = 404


class Conflict(DomainError):
    status_code = 409


class PreconditionFailed(DomainError):
    status_code = 412


class Unprocessable(DomainError):
    status_code = 422


class Unavailable(DomainError):
    status_code = 503

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__("SERVICE_UNAVAILABLE", message)
        self.retry_after = retry_after


def field_error(field: str, message: str, code: str = "VALIDATION_ERROR") -> BadRequest:
    """A 400 naming one offending field, in the contract's `details.fields` shape."""
    return BadRequest(
        code, f"{field}: {message}", {"fields": [{"field": field, "message": message}]}
    )
