"""Subscription switches: upgrades and downgrades reported by connectors (CONTRACT §5)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from ems_connector.context import RequestContext
from ems_connector.errors import Conflict, NotFound, Unprocessable, field_error
from ems_connector.persistence import offers as offers_repo
from ems_connector.persistence import payments as payments_repo
from ems_connector.persistence import subscriptions as subscriptions_repo
from ems_connector.persistence import switches as repo
from ems_connector.persistence.database import Database
from ems_connector.persistence.unit_of_work import UnitOfWork, UnitOfWorkFactory
from ems_connector.schemas.switches import CreateSwitchRequest, SwitchResource, UpdateSwitchRequest
from ems_connector.services import payment_links
from ems_connector.services.entitlements import note_subscription_write
from ems_connector.services.payments import switch_claim
from ems_connector.services.webhook_events import subscription_event
from prepared_sql import Row
from state_machines import switch as machine

_LIVE = ("active", "stopped")


def to_resource(row: Row) -> SwitchResource:
    return SwitchResource(
        id=row["id"],
        subscription_id=row["subscription_id"],
        customer_id=row["customer_id"],
        from_offer_id=row["from_offer_id"],
        to_offer_id=row["to_offer_id"],
        direction=row["direction"],
        algorithm=row["algorithm"],
        status=row["status"],
        payment_id=row["payment_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def switch_not_found(switch_id: str) -> NotFound:
    return NotFound("SWITCH_NOT_FOUND", f"Switch with id: {switch_id} not found")


def offer_change(offer: Row) -> dict[str, Any]:
    """The subscription columns a switch to `offer` sets: the offer and its billing cycle."""
    return {
        "offer_id": offer["offer_id"],
        "period_unit": offer["period_unit"],
        "period_amount": offer["period_amount"],
    }


def _not_switchable(sub: Row) -> Unprocessable:
    return Unprocessable(
        "VALIDATION_ERROR",
        f"Subscription {sub['id']} is {sub['status']}; only an active or stopped "
        "subscription can switch offers",
        {"status": sub["status"]},
    )


class SwitchService:
    def __init__(self, db: Database, uow: UnitOfWorkFactory) -> None:
        self.db = db
        self.uow = uow

    async def request(self, ctx: RequestContext, req: CreateSwitchRequest) -> SwitchResource:
        async with self.uow(ctx) as uow:
            sub = await subscriptions_repo.get_for_update(
                uow.conn, ctx.publisher_id, req.subscription_id
            )
            if sub is None:
                raise Unprocessable(
                    "SUBSCRIPTION_NOT_FOUND",
                    f"Subscription with id: {req.subscription_id} not found",
                )
            await self._check_target(uow, sub, req.to_offer_id)
            row = await repo.insert_switch(
                uow.conn,
                {
                    "id": str(uuid.uuid4()),
                    "publisher_id": ctx.publisher_id,
                    "subscription_id": sub["id"],
                    "customer_id": sub["customer_id"],
                    "from_offer_id": sub["offer_id"],
                    "to_offer_id": req.to_offer_id,
                    "direction": req.switch_direction,
                    "algorithm": req.algorithm,
                    "status": "inprogress",
                    "payment_id": None,
                    "created_at": uow.now,
                    "updated_at": uow.now,
                },
            )
            sub = await _write_subscription(uow, sub, {"pending_switch_id": row["id"]})
            await uow.log(
                "requestSwitch",
                {
                    "fromOfferId": sub["offer_id"],
                    "toOfferId": req.to_offer_id,
                    "direction": req.switch_direction,
                    "algorithm": req.algorithm,
                },
                customer_id=sub["customer_id"],
                subscription_id=sub["id"],
                switch_id=row["id"],
            )
            await subscription_event(uow, "subscriptionSwitchRequested", sub, **_switch_ids(row))
            return to_resource(row)

    async def _check_target(self, uow: UnitOfWork, sub: Row, to_offer_id: str) -> None:
        """The §5 refusals, in the order the contract ranks them."""
        if sub["status"] not in _LIVE:
            raise _not_switchable(sub)
        if to_offer_id == sub["offer_id"]:
            raise Unprocessable(
                "SAME_TARGET_OFFER",
                f"Subscription {sub['id']} is already on offer {to_offer_id}; pick another",
            )
        target = await offers_repo.get(uow.conn, uow.context.publisher_id, to_offer_id)
        if target is None:
            raise Unprocessable("OFFER_NOT_FOUND", f"Offer with id: {to_offer_id} not found")
        if target["type"] != "subscription":
            raise Unprocessable(
                "OFFER_NOT_SUBSCRIPTION",
                f"Offer {to_offer_id} is a {target['type']} offer; switch to an S… offer",
            )
        if not target["active"]:
            raise Unprocessable("OFFER_INACTIVE", f"Offer {to_offer_id} is not active")
        if target["free"] or target["price_amount"] == 0:
            raise Unprocessable(
                "TO_FREE_OFFER_NOT_ALLOWED",
                f"Offer {to_offer_id} is free; a subscription cannot switch to a free offer",
            )
        if sub["pending_switch_id"] is not None:
            pending = await repo.get(uow.conn, uow.context.publisher_id, sub["pending_switch_id"])
            waiting = pending is not None and pending["status"] == "finished"
            raise Unprocessable(
                "SWITCH_IN_PROGRESS",
                f"Subscription {sub['id']} has switch {sub['pending_switch_id']} pending; "
                + ("it takes effect at the next renew" if waiting else "finish or cancel it first"),
                {"pendingSwitchId": sub["pending_switch_id"]},
            )
        holding = await subscriptions_repo.search(
            uow.conn,
            uow.context.publisher_id,
            customer_id=sub["customer_id"],
            offer_id=to_offer_id,
            payment_method_id=None,
            external_id=None,
            statuses=_LIVE,
            offset=0,
            limit=1,
        )
        if holding:
            raise Unprocessable(
                "ALREADY_HAS_ACCESS",
                f"Customer {sub['customer_id']} already holds subscription "
                f"{holding[0]['id']} to offer {to_offer_id}",
                {"subscriptionId": holding[0]["id"]},
            )

    async def get(self, ctx: RequestContext, switch_id: str) -> SwitchResource:
        async with self.db.read() as conn:
            row = await repo.get(conn, ctx.publisher_id, switch_id)
        if row is None:
            raise switch_not_found(switch_id)
        return to_resource(row)

    async def list(
        self,
        ctx: RequestContext,
        *,
        customer_id: int | None,
        subscription_id: int | None,
        statuses: Sequence[str],
        offset: int,
        limit: int,
    ) -> list[SwitchResource]:
        if customer_id is None and subscription_id is None:
            return []
        async with self.db.read() as conn:
            rows = await repo.search(
                conn,
                ctx.publisher_id,
                customer_id=customer_id,
                subscription_id=subscription_id,
                statuses=statuses,
                offset=offset,
                limit=limit,
            )
        return [to_resource(row) for row in rows]

    async def update(
        self, ctx: RequestContext, switch_id: str, req: UpdateSwitchRequest
    ) -> SwitchResource:
        if req.payment_id is not None and req.status != "finished":
            raise field_error("paymentId", "only with status finished")
        async with self.uow(ctx) as uow:
            row = await repo.get(uow.conn, ctx.publisher_id, switch_id)
            if row is None:
                raise switch_not_found(switch_id)
            status = machine.fire(row["status"], machine.EVENT_FOR_STATUS[req.status])
            sub = await subscriptions_repo.get_for_update(
                uow.conn, ctx.publisher_id, row["subscription_id"]
            )
            assert sub is not None  # subscriptions are never deleted
            if status == "finished":
                updated = await self._finish(uow, row, sub, req.payment_id)
            else:
                updated = await self._cancel(uow, row, sub)
            return to_resource(updated)

    async def _finish(self, uow: UnitOfWork, row: Row, sub: Row, payment_id: int | None) -> Row:
        if sub["status"] not in _LIVE:
            raise _not_switchable(sub)
        payment = await self._payment_for_finish(uow, row, sub, payment_id)
        changes: dict[str, Any] = {}
        if payment is not None:
            await payment_links.claim(uow, payment, switch_claim(row["id"], sub["id"]))
            changes["latest_payment_external_id"] = payment["external_payment_id"]
        if row["algorithm"] == "IMMEDIATE_WITHOUT_PRORATION":
            target = await offers_repo.get(uow.conn, uow.context.publisher_id, row["to_offer_id"])
            assert target is not None  # offers are never deleted
            changes.update(offer_change(target), pending_switch_id=None)
        # A DEFERRED switch keeps `pendingSwitchId` until the next renew applies it.
        changes = {k: v for k, v in changes.items() if sub[k] != v}
        if changes:
            sub = await _write_subscription(uow, sub, changes)
        kept_payment_id = payment["id"] if payment is not None else row["payment_id"]
        updated = await _write_switch(
            uow, row, {"status": "finished", "payment_id": kept_payment_id, "updated_at": uow.now}
        )
        await uow.log(
            "finishSwitch",
            {
                "fromOfferId": row["from_offer_id"],
                "toOfferId": row["to_offer_id"],
                "algorithm": row["algorithm"],
                "appliedNow": row["algorithm"] == "IMMEDIATE_WITHOUT_PRORATION",
            },
            customer_id=sub["customer_id"],
            subscription_id=sub["id"],
            switch_id=row["id"],
            payment_id=kept_payment_id,
        )
        await subscription_event(
            uow, "subscriptionSwitched", sub, payment_id=kept_payment_id, **_switch_ids(row)
        )
        return updated

    async def _release_payment(self, uow: UnitOfWork, row: Row) -> None:
        """A cancelled switch paid for nothing: its reserved payment may pay for something else."""
        if row["payment_id"] is None:
            return
        payment = await payments_repo.get(uow.conn, uow.context.publisher_id, row["payment_id"])
        if payment is not None and payment["used_by"] == switch_claim(
            row["id"], row["subscription_id"]
        ):
            await payments_repo.update_payment(uow.conn, payment["id"], {"used_by": None})

    async def _payment_for_finish(
        self, uow: UnitOfWork, row: Row, sub: Row, payment_id: int | None
    ) -> Row | None:
        """The captured payment that pays the switch: the one named, else the one attached."""
        attached = (
            await payments_repo.get(uow.conn, uow.context.publisher_id, row["payment_id"])
            if row["payment_id"] is not None
            else None
        )
        paid = attached if attached is not None and attached["status"] == "captured" else None
        if payment_id is None:
            return paid
        if paid is not None and paid["id"] != payment_id:
            raise Unprocessable(
                "PAYMENT_MISMATCH",
                f"Switch {row['id']} is already paid by payment {paid['id']}; "
                "finish it without paymentId or with that one",
                {"attachedPaymentId": paid["id"]},
            )
        return await payment_links.usable_payment(
            uow,
            payment_id,
            customer_id=sub["customer_id"],
            payment_method_id=sub["payment_method_id"],
            subscription_id=sub["id"],
            switch_id=row["id"],
        )

    async def _cancel(self, uow: UnitOfWork, row: Row, sub: Row) -> Row:
        await self._release_payment(uow, row)
        if sub["pending_switch_id"] == row["id"]:
            sub = await _write_subscription(uow, sub, {"pending_switch_id": None})
        updated = await _write_switch(uow, row, {"status": "cancelled", "updated_at": uow.now})
        await uow.log(
            "cancelSwitch",
            {"fromOfferId": row["from_offer_id"], "toOfferId": row["to_offer_id"]},
            customer_id=sub["customer_id"],
            subscription_id=sub["id"],
            switch_id=row["id"],
            payment_id=row["payment_id"],
        )
        await subscription_event(uow, "subscriptionSwitchCancelled", sub, **_switch_ids(row))
        return updated


async def _write_subscription(uow: UnitOfWork, sub: Row, values: dict[str, Any]) -> Row:
    updated = await subscriptions_repo.update_subscription(
        uow.conn, sub, {**values, "updated_at": uow.now}
    )
    if updated is None:
        raise Conflict(
            "CONCURRENT_MODIFICATION", f"Subscription {sub['id']} changed meanwhile; retry"
        )
    note_subscription_write(uow, sub, updated)
    return updated


def _switch_ids(row: Row) -> dict[str, Any]:
    """The ids every switch topic carries."""
    return {
        "switch_id": row["id"],
        "from_offer_id": row["from_offer_id"],
        "to_offer_id": row["to_offer_id"],
    }


async def _write_switch(uow: UnitOfWork, row: Row, values: dict[str, Any]) -> Row:
    updated = await repo.update_switch(uow.conn, row, values)
    if updated is None:
        raise Conflict("CONCURRENT_MODIFICATION", f"Switch {row['id']} changed meanwhile; retry")
    return updated
