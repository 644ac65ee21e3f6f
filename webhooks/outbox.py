"""Enqueueing events in the caller's transaction, one delivery per matching endpoint."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from sqlalchemy import bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

import prepared_sql
from webhooks import topics
from webhooks.tables import deliveries, endpoints, events

_INSERT_EVENT = prepared_sql.Prepared(
    insert(events)
    .values(prepared_sql.inputs(c.name for c in events.c if c.name != "seq"))
    .returning(events.c.seq)
)
_ENDPOINTS_OF = prepared_sql.Prepared(
    select(endpoints).where(endpoints.c.publisher_id == bindparam("publisher_id"))
)
_INSERT_DELIVERY = prepared_sql.Prepared(
    insert(deliveries).values(
        prepared_sql.inputs(
            [
                "id",
                "event_seq",
                "endpoint_id",
                "publisher_id",
                "ordering_key",
                "subscription_id",
                "subscription_version",
                "status",
                "attempts",
                "next_attempt_at",
                "created_at",
            ]
        )
    )
)


class Envelope(msgspec.Struct, rename="camel"):
    """Cleeng's webhook body: `{"broadcasterId", "topic", "data"}`."""

    broadcaster_id: int
    topic: str
    data: Any


def ordering_key(subscription_id: int | None, payment_id: int | None) -> str:
    """Events with one key reach an endpoint in commit order."""
    if subscription_id is not None:
        return f"s:{subscription_id}"
    return f"p:{payment_id}"


def wants(endpoint: prepared_sql.Row, topic: str, payment_method_id: int | None) -> bool:
    if not endpoint["enabled"]:
        return False
    if topic != topics.SNAPSHOT and topic not in endpoint["topics"]:
        return False
    wanted_method = endpoint["payment_method_id"]
    return wanted_method is None or wanted_method == payment_method_id


async def enqueue(
    conn: AsyncConnection,
    *,
    publisher_id: int,
    topic: str,
    data: Any,
    now: int,
    subscription_id: int | None = None,
    subscription_version: int | None = None,
    payment_id: int | None = None,
    payment_method_id: int | None = None,
    endpoint_ids: list[str] | None = None,
) -> str:
    """Store the event and its deliveries; they commit with the caller's change.

    `endpoint_ids` limits the deliveries to those endpoints (a resync); otherwise every
    enabled endpoint of the publisher subscribed to `topic` and matching the payment method
    gets one.
    """
    if not topics.is_sent(topic):
        raise ValueError(f"{topic} is never sent for externally-managed subscriptions")
    event_id = "msg_" + uuid.uuid4().hex
    body = msgspec.json.encode(Envelope(broadcaster_id=publisher_id, topic=topic, data=data))
    event_seq = await prepared_sql.scalar(
        conn,
        _INSERT_EVENT,
        {
            "id": event_id,
            "publisher_id": publisher_id,
            "topic": topic,
            "subscription_id": subscription_id,
            "subscription_version": subscription_version,
            "payment_id": payment_id,
            "payment_method_id": payment_method_id,
            "body": body,
            "created_at": now,
        },
    )
    targets = [
        row
        for row in await prepared_sql.rows(conn, _ENDPOINTS_OF, {"publisher_id": publisher_id})
        if (endpoint_ids is None or row["id"] in endpoint_ids)
        and wants(row, topic, payment_method_id)
    ]
    if targets:
        key = ordering_key(subscription_id, payment_id)
        await prepared_sql.execute_many(
            conn,
            _INSERT_DELIVERY,
            [
                {
                    "id": str(uuid.uuid4()),
                    "event_seq": event_seq,
                    "endpoint_id": endpoint["id"],
                    "publisher_id": publisher_id,
                    "ordering_key": key,
                    "subscription_id": subscription_id,
                    "subscription_version": subscription_version,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": float(now),
                    "created_at": now,
                }
                for endpoint in targets
            ],
        )
    return event_id
