"""create_app(settings): routes, dependencies, error mapping and the lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import httpx
from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.types import LifeSpanReceive, LifeSpanScope, LifeSpanSend, Receive, Scope, Send

from ems_connector.clock import Clock
from ems_connector.config import Settings, load_settings
from ems_connector.http.access_lane import AccessLane
from ems_connector.http.auth import auth_middleware, echo_request_id
from ems_connector.http.body_guard import body_guard_middleware
from ems_connector.http.body_validation import body_validation_middleware
from ems_connector.http.controllers.customers import CustomerController
from ems_connector.http.controllers.entitlements import AccessController, EntitlementController
from ems_connector.http.controllers.health import health, ready
from ems_connector.http.controllers.offers import OfferController
from ems_connector.http.controllers.operations import OperationController
from ems_connector.http.controllers.payment_methods import PaymentMethodController
from ems_connector.http.controllers.payments import PaymentController
from ems_connector.http.controllers.reconciliations import ReconciliationController
from ems_connector.http.controllers.subscriptions import SubscriptionController
from ems_connector.http.controllers.switches import SwitchController
from ems_connector.http.controllers.test_clock import TestClockController
from ems_connector.http.controllers.webhooks import (
    SyncStatusController,
    WebhookDeliveryController,
    WebhookEndpointController,
    WebhookSubscriptionController,
)
from ems_connector.http.errors import EXCEPTION_HANDLERS
from ems_connector.http.idempotency import idempotency_middleware
from ems_connector.openapi import openapi_config
from ems_connector.persistence.database import Database
from ems_connector.persistence.migrate import upgrade
from ems_connector.services.container import Services
from ems_connector.services.idempotency_keys import ExpiredKeys
from webhooks.dispatcher import Dispatcher

log = logging.getLogger("ems_connector")
# httpx logs every request at INFO: one line per webhook attempt, which the delivery log
# already keeps
logging.getLogger("httpx").setLevel(logging.WARNING)


# How often the service looks for renewal dates that have come and for subscriptions expired
# past their grace period (every move of the test clock also does).
SCHEDULE_SECONDS = 30.0
# How often stored Idempotency-Key responses past their TTL are deleted.
PURGE_SECONDS = 3600.0


async def once(job: Callable[[], Awaitable[object]]) -> None:
    """Run `job` in the background; a failure is logged, not fatal."""
    try:
        await job()
    except Exception:
        log.exception("background job %s failed", getattr(job, "__qualname__", job))


async def every(seconds: float, job: Callable[[], Awaitable[object]]) -> None:
    """Run `job` now and then every `seconds`, until cancelled; a failure is logged, not fatal."""
    while True:
        await once(job)
        await asyncio.sleep(seconds)


class App(Litestar):
    """Litestar with the access check's fast lane in front of it (http/access_lane.py)."""

    lane: AccessLane | None = None

    async def __call__(
        self,
        scope: Scope | LifeSpanScope,
        receive: Receive | LifeSpanReceive,
        send: Send | LifeSpanSend,
    ) -> None:
        if (
            self.lane is not None
            and scope["type"] == "http"
            and await self.lane.answer(scope, send)  # type: ignore[arg-type]
        ):
            return
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
) -> Litestar:
    settings = settings or load_settings()
    db = Database(
        settings.database_url,
        busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        read_pool_size=settings.read_pool_size,
    )
    services = Services(
        db, clock or Clock(), access_cache_customers=settings.access_cache_customers
    )
    dispatcher = (
        Dispatcher(
            db,
            services.clock.now_float,
            transport=webhook_transport,
            lease_seconds=settings.delivery_lease_seconds,
        )
        if settings.dispatcher == "inline"
        else None
    )
    background: list[asyncio.Task[None]] = []

    async def start() -> None:
        await upgrade(db.write_engine)
        if dispatcher is not None:
            services.uow.on_events = dispatcher.wake
            background.append(asyncio.create_task(dispatcher.run(), name="webhook-dispatcher"))
        background.append(
            asyncio.create_task(
                every(SCHEDULE_SECONDS, services.renewals_due.run), name="renewals-due"
            )
        )
        background.append(
            asyncio.create_task(
                every(SCHEDULE_SECONDS, services.expiry_sweep.run), name="expiry-sweep"
            )
        )
        await services.reconciliations.resume()  # what a stop left unfinished
        if services.access_index.capacity > 0:
            # the first check of each customer is answered from memory too, not only repeats
            await services.publishers.warm()
            background.append(
                asyncio.create_task(once(services.access_index.warm), name="access-index-warm")
            )
        expired_keys = ExpiredKeys(db, services.clock, settings.idempotency_ttl_seconds)
        background.append(
            asyncio.create_task(
                every(PURGE_SECONDS, expired_keys.purge), name="expired-idempotency-keys"
            )
        )

    async def stop() -> None:
        if dispatcher is not None:
            # in-flight attempts finish and are recorded; the rest stay in the outbox
            await dispatcher.stop()
        await services.reconciliations.stop()  # resumed at the next start
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await db.dispose()

    api_routes: list[type] = [
        SubscriptionController,
        SwitchController,
        PaymentController,
        CustomerController,
        WebhookEndpointController,
        WebhookSubscriptionController,
        WebhookDeliveryController,
        SyncStatusController,
        OfferController,
        PaymentMethodController,
        OperationController,
        EntitlementController,
        AccessController,
        ReconciliationController,
    ]
    if settings.test_mode:
        api_routes.append(TestClockController)
    api = Router(
        path="/3.1",
        route_handlers=api_routes,
        # auth first (401 before anything else), then reading the body, then idempotency,
        # so that a refused body is stored for replay like any other response below 500
        middleware=[
            auth_middleware,
            body_guard_middleware,
            idempotency_middleware,
            body_validation_middleware,
        ],
        security=[{"PublisherToken": []}, {"Bearer": []}],
    )
    app = App(
        route_handlers=[api, health, ready],
        dependencies={"services": Provide(lambda: services, use_cache=True, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=openapi_config(),
        state=State({"services": services, "settings": settings, "dispatcher": dispatcher}),
        on_startup=[start],
        on_shutdown=[stop],
        before_send=[echo_request_id],
        # our body guard enforces the configured limit with the contract's 400
        request_max_body_size=None,
        debug=False,
    )
    app.lane = AccessLane(services.publishers, services.access_index)
    return app


def create_app_from_env() -> Litestar:
    """Factory for ASGI servers: settings from EMS_* variables."""
    return create_app(load_settings())
