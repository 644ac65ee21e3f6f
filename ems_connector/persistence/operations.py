"""The append-only operations log (CONTRACT §8)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

import prepared_sql
from ems_connector.persistence.tables import operations
from prepared_sql import Row

_APPEND = prepared_sql.Prepared(
    insert(operations).values(prepared_sql.inputs(c.name for c in operations.c if c.name != "seq"))
)


async def append(
    conn: AsyncConnection,
    *,
    publisher_id: int,
    type: str,
    actor: str,
    request_id: str | None,
    created_at: int,
    payload: dict[str, Any],
    customer_id: int | None = None,
    subscription_id: int | None = None,
    switch_id: str | None = None,
    payment_id: int | None = None,
) -> str:
    operation_id = str(uuid.uuid4())
    await prepared_sql.execute(
        conn,
        _APPEND,
        {
            "operation_id": operation_id,
            "publisher_id": publisher_id,
            "type": type,
            "customer_id": customer_id,
            "subscription_id": subscription_id,
            "switch_id": switch_id,
            "payment_id": payment_id,
            "actor": actor,
            "request_id": request_id,
            "created_at": created_at,
            "payload": payload,
        },
    )
    return operation_id


async def page(
    conn: AsyncConnection,
    publisher_id: int,
    *,
    after_seq: int,
    limit: int,
    subscription_id: int | None = None,
    customer_id: int | None = None,
    types: Sequence[str] = (),
    since: int | None = None,
) -> Sequence[Row]:
    """Up to `limit` operations after `after_seq`, oldest first."""
    query = select(operations).where(
        operations.c.publisher_id == publisher_id, operations.c.seq > after_seq
    )
    if subscription_id is not None:
        query = query.where(operations.c.subscription_id == subscription_id)
    if customer_id is not None:
        query = query.where(operations.c.customer_id == customer_id)
    if types:
        query = query.where(operations.c.type.in_(list(types)))
    if since is not None:
        query = query.where(operations.c.created_at >= since)
    result = await conn.execute(query.order_by(operations.c.seq).limit(limit))
    return result.mappings().all()
