"""Customer rows; emails are unique per publisher, compared case-insensitively."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

import prepared_sql
from ems_connector.persistence.tables import customers
from prepared_sql import Row

_GET = prepared_sql.Prepared(
    select(customers).where(
        customers.c.publisher_id == bindparam("w_publisher_id"), customers.c.id == bindparam("w_id")
    )
)


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def get(
    conn: AsyncConnection, publisher_id: int, customer_id: int
) -> prepared_sql.Row | None:
    return await prepared_sql.first(
        conn, _GET, {"w_publisher_id": publisher_id, "w_id": customer_id}
    )


async def find_by_email(conn: AsyncConnection, publisher_id: int, email: str) -> Row | None:
    result = await conn.execute(
        select(customers).where(
            customers.c.publisher_id == publisher_id,
            customers.c.email_normalized == normalize_email(email),
        )
    )
    return result.mappings().first()


async def search(
    conn: AsyncConnection,
    publisher_id: int,
    *,
    email: str | None,
    external_id: str | None,
    offset: int,
    limit: int,
) -> Sequence[Row]:
    query = select(customers).where(customers.c.publisher_id == publisher_id)
    if email is not None:
        query = query.where(customers.c.email_normalized == normalize_email(email))
    if external_id is not None:
        query = query.where(customers.c.external_id == external_id)
    result = await conn.execute(query.order_by(customers.c.id).offset(offset).limit(limit))
    return result.mappings().all()


async def insert_customer(conn: AsyncConnection, values: dict[str, Any]) -> Row | None:
    """The new row, or None when the email is taken; the caller then abandons its work."""
    try:
        result = await conn.execute(insert(customers).values(**values).returning(*customers.c))
        return result.mappings().one()
    except IntegrityError:
        return None


async def update_customer(
    conn: AsyncConnection, publisher_id: int, customer_id: int, values: dict[str, Any]
) -> Row | None:
    """The updated row, or None when the email is taken; the caller then abandons its work."""
    try:
        result = await conn.execute(
            update(customers)
            .where(customers.c.publisher_id == publisher_id, customers.c.id == customer_id)
            .values(**values)
            .returning(*customers.c)
        )
        return result.mappings().one()
    except IntegrityError:
        return None


async def emails_of(conn: AsyncConnection, customer_ids: set[int]) -> dict[int, str]:
    if not customer_ids:
        return {}
    result = await conn.execute(
        select(customers.c.id, customers.c.email).where(customers.c.id.in_(customer_ids))
    )
    return {customer_id: email for customer_id, email in result.all()}
