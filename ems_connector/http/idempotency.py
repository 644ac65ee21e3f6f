"""Idempotency-Key on writes: the change and its stored response commit together."""

from __future__ import annotations

import hashlib
from typing import Any, cast

from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send

from ems_connector.context import RequestContext
from ems_connector.errors import BadRequest, Conflict, Unprocessable
from ems_connector.http.body_guard import WRITE_METHODS
from ems_connector.persistence import idempotency as repo

# Answers that mean "try again" are not stored: replaying them would make a transient
# refusal permanent for that key. Every other answer below 500 is stored.
_NOT_STORED = frozenset({409, 429})
# Headers that are recomputed for each response, so they are not stored for replay.
_NOT_REPLAYED = {b"content-length", b"date", b"x-request-id"}


def _valid_key(key: str) -> bool:
    return 1 <= len(key) <= 255 and key.isprintable() and key.isascii()


def _fingerprint(scope: HTTPScope, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (scope["method"].encode(), scope["path"].encode(), scope["query_string"], body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def idempotency_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        raw_key = dict(scope["headers"]).get(b"idempotency-key")
        if cast("HTTPScope", scope)["method"] not in WRITE_METHODS or raw_key is None:
            await app(scope, receive, send)
            return
        key = raw_key.decode("latin-1")
        if not _valid_key(key):
            raise BadRequest(
                "INVALID_IDEMPOTENCY_KEY",
                "Idempotency-Key must be 1-255 printable ASCII characters",
                {"fields": [{"field": "Idempotency-Key", "message": "1-255 printable chars"}]},
            )
        ctx: RequestContext = scope["state"]["ctx"]
        # (publisher, key) of requests running in this process right now. Kept on the app,
        # not here: Litestar builds this middleware once per route, and a key spans routes.
        in_flight: set[tuple[int, str]] = scope["app"].state.setdefault(
            "idempotency_in_flight", set()
        )
        slot = (ctx.publisher_id, key)
        if slot in in_flight:
            raise _key_in_use()
        services: Any = scope["app"].state.services
        settings: Any = scope["app"].state.settings
        fingerprint = _fingerprint(cast("HTTPScope", scope), scope["state"].get("raw_body", b""))
        in_flight.add(slot)
        try:
            await _run_once(app, scope, receive, send, services, settings, ctx, key, fingerprint)
        finally:
            in_flight.discard(slot)

    return middleware


def _key_in_use() -> Conflict:
    return Conflict(
        "IDEMPOTENCY_KEY_IN_USE",
        "A request with this Idempotency-Key is still running; retry when it is done",
    )


async def _run_once(
    app: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
    services: Any,
    settings: Any,
    ctx: RequestContext,
    key: str,
    fingerprint: str,
) -> None:
    now = services.clock.now()
    captured: list[Any] = []  # ASGI messages, sent on only after the commit
    async with services.db.outer_transaction() as outer:
        if not await repo.hold(outer.conn, ctx.publisher_id, key):
            raise _key_in_use()
        stored = await repo.find(
            outer.conn, ctx.publisher_id, key, not_before=now - settings.idempotency_ttl_seconds
        )
        if stored is not None:
            if stored["fingerprint"] != fingerprint:
                raise Unprocessable(
                    "IDEMPOTENCY_KEY_REUSED",
                    "This Idempotency-Key was used for a different request; use a new key",
                )
            headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in stored["headers"]]
            captured = [
                {
                    "type": "http.response.start",
                    "status": stored["status_code"],
                    "headers": [*headers, (b"idempotent-replayed", b"true")],
                },
                {"type": "http.response.body", "body": stored["body"], "more_body": False},
            ]
        else:

            async def capture(message: Message) -> None:
                captured.append(message)

            await app(scope, receive, capture)
            start: Any = captured[0]
            status: int = start["status"]
            if status < 500 and status not in _NOT_STORED:
                body = b"".join(m.get("body", b"") for m in captured[1:])
                kept = [
                    [k.decode("latin-1"), v.decode("latin-1")]
                    for k, v in start.get("headers", [])
                    if k.lower() not in _NOT_REPLAYED
                ]
                content_type = dict(start.get("headers", [])).get(b"content-type", b"")
                await repo.store(
                    outer.conn,
                    publisher_id=ctx.publisher_id,
                    key=key,
                    fingerprint=fingerprint,
                    status_code=status,
                    content_type=content_type.decode("latin-1"),
                    headers=kept,
                    body=body,
                    now=now,
                )
                outer.commit_on_exit()
    # Sent only after the commit: a client never sees a response that was not kept.
    for message in captured:
        await send(message)
