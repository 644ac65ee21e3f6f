"""A unit of work: one transaction in which a use case loads, writes and logs."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from ems_connector.clock import Clock
from ems_connector.context import RequestContext
from ems_connector.persistence import operations
from ems_connector.persistence.database import Database


class UnitOfWork:
    """The open transaction of one use case, with the time it happens at and who asked."""

    def __init__(self, conn: AsyncConnection, now: int, context: RequestContext) -> None:
        self.conn = conn
        self.now = now
        self.context = context

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

    @contextlib.asynccontextmanager
    async def __call__(self, context: RequestContext) -> AsyncIterator[UnitOfWork]:
        async with self.db.transaction() as conn:
            yield UnitOfWork(conn, self.clock.now(), context)
