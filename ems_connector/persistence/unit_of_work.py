"""A unit of work: one transaction in which a use case loads, writes and logs."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from ems_connector.clock import Clock
from ems_connector.context import RequestContext
from ems_connector.persistence import operations
from ems_connector.persistence.database import Database
from webhooks import outbox


class UnitOfWork:
    """The open transaction of one use case, with the time it happens at and who asked."""

    def __init__(self, conn: AsyncConnection, now: int, context: RequestContext) -> None:
        self.conn = conn
        self.now = now
        self.context = context
        self.emitted = 0
        # whose entitlements this change may move: customers, or the publisher's catalogue
        self.customers_changed: set[int] = set()
        self.catalogue_changed = False
        # lookups the use case may repeat within this transaction
        self.memo: dict[str, Any] = {}

    async def emit(
        self,
        topic: str,
        data: Any,
        *,
        subscription_id: int | None = None,
        subscription_version: int | None = None,
        payment_id: int | None = None,
        payment_method_id: int | None = None,
        endpoint_ids: list[str] | None = None,
    ) -> None:
        """Put a webhook event in the outbox; it commits (or not) with the change."""
        await outbox.enqueue(
            self.conn,
            publisher_id=self.context.publisher_id,
            topic=topic,
            data=data,
            now=self.now,
            subscription_id=subscription_id,
            subscription_version=subscription_version,
            payment_id=payment_id,
            payment_method_id=payment_method_id,
            endpoint_ids=endpoint_ids,
        )
        self.emitted += 1

    def touch_outbox(self) -> None:
        """Deliveries became due without a new event (a retry, a recovery): wake the
        dispatcher after the commit too."""
        self.emitted += 1

    def entitlements_changed(self, customer_id: int) -> None:
        """This change may grant or withdraw access of `customer_id` (a subscription's
        status, offer or owner)."""
        self.customers_changed.add(customer_id)

    def offers_changed(self) -> None:
        """This change may move what offers grant (their channels, the free flag)."""
        self.catalogue_changed = True

    async def log(
        self,
        type: str,
        payload: dict[str, Any],
        *,
        customer_id: int | None = None,
        subscription_id: int | None = None,
        switch_id: str | None = None,
        payment_id: int | None = None,
    ) -> str:
        """Append the operation describing this change; it commits with the change."""
        return await operations.append(
            self.conn,
            publisher_id=self.context.publisher_id,
            type=type,
            actor=self.context.actor,
            request_id=self.context.request_id,
            created_at=self.now,
            payload=payload,
            customer_id=customer_id,
            subscription_id=subscription_id,
            switch_id=switch_id,
            payment_id=payment_id,
        )


class UnitOfWorkFactory:
    """Opens units of work on the database, stamped with the service clock."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        # called once a commit that put events in the outbox is durable (wakes the dispatcher)
        self.on_events: Callable[[], None] | None = None
        # called with each unit of work that moved entitlements, once it is durable and
        # before its caller hears of it
        self.on_entitlements: list[Callable[[UnitOfWork], None]] = []

    @contextlib.asynccontextmanager
    async def __call__(self, context: RequestContext) -> AsyncIterator[UnitOfWork]:
        async with self.db.transaction() as conn:
            uow = UnitOfWork(conn, self.clock.now(), context)
            yield uow
            if uow.emitted or uow.customers_changed or uow.catalogue_changed:
                self.db.after_commit(lambda: self._committed(uow))

    def _committed(self, uow: UnitOfWork) -> None:
        if uow.emitted and self.on_events is not None:
            self.on_events()
        if uow.customers_changed or uow.catalogue_changed:
            for listener in self.on_entitlements:
                listener(uow)
