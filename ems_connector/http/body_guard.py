"""Reads write bodies up to the size limit and refuses what is not JSON."""

from __future__ import annotations

from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from ems_connector.errors import BadRequest

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _too_large(limit: int) -> BadRequest:
    return BadRequest(
        "BODY_TOO_LARGE",
        f"The request body is larger than {limit} bytes; send less",
        {"fields": [{"field": "body", "message": f"at most {limit} bytes"}]},
    )


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def body_guard_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in WRITE_METHODS:
            await app(scope, receive, send)
            return
        settings: Any = scope["app"].state.settings
        limit: int = settings.max_body_bytes
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            raise _too_large(limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        if body.strip() and not _is_json(content_type):
            raise BadRequest(
                "UNSUPPORTED_CONTENT_TYPE",
                f"Send JSON with Content-Type: application/json (got {content_type or 'none'!r})",
                {"fields": [{"field": "Content-Type", "message": "must be application/json"}]},
            )
        scope.setdefault("state", {})["raw_body"] = body
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await app(scope, replay, send)

    return middleware
