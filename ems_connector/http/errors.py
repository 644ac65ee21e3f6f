"""Every error as the contract's JSON body, and the error responses in the OpenAPI spec."""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec

from ems_connector.errors import DomainError, Unavailable
from ems_connector.schemas.common import DataErrorBody, ErrorBody, SubscriptionErrorBody
from state_machines import InvalidTransition

log = logging.getLogger("ems_connector.http")

# Route option naming the Cleeng envelope a route's errors carry.
ENVELOPE_OPT = "error_envelope"
_ENVELOPES: dict[str, type[ErrorBody]] = {
    "subscription": SubscriptionErrorBody,
    "data": DataErrorBody,
}
_UNKNOWN_FIELD = re.compile(r"unknown field `([^`]*)`")
_MISSING_FIELD = re.compile(r"missing required field `([^`]*)`")
_AT_PATH = re.compile(r" - at `\$\.?([^`]*)`$")

_STATUS_DESCRIPTIONS = {
    400: "Malformed body, query or id; `details.fields` names what to fix",
    401: "Missing or unknown API key",
    404: "Unknown resource, or one of another publisher",
    409: "A concurrent request holds the same Idempotency-Key, or a concurrent change won",
    412: "`If-Match` does not match the current version",
    422: "A lifecycle or business rule forbids the request; `code` says which",
    503: "Storage is unavailable; retry after `Retry-After` seconds",
}


def error_responses(*statuses: int, envelope: str | None = None) -> dict[int, ResponseSpec]:
    """OpenAPI response specs for the error statuses a route can answer."""
    body = _ENVELOPES.get(envelope or "", ErrorBody)
    return {
        status: ResponseSpec(
            data_container=body, description=_STATUS_DESCRIPTIONS[status], generate_examples=False
        )
        for status in (*statuses, 401, 503)
    }


def _envelope(request: Request[Any, Any, Any]) -> type[ErrorBody]:
    try:
        name = request.route_handler.opt.get(ENVELOPE_OPT)
    except (AttributeError, KeyError):  # no route matched
        return ErrorBody
    return _ENVELOPES.get(name or "", ErrorBody)


def error_response(
    request: Request[Any, Any, Any],
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    body = _envelope(request)(code=code, message=message, details=details)
    return Response(
        msgspec.json.encode(body),
        status_code=status,
        media_type=MediaType.JSON,
        headers=headers,
    )


def fields_from_msgspec(message: str, default_field: str = "body") -> list[dict[str, str]]:
    """`[{field, message}]` from a msgspec validation message."""
    named = _UNKNOWN_FIELD.search(message) or _MISSING_FIELD.search(message)
    at = _AT_PATH.search(message)
    path = at.group(1).replace("[...]", "") if at else ""  # `[...]`: any key of a mapping
    if named:
        field = f"{path}.{named.group(1)}" if path else named.group(1)
    else:
        field = path or default_field
    text = _AT_PATH.sub("", message)
    return [{"field": field, "message": text}]


def _domain_error(request: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Unavailable) else None
    return error_response(request, exc.status_code, exc.code, exc.message, exc.details, headers)


def _invalid_transition(request: Request[Any, Any, Any], exc: InvalidTransition) -> Response[Any]:
    return error_response(
        request,
        422,
        "INVALID_TRANSITION",
        str(exc),
        {"status": exc.status, "allowed": exc.allowed},
    )


def _wire_name(request: Request[Any, Any, Any], key: str) -> str:
    """The name a client sent (`customerId`), not the handler's argument (`customer_id`)."""
    try:
        parameter = request.route_handler.parsed_fn_signature.parameters.get(key)
    except (AttributeError, KeyError):
        return key
    definition = getattr(parameter, "kwarg_definition", None)
    return getattr(definition, "query", None) or getattr(definition, "name", None) or key


def _validation_error(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    fields: list[dict[str, str]] = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        key = str(item.get("key") or "body")
        message = str(item.get("message") or "invalid")
        if key == "data":
            fields.extend(fields_from_msgspec(message))
        else:
            fields.append({"field": _wire_name(request, key), "message": message})
    summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields) or exc.detail
    return error_response(
        request, 400, "VALIDATION_ERROR", f"Invalid request: {summary}", {"fields": fields}
    )


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if status == 400:
        code = "MALFORMED_JSON" if "JSON" in exc.detail else "BAD_REQUEST"
        message = f"{exc.detail}; send a JSON object" if code == "MALFORMED_JSON" else exc.detail
        return error_response(request, 400, code, message, {"fields": []})
    if status == 404:
        return error_response(request, 404, "NOT_FOUND", f"No route for {request.url.path}")
    if status == 405:
        return error_response(
            request,
            405,
            "METHOD_NOT_ALLOWED",
            f"{request.method} is not allowed on {request.url.path}",
            headers=exc.headers,
        )
    return error_response(request, status, "HTTP_ERROR", exc.detail)


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(request, 500, "INTERNAL_ERROR", "Internal error; this is a bug")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    DomainError: _domain_error,
    InvalidTransition: _invalid_transition,
    ValidationException: _validation_error,
    HTTPException: _http_error,
    Exception: _unexpected,
}
