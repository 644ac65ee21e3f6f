"""Payment method rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import RowMapping, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ems_connector.persistence.tables import payment_methods


async def get(conn: AsyncConnection, publisher_id: int, method_id: int) -> RowMapping | None:
    result = await conn.execute(
        select(payment_methods).where(
            payment_methods.c.publisher_id == publisher_id, payment_methods.c.id == method_id
        )
    )
    return result.mappings().first()


async def list_all(conn: AsyncConnection, publisher_id: int) -> Sequence[RowMapping]:
    result = await conn.execute(
        select(payment_methods)
        .where(payment_methods.c.publisher_id == publisher_id)
        .order_by(payment_methods.c.id)
    )
    return result.mappings().all()


async def insert_method(conn: AsyncConnection, values: dict[str, Any]) -> RowMapping:
    result = await conn.execute(
        insert(payment_methods).values(**values).returning(*payment_methods.c)
    )
    return result.mappings().one()
