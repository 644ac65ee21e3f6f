"""EMS payment rows; (publisher, payment method, externalPaymentId) is unique."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ems_connector.persistence.tables import payments
from prepared_sql import Row


async def get(conn: AsyncConnection, publisher_id: int, payment_id: int) -> Row | None:
    result = await conn.execute(
        select(payments).where(payments.c.publisher_id == publisher_id, payments.c.id == payment_id)
    )
    return result.mappings().first()


async def find_by_external_id(
    conn: AsyncConnection, publisher_id: int, payment_method_id: int, external_payment_id: str
) -> Row | None:
    result = await conn.execute(
        select(payments).where(
            payments.c.publisher_id == publisher_id,
            payments.c.payment_method_id == payment_method_id,
            payments.c.external_payment_id == external_payment_id,
        )
    )
    return result.mappings().first()


async def search(
    conn: AsyncConnection,
    publisher_id: int,
    *,
    customer_id: int | None,
    subscription_id: int | None,
    offset: int,
    limit: int,
) -> Sequence[Row]:
    query = select(payments).where(payments.c.publisher_id == publisher_id)
    if customer_id is not None:
        query = query.where(payments.c.customer_id == customer_id)
    if subscription_id is not None:
        query = query.where(payments.c.subscription_id == subscription_id)
    result = await conn.execute(query.order_by(payments.c.id).offset(offset).limit(limit))
    return result.mappings().all()


async def insert_payment(conn: AsyncConnection, values: dict[str, Any]) -> Row:
    try:
        result = await conn.execute(insert(payments).values(**values).returning(*payments.c))
    except IntegrityError as exc:
        raise DuplicateExternalPaymentId() from exc
    return result.mappings().one()


async def update_payment(conn: AsyncConnection, payment_id: int, values: dict[str, Any]) -> Row:
    result = await conn.execute(
        update(payments).where(payments.c.id == payment_id).values(**values).returning(*payments.c)
    )
    return result.mappings().one()


async def mark_used(
    conn: AsyncConnection, payment_id: int, used_by: dict[str, Any], now: int
) -> bool:
    """Claim an unused payment for one operation; False when another claimed it first."""
    result = await conn.execute(
        update(payments)
        .where(payments.c.id == payment_id, payments.c.used_by.is_(None))
        .values(used_by=used_by, updated_at=now)
    )
    return result.rowcount == 1


class DuplicateExternalPaymentId(Exception):
    """Another payment of this method holds the externalPaymentId (a concurrent insert)."""
