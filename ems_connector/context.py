"""Who is asking: the publisher, the request id and the actor recorded in the log."""

from __future__ import annotations

import msgspec


class RequestContext(msgspec.Struct, frozen=True):
    publisher_id: int
    request_id: str | None
    actor: str
