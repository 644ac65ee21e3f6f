"""The channel access check's fast lane: answers it from memory before the framework runs.

It is the hottest read (CONTRACT §7: every stream request of a streaming server asks it), and
Litestar's routing, middleware, dependency and response machinery cost more than the check
itself. The lane answers only what memory alone answers with a 200: a key already proven, a
customer and catalogue already loaded. Anything else (a first request, a miss, a bad key or
id, another method) goes to the ordinary route, which answers it and loads what the next
request needs. So both answer alike, byte for byte: `tests/test_access_lane.py` compares them.
Whatever the ordinary route gains on every request (headers, logging, metrics, limits) must
be added here as well.
"""

from __future__ import annotations

import re

import msgspec
from litestar.types import HTTPScope, Send

from ems_connector.http.auth import REQUEST_ID, api_key_of, new_request_id
from ems_connector.schemas.entitlements import AccessResource
from ems_connector.services.access_index import AccessIndex
from ems_connector.services.publishers import PublisherService

# what the route `/3.1/access/customer_id/{customer_id}/channel/{channel}` accepts as valid
_PATH = re.compile(
    r"/3\.1/access/customer_id/([0-9]{1,18})/channel/([A-Za-z0-9][A-Za-z0-9._:-]{0,63})"
)
_ENCODER = msgspec.json.Encoder()


class AccessLane:
    def __init__(self, publishers: PublisherService, index: AccessIndex) -> None:
        self.publishers = publishers
        self.index = index

    async def answer(self, scope: HTTPScope, send: Send) -> bool:
        """Send the 200 of a check that memory answers and return True; else send nothing
        and return False."""
        if scope["method"] != "GET":
            return False
        match = _PATH.fullmatch(scope["path"])
        if match is None:
            return False
        headers = dict(scope["headers"])
        api_key = api_key_of(headers)
        if api_key is None:
            return False
        publisher_id = self.publishers.known(api_key)
        if publisher_id is None:
            return False
        offers = self.index.answer_from_memory(publisher_id, int(match[1]), match[2])
        if offers is None:
            return False
        body = _ENCODER.encode(AccessResource(access_granted=bool(offers), offer_ids=offers))
        raw_request_id = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = raw_request_id if REQUEST_ID.match(raw_request_id) else new_request_id()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-request-id", request_id.encode("latin-1")),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})
        return True
