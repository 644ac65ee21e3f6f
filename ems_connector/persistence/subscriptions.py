"""Subscription rows, written with a version check."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

import prepared_sql
from ems_connector.persistence.tables import payment_methods, subscriptions
from prepared_sql import Row

_GET = prepared_sql.Prepared(
    select(subscriptions).where(
        subscriptions.c.publisher_id == bindparam("w_publisher_id"),
        subscriptions.c.id == bindparam("w_id"),
    )
)
# The same, locking the row until the transaction ends: concurrent writers of one
# subscription take turns on PostgreSQL instead of losing the version race (SQLite has one
# writer at a time and no such clause).
_GET_FOR_UPDATE = prepared_sql.Prepared(
    select(subscriptions)
    .where(
        subscriptions.c.publisher_id == bindparam("w_publisher_id"),
        subscriptions.c.id == bindparam("w_id"),
    )
    .with_for_update()
)
_LIVE_BY_EXTERNAL_ID = prepared_sql.Prepared(
    select(subscriptions).where(
        subscriptions.c.publisher_id == bindparam("w_publisher_id"),
        subscriptions.c.source == bindparam("w_source"),
        subscriptions.c.external_id == bindparam("w_external_id"),
        subscriptions.c.status != "terminated",
    )
)
_INSERT = prepared_sql.Family(
    lambda columns: (
        insert(subscriptions)
        .values(prepared_sql.inputs(columns, prefix="v_"))
        .returning(*subscriptions.c)
    )
)
_UPDATE = prepared_sql.Family(
    lambda columns: (
        update(subscriptions)
        .where(
            subscriptions.c.id == bindparam("w_id"),
            subscriptions.c.version == bindparam("w_version"),
        )
        .values(prepared_sql.inputs(columns, prefix="v_"))
        .returning(*subscriptions.c)
    )
)
_SET_REPLACED_BY = prepared_sql.Prepared(
    update(subscriptions)
    .where(subscriptions.c.id == bindparam("w_id"))
    .values(replaced_by=bindparam("v_replaced_by"))
    .returning(*subscriptions.c)
)


class DuplicateExternalId(Exception):
    """Another non-terminated subscription holds this (source, externalId)."""


async def get(
    conn: AsyncConnection, publisher_id: int, subscription_id: int
) -> prepared_sql.Row | None:
    return await prepared_sql.first(
        conn, _GET, {"w_publisher_id": publisher_id, "w_id": subscription_id}
    )


async def get_for_update(
    conn: AsyncConnection, publisher_id: int, subscription_id: int
) -> prepared_sql.Row | None:
    """`get` inside a write: the row stays locked until this transaction ends."""
    return await prepared_sql.first(
        conn, _GET_FOR_UPDATE, {"w_publisher_id": publisher_id, "w_id": subscription_id}
    )


async def find_live_by_external_id(
    conn: AsyncConnection, publisher_id: int, source: str, external_id: str
) -> prepared_sql.Row | None:
    return await prepared_sql.first(
        conn,
        _LIVE_BY_EXTERNAL_ID,
        {"w_publisher_id": publisher_id, "w_source": source, "w_external_id": external_id},
    )


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
) -> Sequence[Row]:
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


async def insert_subscription(conn: AsyncConnection, values: dict[str, Any]) -> prepared_sql.Row:
    try:
        row = await prepared_sql.first(conn, _INSERT[tuple(values)], prepared_sql.values_of(values))
        assert row is not None
        return row
    except IntegrityError as exc:
        if "external_id" in str(exc.orig):
            raise DuplicateExternalId() from exc
        raise


async def update_subscription(
    conn: AsyncConnection, row: prepared_sql.Row, values: dict[str, Any]
) -> prepared_sql.Row | None:
    """Write `values` and bump the version if the row is still at `row`'s version.

    None means another writer committed first (the caller answers 409/412).
    """
    try:
        changes = {**values, "version": row["version"] + 1}
        return await prepared_sql.first(
            conn,
            _UPDATE[tuple(changes)],
            {**prepared_sql.values_of(changes), "w_id": row["id"], "w_version": row["version"]},
        )
    except IntegrityError as exc:
        if "external_id" in str(exc.orig):
            raise DuplicateExternalId() from exc
        raise


async def set_replaced_by(
    conn: AsyncConnection, row: prepared_sql.Row, replaced_by: dict[str, Any]
) -> prepared_sql.Row:
    """Link a subscription just written in this transaction to its replacement.

    Part of the same change as that write, so the version does not move again.
    """
    updated = await prepared_sql.first(
        conn, _SET_REPLACED_BY, {"w_id": row["id"], "v_replaced_by": replaced_by}
    )
    assert updated is not None
    return updated


async def live_page(
    conn: AsyncConnection,
    publisher_id: int,
    payment_method_id: int | None,
    after_id: int,
    limit: int,
) -> Sequence[Row]:
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


async def renewals_due(conn: AsyncConnection, now: int, limit: int) -> Sequence[Row]:
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


async def note_renewal_due(conn: AsyncConnection, row: Row) -> bool:
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


async def expired(conn: AsyncConnection, now: int, after_id: int, limit: int) -> Sequence[Row]:
    """Ids (and publishers) of active and stopped subscriptions past `dateTo` plus their payment
    method's grace period, on methods that terminate automatically; ids above `after_id`."""
    result = await conn.execute(
        select(subscriptions.c.id, subscriptions.c.publisher_id)
        .join(payment_methods, payment_methods.c.id == subscriptions.c.payment_method_id)
        .where(
            subscriptions.c.status.in_(["active", "stopped"]),
            subscriptions.c.date_to < now,  # lets the (status, date_to) index narrow it
            subscriptions.c.date_to + payment_methods.c.grace_period_seconds < now,
            payment_methods.c.auto_terminate.is_(True),
            subscriptions.c.id > after_id,
        )
        .order_by(subscriptions.c.id)
        .limit(limit)
    )
    return result.mappings().all()


async def by_external_ids(
    conn: AsyncConnection, publisher_id: int, source: str, external_ids: Sequence[str]
) -> Sequence[Row]:
    """Every subscription (of any status) with one of these (source, externalId)s."""
    result = await conn.execute(
        select(subscriptions).where(
            subscriptions.c.publisher_id == publisher_id,
            subscriptions.c.source == source,
            subscriptions.c.external_id.in_(list(external_ids)),
        )
    )
    return result.mappings().all()
