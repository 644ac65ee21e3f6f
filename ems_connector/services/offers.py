"""Offers: the catalogue a connector's subscriptions refer to (CONTRACT §3)."""

from __future__ import annotations

from typing import Any

import msgspec

from ems_connector.context import RequestContext
from ems_connector.errors import Conflict, NotFound, PreconditionFailed, Unprocessable
from ems_connector.persistence import offers as repo
from ems_connector.persistence.database import Database
from ems_connector.persistence.unit_of_work import UnitOfWork, UnitOfWorkFactory
from ems_connector.schemas.offers import (
    AppStoreProductIds,
    BillingCycle,
    CreateOfferRequest,
    FreeTrial,
    OfferResource,
    Price,
    UpdateOfferRequest,
)
from prepared_sql import Row

OFFER_TYPES = {"S": "subscription", "P": "pass", "E": "live", "A": "vod", "R": "vod"}
# Passes and one-off purchases have no billing cycle of their own; a month is the default.
DEFAULT_CYCLE = BillingCycle(period_unit="month", amount=1)


def to_resource(row: Row) -> OfferResource:
    trial = row["free_trial"]
    return OfferResource(
        offer_id=row["offer_id"],
        title=row["title"],
        active=row["active"],
        type=row["type"],
        price=Price(amount=row["price_amount"], currency=row["price_currency"]),
        billing_cycle=BillingCycle(period_unit=row["period_unit"], amount=row["period_amount"]),
        free_trial=msgspec.convert(trial, FreeTrial) if trial else None,
        app_store_product_ids=msgspec.convert(row["app_store_product_ids"], AppStoreProductIds),
        external_properties=row["external_properties"],
        channels=row["channels"],
        free=row["free"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def offer_not_found(offer_id: str) -> NotFound:
    return NotFound("OFFER_NOT_FOUND", f"Offer with id: {offer_id} not found")


class OfferService:
    def __init__(self, db: Database, uow: UnitOfWorkFactory) -> None:
        self.db = db
        self.uow = uow

    async def create(self, ctx: RequestContext, req: CreateOfferRequest) -> OfferResource:
        cycle = req.billing_cycle or DEFAULT_CYCLE
        async with self.uow(ctx) as uow:
            values = {
                "publisher_id": ctx.publisher_id,
                "offer_id": req.offer_id,
                "title": req.title,
                "active": req.active,
                "type": OFFER_TYPES[req.offer_id[0]],
                "price_amount": req.price.amount,
                "price_currency": req.price.currency,
                "period_unit": cycle.period_unit,
                "period_amount": cycle.amount,
                "free_trial": msgspec.to_builtins(req.free_trial) if req.free_trial else None,
                "app_store_product_ids": msgspec.to_builtins(
                    req.app_store_product_ids or AppStoreProductIds()
                ),
                "external_properties": req.external_properties or {},
                "channels": _unique(req.channels or []),
                "free": req.free,
                "version": 1,
                "created_at": uow.now,
                "updated_at": uow.now,
            }
            if not await repo.insert_offer(uow.conn, values):
                raise Unprocessable(
                    "OFFER_ALREADY_EXISTS",
                    f"Offer with id: {req.offer_id} already exists; use PATCH to change it",
                )
            row = await repo.get(uow.conn, ctx.publisher_id, req.offer_id)
            assert row is not None
            uow.offers_changed()
            await uow.log("upsertOffer", {"offerId": req.offer_id, "created": True})
            return to_resource(row)

    async def get(self, ctx: RequestContext, offer_id: str) -> OfferResource:
        async with self.db.read() as conn:
            row = await repo.get(conn, ctx.publisher_id, offer_id)
        if row is None:
            raise offer_not_found(offer_id)
        return to_resource(row)

    async def list(self, ctx: RequestContext) -> list[OfferResource]:
        async with self.db.read() as conn:
            return [to_resource(row) for row in await repo.list_all(conn, ctx.publisher_id)]

    async def update(
        self,
        ctx: RequestContext,
        offer_id: str,
        req: UpdateOfferRequest,
        expected_version: int | None = None,
    ) -> OfferResource:
        values: dict[str, Any] = {}
        if req.title is not msgspec.UNSET:
            values["title"] = req.title
        if req.active is not msgspec.UNSET:
            values["active"] = req.active
        if req.price is not msgspec.UNSET:
            values["price_amount"] = req.price.amount
            values["price_currency"] = req.price.currency
        if req.billing_cycle is not msgspec.UNSET:
            values["period_unit"] = req.billing_cycle.period_unit
            values["period_amount"] = req.billing_cycle.amount
        if req.free_trial is not msgspec.UNSET:
            values["free_trial"] = msgspec.to_builtins(req.free_trial) if req.free_trial else None
        if req.app_store_product_ids is not msgspec.UNSET:
            values["app_store_product_ids"] = msgspec.to_builtins(req.app_store_product_ids)
        if req.external_properties is not msgspec.UNSET:
            values["external_properties"] = req.external_properties
        if req.channels is not msgspec.UNSET:
            values["channels"] = _unique(req.channels)
        if req.free is not msgspec.UNSET:
            values["free"] = req.free
        async with self.uow(ctx) as uow:
            return await self._apply(uow, offer_id, values, expected_version)

    async def set_active(
        self, ctx: RequestContext, offer_id: str, active: bool, expected_version: int | None = None
    ) -> OfferResource:
        async with self.uow(ctx) as uow:
            return await self._apply(uow, offer_id, {"active": active}, expected_version)

    async def _apply(
        self,
        uow: UnitOfWork,
        offer_id: str,
        values: dict[str, Any],
        expected_version: int | None,
    ) -> OfferResource:
        row = await repo.get(uow.conn, uow.context.publisher_id, offer_id)
        if row is None:
            raise offer_not_found(offer_id)
        if expected_version is not None and expected_version != row["version"]:
            raise PreconditionFailed(
                "VERSION_MISMATCH",
                f"Offer {offer_id} is at version {row['version']}, not {expected_version}; "
                "fetch it again and retry",
                {"currentVersion": row["version"]},
            )
        changed = {k: v for k, v in values.items() if row[k] != v}
        if not changed:
            return to_resource(row)
        changed["updated_at"] = uow.now
        if not await repo.update_offer(
            uow.conn, uow.context.publisher_id, offer_id, row["version"], changed
        ):
            raise Conflict(
                "CONCURRENT_MODIFICATION", f"Offer {offer_id} changed while this request ran; retry"
            )
        if "channels" in changed or "free" in changed:
            uow.offers_changed()
        await uow.log(
            "upsertOffer",
            {"offerId": offer_id, "created": False, "fields": sorted(changed)},
        )
        updated = await repo.get(uow.conn, uow.context.publisher_id, offer_id)
        assert updated is not None
        return to_resource(updated)


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
