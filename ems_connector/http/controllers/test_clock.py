"""/3.1/test/clock: read or move the service clock; mounted only with EMS_TEST_MODE=1."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post
from litestar.params import JSONBody
from msgspec import Meta

from ems_connector.errors import field_error
from ems_connector.http.dependencies import ServicesDep
from ems_connector.http.errors import error_responses
from ems_connector.http.params import IdempotencyKey
from ems_connector.schemas.common import RequestBody, ResponseBody


class ClockRequest(RequestBody):
    now: Annotated[int, Meta(ge=1, le=99_999_999_999)] | None = None
    advance_seconds: Annotated[int, Meta(ge=-(10**10), le=10**10)] | None = None


class ClockResource(ResponseBody):
    now: int


class TestClockController(Controller):
    path = "/test/clock"
    tags = ["Test mode"]

    @get("/", summary="Read the service clock", responses=error_responses())
    async def read(self, services: ServicesDep) -> ClockResource:
        return ClockResource(now=services.clock.now())

    @post(
        "/",
        status_code=200,
        summary="Set or advance the service clock",
        description="Renewal dates that the move reaches are noted, and subscriptions past "
        "their grace period terminated, before the answer; the webhook dispatcher is woken "
        "for retries that became due.",
        responses=error_responses(400),
    )
    async def move(
        self,
        services: ServicesDep,
        data: JSONBody[ClockRequest],
        idempotency_key: IdempotencyKey = None,
    ) -> ClockResource:
        if (data.now is None) == (data.advance_seconds is None):
            raise field_error("now", "send exactly one of now and advanceSeconds")
        if data.now is not None:
            now = services.clock.set(data.now)
        else:
            assert data.advance_seconds is not None
            now = services.clock.advance(data.advance_seconds)
        # What the clock's move made due happens before the answer: renewal dates noted,
        # expired subscriptions terminated, retries sent.
        await services.renewals_due.run()
        await services.expiry_sweep.run()
        if services.uow.on_events is not None:
            services.uow.on_events()
        return ClockResource(now=now)
