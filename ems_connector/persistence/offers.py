"""Offer rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

import prepared_sql
from ems_connector.persistence.tables import offers
from prepared_sql import Row

_GET = prepared_sql.Prepared(
    select(offers).where(
        offers.c.publisher_id == bindparam("w_publisher_id"),
        offers.c.offer_id == bindparam("w_offer_id"),
    )
)


async def get(conn: AsyncConnection, publisher_id: int, offer_id: str) -> prepared_sql.Row | None:
    return await prepared_sql.first(
        conn, _GET, {"w_publisher_id": publisher_id, "w_offer_id": offer_id}
    )


async def list_all(conn: AsyncConnection, publisher_id: int) -> Sequence[Row]:
    result = await conn.execute(
        select(offers).where(offers.c.publisher_id == publisher_id).order_by(offers.c.offer_id)
    )
    return result.mappings().all()


async def insert_offer(conn: AsyncConnection, values: dict[str, Any]) -> bool:
    """False when the offer id is taken; the caller then abandons its unit of work."""
    try:
        await conn.execute(insert(offers).values(**values))
    except IntegrityError:
        return False
    return True


async def update_offer(
    conn: AsyncConnection, publisher_id: int, offer_id: str, version: int, values: dict[str, Any]
) -> bool:
    """Write `values` if the row is still at `version`; False when someone wrote first."""
    result = await conn.execute(
        update(offers)
        .where(
            offers.c.publisher_id == publisher_id,
            offers.c.offer_id == offer_id,
            offers.c.version == version,
        )
        .values(**values, version=version + 1)
    )
    return result.rowcount == 1
