"""The reads behind entitlements and channel access: who holds which offers, what offers grant."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, and_, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

import prepared_sql
from ems_connector.persistence.tables import customers, offers, subscriptions
from prepared_sql import Row

# Statuses that entitle (CONTRACT §7): `active` and `stopped`, i.e. every one but terminated.
_ENTITLING = subscriptions.c.status != "terminated"

_CUSTOMER_OFFERS = prepared_sql.Prepared(
    select(customers.c.id, subscriptions.c.offer_id)
    .select_from(
        customers.outerjoin(
            subscriptions,
            and_(
                subscriptions.c.publisher_id == customers.c.publisher_id,
                subscriptions.c.customer_id == customers.c.id,
                _ENTITLING,
            ),
        )
    )
    .where(
        customers.c.publisher_id == bindparam("w_publisher_id"),
        customers.c.id == bindparam("w_customer_id"),
    )
)
_HOLDERS_IN_RANGE = prepared_sql.Prepared(
    select(customers.c.id, customers.c.publisher_id, subscriptions.c.offer_id)
    .select_from(
        customers.outerjoin(
            subscriptions,
            and_(
                subscriptions.c.publisher_id == customers.c.publisher_id,
                subscriptions.c.customer_id == customers.c.id,
                _ENTITLING,
            ),
        )
    )
    .where(customers.c.id > bindparam("w_after"), customers.c.id <= bindparam("w_upto"))
)
_LAST_CUSTOMER = prepared_sql.Prepared(select(func.max(customers.c.id)))
_RANGE_END = prepared_sql.Prepared(
    select(customers.c.id)
    .where(customers.c.id > bindparam("w_after"))
    .order_by(customers.c.id)
    .offset(bindparam("w_skip"))
    .limit(1)
)
_PUBLISHERS_WITH_OFFERS = prepared_sql.Prepared(select(offers.c.publisher_id).distinct())
_CATALOGUE = prepared_sql.Prepared(
    select(offers.c.offer_id, offers.c.channels, offers.c.free)
    .where(offers.c.publisher_id == bindparam("w_publisher_id"))
    .order_by(offers.c.offer_id)
)
_HOLDINGS = prepared_sql.Prepared(
    select(
        subscriptions.c.id,
        subscriptions.c.customer_id,
        subscriptions.c.offer_id,
        subscriptions.c.status,
        subscriptions.c.date_to,
    ).where(
        subscriptions.c.publisher_id == bindparam("w_publisher_id"),
        subscriptions.c.customer_id == bindparam("w_customer_id"),
        subscriptions.c.offer_id == bindparam("w_offer_id"),
    )
)


async def entitling_offers(
    conn: AsyncConnection, publisher_id: int, customer_id: int
) -> tuple[str, ...] | None:
    """The distinct offers the customer's active and stopped subscriptions are to, sorted;
    None when the publisher has no such customer."""
    found = await prepared_sql.rows(
        conn, _CUSTOMER_OFFERS, {"w_publisher_id": publisher_id, "w_customer_id": customer_id}
    )
    if not found:
        return None
    return tuple(sorted({row["offer_id"] for row in found if row["offer_id"] is not None}))


async def holders_in_range(
    conn: AsyncConnection, after: int, upto: int
) -> dict[int, tuple[int, tuple[str, ...]]]:
    """For every customer with an id in (after, upto]: its publisher and the distinct offers
    of its active and stopped subscriptions, sorted."""
    found: dict[int, tuple[int, set[str]]] = {}
    for row in await prepared_sql.rows(conn, _HOLDERS_IN_RANGE, {"w_after": after, "w_upto": upto}):
        held = found.setdefault(row["id"], (row["publisher_id"], set()))[1]
        if row["offer_id"] is not None:
            held.add(row["offer_id"])
    return {
        customer: (publisher, tuple(sorted(held))) for customer, (publisher, held) in found.items()
    }


async def range_end(conn: AsyncConnection, after: int, size: int) -> int | None:
    """The id `size` customers after `after` (of any publisher); None when fewer are left."""
    found = await prepared_sql.scalar(conn, _RANGE_END, {"w_after": after, "w_skip": size - 1})
    return None if found is None else int(found)


async def last_customer_id(conn: AsyncConnection) -> int:
    return int(await prepared_sql.scalar(conn, _LAST_CUSTOMER) or 0)


async def publishers_with_offers(conn: AsyncConnection) -> list[int]:
    return [row["publisher_id"] for row in await prepared_sql.rows(conn, _PUBLISHERS_WITH_OFFERS)]


async def catalogue(conn: AsyncConnection, publisher_id: int) -> list[Row]:
    """Every offer of the publisher with what it grants: `offer_id`, `channels`, `free`."""
    return await prepared_sql.rows(conn, _CATALOGUE, {"w_publisher_id": publisher_id})


async def holdings(
    conn: AsyncConnection, publisher_id: int, customer_id: int, offer_id: str
) -> list[Row]:
    """The customer's subscriptions to one offer, in any status."""
    return await prepared_sql.rows(
        conn,
        _HOLDINGS,
        {"w_publisher_id": publisher_id, "w_customer_id": customer_id, "w_offer_id": offer_id},
    )


def _customer_subscriptions(
    publisher_id: int, customer_id: int, statuses: Sequence[str]
) -> Select[Any]:
    return select(subscriptions).where(
        subscriptions.c.publisher_id == publisher_id,
        subscriptions.c.customer_id == customer_id,
        subscriptions.c.status.in_(list(statuses)),
    )


async def count_subscriptions(
    conn: AsyncConnection, publisher_id: int, customer_id: int, statuses: Sequence[str]
) -> int:
    query = _customer_subscriptions(publisher_id, customer_id, statuses).subquery()
    return int(await conn.scalar(select(func.count()).select_from(query)) or 0)


async def subscriptions_page(
    conn: AsyncConnection,
    publisher_id: int,
    customer_id: int,
    statuses: Sequence[str],
    offset: int,
    limit: int,
) -> Sequence[Row]:
    """The customer's subscriptions in these statuses, in id order."""
    result = await conn.execute(
        _customer_subscriptions(publisher_id, customer_id, statuses)
        .order_by(subscriptions.c.id)
        .offset(offset)
        .limit(limit)
    )
    return result.mappings().all()


async def free_offers(conn: AsyncConnection, publisher_id: int) -> list[str]:
    """Ids of the publisher's free offers, sorted."""
    return [row["offer_id"] for row in await catalogue(conn, publisher_id) if row["free"]]
