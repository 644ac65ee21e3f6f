"""Reading the operations log with an opaque, stable cursor (CONTRACT §8)."""

from __future__ import annotations

from collections.abc import Sequence

from ems_connector.context import RequestContext
from ems_connector.persistence import operations as repo
from ems_connector.persistence.database import Database
from ems_connector.schemas.operations import OperationPage, OperationResource
from ems_connector.services import cursors

_CURSOR_KIND = "op1"


class OperationService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def page(
        self,
        ctx: RequestContext,
        *,
        subscription_id: int | None,
        customer_id: int | None,
        types: Sequence[str],
        since: int | None,
        limit: int,
        cursor: str | None,
    ) -> OperationPage:
        after = cursors.decode(_CURSOR_KIND, cursor) if cursor else 0
        async with self.db.read() as conn:
            rows = await repo.page(
                conn,
                ctx.publisher_id,
                after_seq=after,
                limit=limit + 1,
                subscription_id=subscription_id,
                customer_id=customer_id,
                types=types,
                since=since,
            )
        has_more = len(rows) > limit
        rows = rows[:limit]
        items = [
            OperationResource(
                operation_id=row["operation_id"],
                type=row["type"],
                publisher_id=row["publisher_id"],
                customer_id=row["customer_id"],
                subscription_id=row["subscription_id"],
                switch_id=row["switch_id"],
                payment_id=row["payment_id"],
                actor=row["actor"],
                request_id=row["request_id"],
                created_at=row["created_at"],
                payload=row["payload"],
            )
            for row in rows
        ]
        next_cursor = cursors.encode(_CURSOR_KIND, rows[-1]["seq"]) if has_more else None
        return OperationPage(operations=items, next=next_cursor)
