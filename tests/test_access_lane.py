"""The access check's fast lane answers exactly as the ordinary route does, and only what
memory can answer."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ems_connector.http.access_lane import AccessLane
from tests.conftest import MONTHLY, Api

pytestmark = pytest.mark.sqlite_only  # the in-memory index and its lane are SQLite-only


class CountingLane:
    """Wraps the app's lane to tell which requests it answered."""

    def __init__(self, lane: AccessLane) -> None:
        self.lane = lane
        self.answered = 0

    async def answer(self, scope: Any, send: Any) -> bool:
        answered = await self.lane.answer(scope, send)
        self.answered += answered
        return answered


@pytest.fixture
def lane(api: Api) -> CountingLane:
    app: Any = api.client.app
    counting = CountingLane(app.lane)
    app.lane = counting
    return counting


def _shape(response: httpx.Response) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    return response.status_code, list(response.headers.raw), response.content


async def test_the_lane_answers_byte_for_byte_as_the_route(api: Api, lane: CountingLane) -> None:
    jane = await api.customer()
    await api.subscription(jane)
    for channel in ("sport-1", "news-1", "movies-1", "nobody.grants:this"):
        path = f"/3.1/access/customer_id/{jane}/channel/{channel}"
        headers = {"X-Request-Id": f"req-{channel}"}
        before = lane.answered
        api.client.app.lane = None  # type: ignore[attr-defined]
        by_route = await api.call("GET", path, headers=headers, expect=200)
        api.client.app.lane = lane  # type: ignore[attr-defined]
        by_lane = await api.call("GET", path, headers=headers, expect=200)
        assert lane.answered == before + 1
        assert _shape(by_lane) == _shape(by_route)


async def test_the_lane_makes_up_request_ids_as_the_route_does(
    api: Api, lane: CountingLane
) -> None:
    jane = await api.customer()
    path = f"/3.1/access/customer_id/{jane}/channel/news-1"
    await api.call("GET", path, expect=200)  # loads what the lane needs
    for sent in (None, "not a valid id!", "x" * 65):
        response = await api.call(
            "GET", path, headers={} if sent is None else {"X-Request-Id": sent}, expect=200
        )
        request_id = response.headers["X-Request-Id"]
        assert request_id != sent
        assert len(request_id) == 32 and int(request_id, 16) >= 0
    assert lane.answered == 3


async def test_what_memory_cannot_answer_goes_to_the_route(
    api: Api, other_api: Api, lane: CountingLane
) -> None:
    jane = await api.customer()
    await api.subscription(jane)
    path = f"/3.1/access/customer_id/{jane}/channel/sport-1"
    first = await api.call("GET", path, expect=200)
    assert lane.answered == 0  # nothing was in memory yet
    assert first.json() == {"accessGranted": True, "offerIds": [MONTHLY]}
    await api.call("GET", path, expect=200)
    assert lane.answered == 1

    refused = [
        await api.client.get(path),  # no key
        await api.client.get(path, headers={"X-Publisher-Token": "ems_unknown"}),
        await other_api.call("GET", path),  # another publisher's customer, in memory
        await api.call("GET", f"/3.1/access/customer_id/{jane}/channel/-bad"),
        await api.call("GET", f"/3.1/access/customer_id/{jane}x/channel/sport-1"),
        await api.call("GET", "/3.1/access/customer_id/999999999/channel/sport-1"),
        await api.call("POST", path),
    ]
    assert [(r.status_code, r.json()["code"]) for r in refused] == [
        (401, "UNAUTHORIZED"),
        (401, "UNAUTHORIZED"),
        (404, "CUSTOMER_NOT_FOUND"),
        (400, "INVALID_CHANNEL"),
        (400, "INVALID_ID"),
        (404, "CUSTOMER_NOT_FOUND"),
        (405, "METHOD_NOT_ALLOWED"),
    ]
    assert lane.answered == 1


async def test_the_lane_never_answers_from_before_a_change(api: Api, lane: CountingLane) -> None:
    jane = await api.customer()
    sub = await api.subscription(jane)
    path = f"/3.1/access/customer_id/{jane}/channel/sport-1"
    for _ in range(2):
        assert (await api.call("GET", path, expect=200)).json()["accessGranted"] is True
    assert lane.answered == 1
    await api.call(
        "POST",
        f"/3.1/subscriptions/{sub['subscriptionId']}/terminate",
        {"terminationType": "userCancel"},
        expect=200,
    )
    answered = lane.answered
    assert (await api.call("GET", path, expect=200)).json() == {
        "accessGranted": False,
        "offerIds": [],
    }
    assert lane.answered == answered  # the change dropped the entry: the route reloaded it
    await api.call("GET", path, expect=200)
    assert lane.answered == answered + 1
