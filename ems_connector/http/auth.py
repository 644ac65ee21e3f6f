"""Resolves the API key to its publisher and gives every request an id."""

from __future__ import annotations

import itertools
import re
import secrets
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from ems_connector.context import RequestContext
from ems_connector.errors import Unauthorized

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_ID_PREFIX = secrets.token_hex(8)
_id_counter = itertools.count(1)


def new_request_id() -> str:
    """32 hex digits, unique across requests and restarts; not secret, so a random prefix
    per process and a counter do (uuid4 costs more than the whole access check)."""
    return f"{_ID_PREFIX}{next(_id_counter):016x}"


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return dict(scope["headers"])


def api_key_of(headers: dict[bytes, bytes]) -> str | None:
    token = headers.get(b"x-publisher-token")
    if token:
        return token.decode("latin-1").strip()
    authorization = headers.get(b"authorization", b"").decode("latin-1").strip()
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


def auth_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        headers = _headers(scope)
        raw_request_id = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = raw_request_id if REQUEST_ID.match(raw_request_id) else new_request_id()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id  # echoed by `echo_request_id`, on errors too
        api_key = api_key_of(headers)
        if api_key is None:
            raise Unauthorized(
                "UNAUTHORIZED",
                "Send a valid API key in X-Publisher-Token (or Authorization: Bearer)",
            )
        services: Any = scope["app"].state.services
        publisher_id = await services.publishers.authenticate(api_key)
        if publisher_id is None:
            raise Unauthorized("UNAUTHORIZED", "The API key is not known; check X-Publisher-Token")
        state["ctx"] = RequestContext(
            publisher_id=publisher_id, request_id=request_id, actor=f"apikey:{api_key[:8]}"
        )
        await app(scope, receive, send)

    return middleware


async def echo_request_id(message: Message, scope: Scope) -> None:
    """before_send hook: every /3.1 response carries the request id it was logged under."""
    if message["type"] == "http.response.start":
        request_id = scope.get("state", {}).get("request_id")
        if request_id is not None:
            # appended as is: nothing else sets this header
            message["headers"] = [
                *message.get("headers", ()),
                (b"x-request-id", request_id.encode("latin-1")),
            ]
