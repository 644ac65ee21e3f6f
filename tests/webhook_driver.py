"""Webhook tests' driver: a still service clock, a hand-run dispatcher and API shortcuts."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Sequence
from typing import Any

import msgspec

from ems_connector.clock import Clock
from ems_connector.config import Settings
from ems_connector.services.container import Services
from tests.conftest import Api, AppClient, running_app
from webhooks import topics
from webhooks.dispatcher import Dispatcher

START = 1_750_000_000  # 2025-06-15, where the still clock starts
DAY = 86400


class StillClock(Clock):
    """The service clock standing still between the test's moves, so due times are exact."""

    def __init__(self, now: float = START) -> None:
        super().__init__()
        self._now = float(now)

    def now(self) -> int:
        return int(self._now)

    def now_float(self) -> float:
        return self._now

    def set(self, now: int) -> int:
        self._now = float(now)
        return self.now()

    def advance(self, seconds: int) -> int:
        self._now += seconds
        return self.now()


@contextlib.asynccontextmanager
async def manual_app(settings: Settings) -> AsyncIterator[AppClient]:
    """The app on a StillClock, without its background dispatcher: tests deliver by hand."""
    quiet = msgspec.structs.replace(settings, dispatcher="off")
    async with running_app(quiet, clock=StillClock()) as client:
        yield client


class Hooks:
    """One tenant's webhooks: endpoints, the clock, deliveries made only when asked."""

    def __init__(self, api: Api, services: Services) -> None:
        self.api = api
        self.services = services
        self.dispatcher = self.new_dispatcher()
        self._customer: int | None = None
        self._made = 0

    def new_dispatcher(self, **options: Any) -> Dispatcher:
        return Dispatcher(
            self.services.db, self.services.clock.now_float, rng=random.Random(0), **options
        )

    async def deliver(self) -> int:
        """Make every attempt due now and record it; the number of attempts made."""
        return await self.dispatcher.run_once()

    @contextlib.asynccontextmanager
    async def running(self, **options: Any) -> AsyncIterator[Dispatcher]:
        """A dispatcher delivering in the background, woken by every commit with events."""
        dispatcher = self.new_dispatcher(**options)
        self.services.uow.on_events = dispatcher.wake
        task = asyncio.create_task(dispatcher.run())
        try:
            yield dispatcher
        finally:
            self.services.uow.on_events = None
            await dispatcher.stop()
            await task

    # ---- the clock -------------------------------------------------------------------------

    async def now(self) -> int:
        response = await self.api.call("GET", "/3.1/test/clock", expect=200)
        return int(response.json()["now"])

    async def advance(self, seconds: int) -> int:
        body = {"advanceSeconds": seconds}
        response = await self.api.call("POST", "/3.1/test/clock", body, expect=200)
        return int(response.json()["now"])

    async def move_to(self, when: int) -> int:
        return await self.advance(when - await self.now())

    # ---- configuration and changes -----------------------------------------------------------

    async def endpoint(
        self, url: str, topics: Sequence[str] = topics.SUBSCRIPTION_TOPICS, **extra: Any
    ) -> dict[str, Any]:
        body = {"url": url, "topics": list(topics), **extra}
        response = await self.api.call("POST", "/3.1/webhook_endpoints", body, expect=201)
        return response.json()  # type: ignore[no-any-return]

    async def get_endpoint(self, endpoint_id: str) -> dict[str, Any]:
        response = await self.api.call("GET", f"/3.1/webhook_endpoints/{endpoint_id}", expect=200)
        return response.json()  # type: ignore[no-any-return]

    async def set_enabled(self, endpoint_id: str, enabled: bool) -> dict[str, Any]:
        path = f"/3.1/webhook_endpoints/{endpoint_id}"
        response = await self.api.call("PATCH", path, {"enabled": enabled}, expect=200)
        return response.json()  # type: ignore[no-any-return]

    async def subscription(self) -> int:
        """A new subscription (one `subscriptionCreated` event); its id."""
        if self._customer is None:
            self._customer = await self.api.customer("hooks@example.com")
        self._made += 1
        created = await self.api.subscription(self._customer, f"ext-{self._made}")
        return int(created["subscriptionId"])

    async def cancel(self, subscription_id: int) -> None:
        path = f"/3.1/subscriptions/{subscription_id}/cancel"
        await self.api.call("POST", path, {"cancellationReason": "test"}, expect=200)

    async def activate(self, subscription_id: int) -> None:
        await self.api.call("POST", f"/3.1/subscriptions/{subscription_id}/activate", expect=200)

    async def terminate(self, subscription_id: int) -> None:
        path = f"/3.1/subscriptions/{subscription_id}/terminate"
        await self.api.call("POST", path, {"terminationType": "publisherCancel"}, expect=200)

    # ---- the operator's view -----------------------------------------------------------------

    async def page(self, **params: Any) -> dict[str, Any]:
        """One page of GET /3.1/webhook_deliveries, the whole envelope."""
        response = await self.api.call("GET", "/3.1/webhook_deliveries", params=params, expect=200)
        return response.json()  # type: ignore[no-any-return]

    async def deliveries(self, **params: Any) -> list[dict[str, Any]]:
        """Every delivery matching `params`, oldest first (one page of up to 100)."""
        page = await self.page(limit=100, **params)
        assert page["next"] is None
        return page["data"]  # type: ignore[no-any-return]

    async def only_delivery(self, **params: Any) -> dict[str, Any]:
        (delivery,) = await self.deliveries(**params)
        return delivery

    async def sync_status(self, subscription_id: int) -> dict[str, Any]:
        path = f"/3.1/subscriptions/{subscription_id}/sync_status"
        response = await self.api.call("GET", path, expect=200)
        return response.json()  # type: ignore[no-any-return]
