"""Entitlements and channel access (CONTRACT §7): who may watch what, right now."""

from __future__ import annotations

from collections.abc import Sequence

from ems_connector.context import RequestContext
from ems_connector.persistence import customers as customers_repo
from ems_connector.persistence import entitlements as repo
from ems_connector.persistence import offers as offers_repo
from ems_connector.persistence.database import Database
from ems_connector.persistence.unit_of_work import UnitOfWork
from ems_connector.schemas.entitlements import AccessResource, EntitlementResource
from ems_connector.services.access_index import AccessIndex
from ems_connector.services.customers import customer_not_found
from ems_connector.services.offers import offer_not_found
from prepared_sql import Row

ENTITLING = ("active", "stopped")  # access follows status, not dateTo
DEFAULT_STATUSES = ENTITLING


def note_subscription_write(uow: UnitOfWork, before: Row | None, after: Row) -> None:
    """Tell the unit of work when a subscription write moves what customers may watch:
    a new subscription, or a change of whether its status entitles, of its offer or owner."""
    if before is not None and _grant(before) == _grant(after):
        return
    if before is not None:
        uow.entitlements_changed(before["customer_id"])
    uow.entitlements_changed(after["customer_id"])


def _grant(row: Row) -> tuple[bool, str, int]:
    return (row["status"] in ENTITLING, row["offer_id"], row["customer_id"])


def _latest(rows: Sequence[Row]) -> Row:
    return max(rows, key=lambda row: (row["date_to"], row["id"]))


def _of_subscription(row: Row) -> EntitlementResource:
    return EntitlementResource(
        offer_id=row["offer_id"],
        customer_id=row["customer_id"],
        access_granted=row["status"] in ENTITLING,
        expires_at=row["date_to"],
        subscription_id=row["id"],
        status=row["status"],
    )


def _of_free_offer(offer_id: str, customer_id: int) -> EntitlementResource:
    return EntitlementResource(
        offer_id=offer_id,
        customer_id=customer_id,
        access_granted=True,
        expires_at=None,
        subscription_id=None,
        status="active",
    )


class EntitlementService:
    def __init__(self, db: Database, index: AccessIndex) -> None:
        self.db = db
        self.index = index

    async def get(
        self, ctx: RequestContext, customer_id: int, offer_id: str
    ) -> EntitlementResource:
        """The customer's entitlement to one offer: the entitling subscription with the latest
        dateTo, else the free offer's grant, else the latest terminated one, else nothing."""
        async with self.db.read() as conn:
            customer = await customers_repo.get(conn, ctx.publisher_id, customer_id)
            if customer is None:
                raise customer_not_found(customer_id)
            offer = await offers_repo.get(conn, ctx.publisher_id, offer_id)
            if offer is None:
                raise offer_not_found(offer_id)
            held = await repo.holdings(conn, ctx.publisher_id, customer_id, offer_id)
        entitling = [row for row in held if row["status"] in ENTITLING]
        if entitling:
            latest = _latest(entitling)
        elif offer["free"]:
            return _of_free_offer(offer_id, customer_id)
        elif held:
            latest = _latest(held)
        else:
            return EntitlementResource(
                offer_id=offer_id,
                customer_id=customer_id,
                access_granted=False,
                expires_at=None,
                subscription_id=None,
                status=None,
            )
        return _of_subscription(latest)

    async def list(
        self,
        ctx: RequestContext,
        *,
        customer_id: int | None,
        customer_email: str | None,
        statuses: Sequence[str],
        offset: int,
        limit: int,
    ) -> list[EntitlementResource]:
        """One item per subscription in `statuses` (id order), then one per free offer when
        `statuses` include active; `offset` and `limit` apply to the whole list."""
        if customer_id is None and customer_email is None:
            return []  # like the subscription list: nothing narrows it, nothing is listed
        async with self.db.read() as conn:
            if customer_email is not None:
                customer = await customers_repo.find_by_email(
                    conn, ctx.publisher_id, customer_email
                )
            else:
                assert customer_id is not None
                customer = await customers_repo.get(conn, ctx.publisher_id, customer_id)
            if customer is None or customer_id not in (None, customer["id"]):
                return []
            customer_id = int(customer["id"])
            page = await repo.subscriptions_page(
                conn, ctx.publisher_id, customer_id, statuses, offset, limit
            )
            items = [_of_subscription(row) for row in page]
            if len(items) == limit or "active" not in statuses:
                return items
            # the page ends past the subscriptions: the free offers follow them
            subscriptions = await repo.count_subscriptions(
                conn, ctx.publisher_id, customer_id, statuses
            )
            free = await repo.free_offers(conn, ctx.publisher_id)
        start = max(0, offset - subscriptions)
        remaining = limit - len(items)
        return items + [_of_free_offer(o, customer_id) for o in free[start : start + remaining]]

    async def access(self, ctx: RequestContext, customer_id: int, channel: str) -> AccessResource:
        """May the customer watch `channel`: which of their entitling offers and which free
        offers grant it."""
        offers = await self.index.offers_granting(ctx.publisher_id, customer_id, channel)
        if offers is None:
            raise customer_not_found(customer_id)
        return AccessResource(access_granted=bool(offers), offer_ids=offers)
