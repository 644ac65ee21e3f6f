"""Reads write bodies, up to the size limit, before anything else looks at them."""

from __future__ import annotations

from typing import Any, cast

from litestar.types import ASGIApp, HTTPReceiveMessage, HTTPScope, Receive, Scope, Send

from ems_connector.errors import BadRequest

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# a store's whole view of its subscriptions comes in one body
LARGE_BODY_PATHS = frozenset({"/3.1/reconciliations", "/3.1/reconciliations/"})


def _too_large(limit: int) -> BadRequest:
    return BadRequest(
        "BODY_TOO_LARGE",
        f"The request body is larger than {limit} bytes; send less",
        {"fields": [{"field": "body", "message": f"at most {limit} bytes"}]},
    )


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = cast("HTTPReceiveMessage", await receive())
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:  # stop reading: a huge body is never buffered whole
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def body_guard_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        http_scope = cast("HTTPScope", scope)
        if http_scope["method"] not in WRITE_METHODS:
            await app(scope, receive, send)
            return
        settings: Any = scope["app"].state.settings
        limit: int = (
            settings.max_reconciliation_bytes
            if http_scope["path"] in LARGE_BODY_PATHS
            else settings.max_body_bytes
        )
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            raise _too_large(limit)
        body = await _read_body(receive, limit)
        scope.setdefault("state", {})["raw_body"] = body
        delivered = False

        async def replay() -> Any:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await app(scope, replay, send)

    return middleware
