"""Reconciliation reports and their items."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, exists, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

import prepared_sql
from ems_connector.persistence.tables import reconciliation_items as items
from ems_connector.persistence.tables import reconciliations, subscriptions
from prepared_sql import Row

_INSERT_ITEM = prepared_sql.Prepared(
    insert(items).values(
        prepared_sql.inputs(
            (
                "reconciliation_id",
                "position",
                "external_id",
                "status",
                "expires_at",
                "offer_id",
                "customer_email",
                "outcome",
                "subscription_id",
                "differences",
                "action",
            ),
            prefix="v_",
        )
    )
)
_SAVE_RESULT = prepared_sql.Prepared(
    update(items)
    .where(
        items.c.reconciliation_id == bindparam("w_reconciliation_id"),
        items.c.position == bindparam("w_position"),
    )
    .values(prepared_sql.inputs(("outcome", "subscription_id", "differences", "action"), "v_"))
)


async def insert_reconciliation(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(insert(reconciliations).values(**values))


async def insert_items(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Item rows, each with every column of `_INSERT_ITEM` (results may be None)."""
    await prepared_sql.execute_many(conn, _INSERT_ITEM, (prepared_sql.values_of(r) for r in rows))


async def get(conn: AsyncConnection, publisher_id: int, reconciliation_id: str) -> Row | None:
    result = await conn.execute(
        select(reconciliations).where(
            reconciliations.c.publisher_id == publisher_id,
            reconciliations.c.id == reconciliation_id,
        )
    )
    return result.mappings().first()


async def running(conn: AsyncConnection) -> list[str]:
    """Ids of the reconciliations not done yet, oldest first."""
    result = await conn.execute(
        select(reconciliations.c.id)
        .where(reconciliations.c.status == "running")
        .order_by(reconciliations.c.created_at)
    )
    return list(result.scalars())


async def get_any(conn: AsyncConnection, reconciliation_id: str) -> Row | None:
    result = await conn.execute(
        select(reconciliations).where(reconciliations.c.id == reconciliation_id)
    )
    return result.mappings().first()


async def submitted_after(
    conn: AsyncConnection, reconciliation_id: str, after: int, upto: int
) -> Sequence[Row]:
    """Submitted items with positions in (after, upto], in order."""
    result = await conn.execute(
        select(items)
        .where(
            items.c.reconciliation_id == reconciliation_id,
            items.c.position > after,
            items.c.position <= upto,
        )
        .order_by(items.c.position)
    )
    return result.mappings().all()


async def save_results(
    conn: AsyncConnection, reconciliation_id: str, results: Sequence[dict[str, Any]]
) -> None:
    """Store each `{position, outcome, subscription_id, differences, action}`."""
    await prepared_sql.execute_many(
        conn,
        _SAVE_RESULT,
        (
            {
                "w_reconciliation_id": reconciliation_id,
                "w_position": r["position"],
                **prepared_sql.values_of({k: v for k, v in r.items() if k != "position"}),
            }
            for r in results
        ),
    )


async def update_reconciliation(
    conn: AsyncConnection, reconciliation_id: str, values: dict[str, Any]
) -> None:
    await conn.execute(
        update(reconciliations).where(reconciliations.c.id == reconciliation_id).values(**values)
    )


async def live_absent_from_items(
    conn: AsyncConnection,
    reconciliation: Row,
    after_id: int,
    limit: int,
) -> Sequence[Row]:
    """Non-terminated subscriptions of the reconciliation's payment method, ids above
    `after_id`, whose externalId no submitted item names."""
    named = exists().where(
        items.c.reconciliation_id == reconciliation["id"],
        items.c.external_id == subscriptions.c.external_id,
        items.c.status.is_not(None),
    )
    result = await conn.execute(
        select(subscriptions)
        .where(
            subscriptions.c.publisher_id == reconciliation["publisher_id"],
            subscriptions.c.payment_method_id == reconciliation["payment_method_id"],
            subscriptions.c.status != "terminated",
            subscriptions.c.id > after_id,
            ~named,
        )
        .order_by(subscriptions.c.id)
        .limit(limit)
    )
    return result.mappings().all()


async def report_items(
    conn: AsyncConnection,
    reconciliation_id: str,
    outcomes: Sequence[str],
    offset: int,
    limit: int,
) -> Sequence[Row]:
    """Compared items in position order (one more than `limit`, to tell if more follow)."""
    query = select(items).where(
        items.c.reconciliation_id == reconciliation_id, items.c.outcome.is_not(None)
    )
    if outcomes:
        query = query.where(items.c.outcome.in_(list(outcomes)))
    result = await conn.execute(query.order_by(items.c.position).offset(offset).limit(limit + 1))
    return result.mappings().all()
