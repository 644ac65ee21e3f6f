"""Refuses a write body that is not JSON of the route's type, strictly typed."""

from __future__ import annotations

from typing import Any, cast

from litestar.types import ASGIApp, HTTPScope, Receive, Scope, Send

from ems_connector.errors import BadRequest
from ems_connector.http.body_guard import WRITE_METHODS
from ems_connector.http.params import decode_json


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def _check_data(scope: Scope, body: bytes) -> None:
    """Decode the body strictly as the route's `data` type before Litestar does.

    Litestar converts bodies leniently ("123" for an int, 1 for a bool); the contract wants a
    wrong type refused, and a body that is not UTF-8 answered with a 400, not a 500.
    """
    handler: Any = scope.get("route_handler")
    signature = getattr(handler, "parsed_fn_signature", None)
    data = signature.parameters.get("data") if signature is not None else None
    if data is None or handler.resolve_data_dto() is not None:
        return
    if body.strip():
        decode_json(body, data.annotation)
    elif not (data.has_default or data.is_optional):
        raise BadRequest(
            "VALIDATION_ERROR",
            "A JSON body is required; send a JSON object",
            {"fields": [{"field": "body", "message": "required"}]},
        )


def body_validation_middleware(app: ASGIApp) -> ASGIApp:
    # Runs inside the idempotency middleware, so these 400s are stored and replayed too.
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if cast("HTTPScope", scope)["method"] in WRITE_METHODS:
            body: bytes = scope["state"]["raw_body"]
            content_type = dict(scope["headers"]).get(b"content-type", b"").decode("latin-1")
            if body.strip() and not _is_json(content_type):
                raise BadRequest(
                    "UNSUPPORTED_CONTENT_TYPE",
                    f"Send JSON with Content-Type: application/json "
                    f"(got {content_type or 'none'!r})",
                    {"fields": [{"field": "Content-Type", "message": "must be application/json"}]},
                )
            _check_data(scope, body)
        await app(scope, receive, send)

    return middleware
