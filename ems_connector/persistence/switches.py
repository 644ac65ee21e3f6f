"""Subscription switch rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ems_connector.persistence.tables import switches
from prepared_sql import Row


async def get(conn: AsyncConnection, publisher_id: int, switch_id: str) -> Row | None:
    result = await conn.execute(
        select(switches).where(switches.c.publisher_id == publisher_id, switches.c.id == switch_id)
    )
    return result.mappings().first()


async def search(
    conn: AsyncConnection,
    publisher_id: int,
    *,
    customer_id: int | None,
    subscription_id: int | None,
    statuses: Sequence[str],
    offset: int,
    limit: int,
) -> Sequence[Row]:
    query = select(switches).where(switches.c.publisher_id == publisher_id)
    if customer_id is not None:
        query = query.where(switches.c.customer_id == customer_id)
    if subscription_id is not None:
        query = query.where(switches.c.subscription_id == subscription_id)
    if statuses:
        query = query.where(switches.c.status.in_(list(statuses)))
    result = await conn.execute(query.order_by(switches.c.seq).offset(offset).limit(limit))
    return result.mappings().all()


async def insert_switch(conn: AsyncConnection, values: dict[str, Any]) -> Row:
    result = await conn.execute(insert(switches).values(**values).returning(*switches.c))
    return result.mappings().one()


async def update_switch(conn: AsyncConnection, row: Row, values: dict[str, Any]) -> Row | None:
    """Write `values` if the switch still has `row`'s status; None when another write won."""
    result = await conn.execute(
        update(switches)
        .where(switches.c.seq == row["seq"], switches.c.status == row["status"])
        .values(**values)
        .returning(*switches.c)
    )
    return result.mappings().first()
