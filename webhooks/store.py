"""Queries on endpoints, deliveries and attempts for the operator API."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import RowMapping, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from webhooks.tables import attempts, deliveries, endpoints, events


async def endpoint(conn: AsyncConnection, publisher_id: int, endpoint_id: str) -> RowMapping | None:
    result = await conn.execute(
        select(endpoints).where(
            endpoints.c.publisher_id == publisher_id, endpoints.c.id == endpoint_id
        )
    )
    return result.mappings().first()


async def endpoints_of(
    conn: AsyncConnection, publisher_id: int, origin: str | None = None
) -> Sequence[RowMapping]:
    query = select(endpoints).where(endpoints.c.publisher_id == publisher_id)
    if origin is not None:
        query = query.where(endpoints.c.origin == origin)
    return (await conn.execute(query.order_by(endpoints.c.seq))).mappings().all()


async def insert_endpoint(conn: AsyncConnection, values: dict[str, Any]) -> RowMapping:
    result = await conn.execute(insert(endpoints).values(**values).returning(*endpoints.c))
    return result.mappings().one()


async def update_endpoint(
    conn: AsyncConnection, endpoint_id: str, values: dict[str, Any]
) -> RowMapping:
    result = await conn.execute(
        update(endpoints)
        .where(endpoints.c.id == endpoint_id)
        .values(**values)
        .returning(*endpoints.c)
    )
    return result.mappings().one()


async def delete_endpoint(conn: AsyncConnection, endpoint_id: str) -> None:
    """Remove an endpoint; its undelivered deliveries go with it, its log stays readable."""
    await conn.execute(
        update(deliveries)
        .where(deliveries.c.endpoint_id == endpoint_id, deliveries.c.status == "pending")
        .values(status="failed", last_error="endpoint deleted", lease_until=None)
    )
    await conn.execute(delete(endpoints).where(endpoints.c.id == endpoint_id))


async def delivery(conn: AsyncConnection, publisher_id: int, delivery_id: str) -> RowMapping | None:
    result = await conn.execute(
        select(deliveries).where(
            deliveries.c.publisher_id == publisher_id, deliveries.c.id == delivery_id
        )
    )
    return result.mappings().first()


async def deliveries_page(
    conn: AsyncConnection,
    publisher_id: int,
    *,
    endpoint_id: str | None,
    status: str | None,
    subscription_id: int | None,
    after_seq: int,
    limit: int,
) -> Sequence[RowMapping]:
    """Deliveries with their event's id and topic, oldest first."""
    query = (
        select(deliveries, events.c.id.label("event_id"), events.c.topic)
        .join(events, events.c.seq == deliveries.c.event_seq)
        .where(deliveries.c.publisher_id == publisher_id, deliveries.c.seq > after_seq)
    )
    if endpoint_id is not None:
        query = query.where(deliveries.c.endpoint_id == endpoint_id)
    if status is not None:
        query = query.where(deliveries.c.status == status)
    if subscription_id is not None:
        query = query.where(deliveries.c.subscription_id == subscription_id)
    result = await conn.execute(query.order_by(deliveries.c.seq).limit(limit))
    return result.mappings().all()


async def attempts_of(
    conn: AsyncConnection, delivery_ids: Sequence[str]
) -> dict[str, list[RowMapping]]:
    if not delivery_ids:
        return {}
    rows = (
        await conn.execute(
            select(attempts)
            .where(attempts.c.delivery_id.in_(list(delivery_ids)))
            .order_by(attempts.c.seq)
        )
    ).mappings()
    grouped: dict[str, list[RowMapping]] = {}
    for row in rows:
        grouped.setdefault(row["delivery_id"], []).append(row)
    return grouped


async def requeue(conn: AsyncConnection, delivery_ids: Sequence[str], now: float) -> int:
    """Make deliveries due now, with a fresh schedule (a manual retry or a recovery)."""
    if not delivery_ids:
        return 0
    result = await conn.execute(
        update(deliveries)
        .where(deliveries.c.id.in_(list(delivery_ids)))
        .values(status="pending", attempts=0, next_attempt_at=now, lease_until=None)
    )
    return result.rowcount


async def due_now(conn: AsyncConnection, endpoint_id: str, now: float) -> None:
    """Make every pending delivery of an endpoint due at once (it was just re-enabled)."""
    await conn.execute(
        update(deliveries)
        .where(deliveries.c.endpoint_id == endpoint_id, deliveries.c.status == "pending")
        .values(next_attempt_at=now, lease_until=None)
    )


async def failed_since(conn: AsyncConnection, endpoint_id: str, since: int) -> Sequence[str]:
    result = await conn.execute(
        select(deliveries.c.id).where(
            deliveries.c.endpoint_id == endpoint_id,
            deliveries.c.status == "failed",
            deliveries.c.created_at >= since,
        )
    )
    return result.scalars().all()


async def sync_rows(
    conn: AsyncConnection, publisher_id: int, subscription_id: int
) -> dict[str, dict[str, Any]]:
    """Per endpoint: the newest delivered version, and whether an undelivered one has failed."""
    delivered = (
        await conn.execute(
            select(
                deliveries.c.endpoint_id,
                func.max(deliveries.c.subscription_version),
                func.max(deliveries.c.last_attempt_at),
            )
            .where(
                deliveries.c.publisher_id == publisher_id,
                deliveries.c.subscription_id == subscription_id,
                deliveries.c.status == "delivered",
            )
            .group_by(deliveries.c.endpoint_id)
        )
    ).all()
    undelivered = (
        await conn.execute(
            select(
                deliveries.c.endpoint_id,
                deliveries.c.attempts,
                deliveries.c.last_attempt_at,
                deliveries.c.last_error,
            )
            .where(
                deliveries.c.publisher_id == publisher_id,
                deliveries.c.subscription_id == subscription_id,
                deliveries.c.status != "delivered",
            )
            .order_by(deliveries.c.seq)
        )
    ).all()
    state: dict[str, dict[str, Any]] = {}
    for endpoint_id, version, last_at in delivered:
        state[endpoint_id] = {
            "delivered_version": version,
            "last_attempt_at": last_at,
            "undelivered": 0,
            "failed_attempts": 0,
            "last_error": None,
        }
    for endpoint_id, tries, last_at, error in undelivered:
        entry = state.setdefault(
            endpoint_id,
            {
                "delivered_version": None,
                "last_attempt_at": None,
                "undelivered": 0,
                "failed_attempts": 0,
                "last_error": None,
            },
        )
        entry["undelivered"] += 1
        entry["failed_attempts"] += tries
        if last_at is not None and (entry["last_attempt_at"] or 0) <= last_at:
            entry["last_attempt_at"] = last_at
            entry["last_error"] = error
    return state
