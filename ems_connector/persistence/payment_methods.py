"""Payment method rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

import prepared_sql
from ems_connector.persistence.tables import payment_methods
from prepared_sql import Row

_GET = prepared_sql.Prepared(
    select(payment_methods).where(
        payment_methods.c.publisher_id == bindparam("w_publisher_id"),
        payment_methods.c.id == bindparam("w_id"),
    )
)


async def get(conn: AsyncConnection, publisher_id: int, method_id: int) -> prepared_sql.Row | None:
    return await prepared_sql.first(conn, _GET, {"w_publisher_id": publisher_id, "w_id": method_id})


async def list_all(conn: AsyncConnection, publisher_id: int) -> Sequence[Row]:
    result = await conn.execute(
        select(payment_methods)
        .where(payment_methods.c.publisher_id == publisher_id)
        .order_by(payment_methods.c.id)
    )
    return result.mappings().all()


async def insert_method(conn: AsyncConnection, values: dict[str, Any]) -> Row:
    result = await conn.execute(
        insert(payment_methods).values(**values).returning(*payment_methods.c)
    )
    return result.mappings().one()
