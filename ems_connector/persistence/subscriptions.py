"""Subscription rows, written with a version check."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import RowMapping, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ems_connector.persistence.tables import subscriptions


class DuplicateExternalId(Exception):
    """Another non-terminated subscription holds this (source, externalId)."""


async def get(conn: AsyncConnection, publisher_id: int, subscription_id: int) -> RowMapping | None:
    result = await conn.execute(
        select(subscriptions).where(
            subscriptions.c.publisher_id == publisher_id, subscriptions.c.id == subscription_id
        )
    )
    return result.mappings().first()


async def find_live_by_external_id(
    conn: AsyncConnection, publisher_id: int, source: str, external_id: str
) -> RowMapping | None:
    result = await conn.execute(
        select(subscriptions).where(
            subscriptions.c.publisher_id == publisher_id,
            subscriptions.c.source == source,
            subscriptions.c.external_id == external_id,
            subscriptions.c.status != "terminated",
        )
    )
    return result.mappings().first()


async def search(
    conn: AsyncConnection,
    publisher_id: int,
    *,
    customer_id: int | None,
    offer_id: str | None,
    payment_method_id: int | None,
    external_id: str | None,
    statuses: Sequence[str],
    offset: int,
    limit: int,
) -> Sequence[RowMapping]:
    query = select(subscriptions).where(subscriptions.c.publisher_id == publisher_id)
    if customer_id is not None:
        query = query.where(subscriptions.c.customer_id == customer_id)
    if offer_id is not None:
        query = query.where(subscriptions.c.offer_id == offer_id)
    if payment_method_id is not None:
        query = query.where(subscriptions.c.payment_method_id == payment_method_id)
    if external_id is not None:
        query = query.where(subscriptions.c.external_id == external_id)
    if statuses:
        query = query.where(subscriptions.c.status.in_(list(statuses)))
    result = await conn.execute(query.order_by(subscriptions.c.id).offset(offset).limit(limit))
    return result.mappings().all()


async def insert_subscription(conn: AsyncConnection, values: dict[str, Any]) -> RowMapping:
    try:
        result = await conn.execute(
            insert(subscriptions).values(**values).returning(*subscriptions.c)
        )
        return result.mappings().one()
    except IntegrityError as exc:
        if "external_id" in str(exc.orig):
            raise DuplicateExternalId() from exc
        raise


async def update_subscription(
    conn: AsyncConnection, row: RowMapping, values: dict[str, Any]
) -> RowMapping | None:
    """Write `values` and bump the version if the row is still at `row`'s version.

    None means another writer committed first (the caller answers 409/412).
    """
    try:
        result = await conn.execute(
            update(subscriptions)
            .where(
                subscriptions.c.id == row["id"],
                subscriptions.c.version == row["version"],
            )
            .values(**values, version=row["version"] + 1)
            .returning(*subscriptions.c)
        )
        return result.mappings().first()
    except IntegrityError as exc:
        if "external_id" in str(exc.orig):
            raise DuplicateExternalId() from exc
        raise


async def set_replaced_by(
    conn: AsyncConnection, row: RowMapping, replaced_by: dict[str, Any]
) -> RowMapping:
    """Link a subscription just written in this transaction to its replacement.

    Part of the same change as that write, so the version does not move again.
    """
    result = await conn.execute(
        update(subscriptions)
        .where(subscriptions.c.id == row["id"])
        .values(replaced_by=replaced_by)
        .returning(*subscriptions.c)
    )
    return result.mappings().one()


async def live_page(
    conn: AsyncConnection,
    publisher_id: int,
    payment_method_id: int | None,
    after_id: int,
    limit: int,
) -> Sequence[RowMapping]:
    """Non-terminated subscriptions with ids above `after_id`, in id order."""
    query = select(subscriptions).where(
        subscriptions.c.publisher_id == publisher_id,
        subscriptions.c.status != "terminated",
        subscriptions.c.id > after_id,
    )
    if payment_method_id is not None:
        query = query.where(subscriptions.c.payment_method_id == payment_method_id)
    result = await conn.execute(query.order_by(subscriptions.c.id).limit(limit))
    return result.mappings().all()


async def renewals_due(conn: AsyncConnection, now: int, limit: int) -> Sequence[RowMapping]:
    """Active subscriptions whose dateTo has come and has not been noted yet."""
    result = await conn.execute(
        select(subscriptions)
        .where(
            subscriptions.c.status == "active",
            subscriptions.c.date_to <= now,
            (subscriptions.c.renewal_due_noted_for.is_(None))
            | (subscriptions.c.renewal_due_noted_for != subscriptions.c.date_to),
        )
        .order_by(subscriptions.c.id)
        .limit(limit)
    )
    return result.mappings().all()


async def note_renewal_due(conn: AsyncConnection, row: RowMapping) -> bool:
    """Mark `row`'s dateTo as noted; False when another process noted it (or it changed)."""
    result = await conn.execute(
        update(subscriptions)
        .where(
            subscriptions.c.id == row["id"],
            subscriptions.c.version == row["version"],
            (subscriptions.c.renewal_due_noted_for.is_(None))
            | (subscriptions.c.renewal_due_noted_for != subscriptions.c.date_to),
        )
        .values(renewal_due_noted_for=row["date_to"])
    )
    return result.rowcount == 1
