"""Resolves the API key to its publisher and gives every request an id."""

from __future__ import annotations

import re
import uuid
from typing import Any

from litestar.datastructures import MutableScopeHeaders
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from ems_connector.context import RequestContext
from ems_connector.errors import Unauthorized

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


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
        request_id = raw_request_id if _REQUEST_ID.match(raw_request_id) else uuid.uuid4().hex
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
            headers = MutableScopeHeaders.from_message(message)
            headers["X-Request-Id"] = request_id
