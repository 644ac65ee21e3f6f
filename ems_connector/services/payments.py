"""EMS payments reported by connectors (CONTRACT §6)."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from ems_connector.context import RequestContext
from ems_connector.errors import Conflict, NotFound, Unprocessable, field_error
from ems_connector.persistence import customers as customers_repo
from ems_connector.persistence import offers as offers_repo
from ems_connector.persistence import payment_methods as methods_repo
from ems_connector.persistence import payments as repo
from ems_connector.persistence import subscriptions as subscriptions_repo
from ems_connector.persistence import switches as switches_repo
from ems_connector.persistence.database import Database
from ems_connector.persistence.unit_of_work import UnitOfWork, UnitOfWorkFactory
from ems_connector.schemas.payments import (
    CreatePaymentRequest,
    PaymentResource,
    UpdatePaymentRequest,
)
from ems_connector.services.webhook_events import payment_event
from prepared_sql import Row
from state_machines import payment as machine


def switch_claim(switch_id: str, subscription_id: int) -> dict[str, Any]:
    """What a payment attached to a switch is used by."""
    return {"type": "subscriptionSwitch", "switchId": switch_id, "subscriptionId": subscription_id}


def to_resource(row: Row, method: Row, offer_type: str) -> PaymentResource:
    tax = row["tax_amount"]
    return PaymentResource(
        id=row["id"],
        status=row["status"],
        payment_operation=row["payment_operation"],
        customer_id=row["customer_id"],
        offer_id=row["offer_id"],
        offer_type=offer_type,
        payment_method_id=row["payment_method_id"],
        payment_method=method["method_name"],
        payment_gateway=method["payment_gateway"],
        subscription_id=row["subscription_id"],
        switch_id=row["switch_id"],
        external_payment_id=row["external_payment_id"],
        amount=row["net_amount"],
        tax_value=tax,
        total_amount=round(row["net_amount"] + (tax or 0.0), 6),
        currency=row["currency"],
        country=row["country"],
        rejected_reason=row["rejected_reason"],
        refunded_reason=row["refunded_reason"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _fingerprint(req: CreatePaymentRequest) -> str:
    return hashlib.sha256(msgspec.json.encode(req)).hexdigest()


def payment_not_found(payment_id: int) -> NotFound:
    return NotFound("PAYMENT_NOT_FOUND", f"Payment with id: {payment_id} not found")


class PaymentService:
    def __init__(self, db: Database, uow: UnitOfWorkFactory) -> None:
        self.db = db
        self.uow = uow

    async def create(
        self, ctx: RequestContext, req: CreatePaymentRequest
    ) -> tuple[PaymentResource, bool]:
        """The new payment, or the stored one for a same-body repeat (flag False)."""
        if req.rejected_reason is not None and req.status != "rejected":
            raise field_error("rejectedReason", "only with status rejected")
        fingerprint = _fingerprint(req)
        async with self.uow(ctx) as uow:
            existing = await repo.find_by_external_id(
                uow.conn, ctx.publisher_id, req.payment_method_id, req.external_payment_id
            )
            if existing is not None:
                if existing["request_fingerprint"] != fingerprint:
                    raise Unprocessable(
                        "DUPLICATE_PAYMENT",
                        f"Payment {req.external_payment_id!r} of payment method "
                        f"{req.payment_method_id} was already reported with other details "
                        f"(payment {existing['id']})",
                        {"paymentId": existing["id"]},
                    )
                return await self._resource(uow, existing), False
            if await customers_repo.get(uow.conn, ctx.publisher_id, req.customer_id) is None:
                raise Unprocessable(
                    "CUSTOMER_NOT_FOUND", f"Customer with id: {req.customer_id} not found"
                )
            if await offers_repo.get(uow.conn, ctx.publisher_id, req.offer_id) is None:
                raise Unprocessable("OFFER_NOT_FOUND", f"Offer with id: {req.offer_id} not found")
            if await methods_repo.get(uow.conn, ctx.publisher_id, req.payment_method_id) is None:
                raise Unprocessable(
                    "PAYMENT_METHOD_NOT_FOUND",
                    f"Payment method with id: {req.payment_method_id} not found",
                )
            operation, switch = "initial-payment", None
            if req.subscription_id is not None:
                operation, switch = await self._recurring(uow, req)
            try:
                row = await repo.insert_payment(
                    uow.conn,
                    {
                        "publisher_id": ctx.publisher_id,
                        "customer_id": req.customer_id,
                        "offer_id": req.offer_id,
                        "payment_method_id": req.payment_method_id,
                        "subscription_id": req.subscription_id,
                        "switch_id": None,  # set by _attach when the switch takes it
                        "status": req.status,
                        "payment_operation": operation,
                        "net_amount": req.net_amount,
                        "tax_amount": req.tax_amount,
                        "currency": req.currency,
                        "country": req.country,
                        "external_payment_id": req.external_payment_id,
                        "rejected_reason": req.rejected_reason,
                        "used_by": None,
                        "request_fingerprint": fingerprint,
                        "created_at": uow.now,
                        "updated_at": uow.now,
                    },
                )
            except repo.DuplicateExternalPaymentId as exc:
                raise Conflict(
                    "CONCURRENT_MODIFICATION",
                    f"Payment {req.external_payment_id!r} is being reported concurrently; retry",
                ) from exc
            if switch is not None:
                row = await self._attach(uow, switch, row)
            await uow.log(
                "createPayment",
                {
                    "status": req.status,
                    "paymentOperation": operation,
                    "externalPaymentId": req.external_payment_id,
                    "offerId": req.offer_id,
                    "netAmount": req.net_amount,
                    "currency": req.currency,
                },
                customer_id=req.customer_id,
                subscription_id=req.subscription_id,
                switch_id=switch["id"] if switch else None,
                payment_id=row["id"],
            )
            if row["status"] == "captured":
                await payment_event(uow, "transactionCreated", row)
            return await self._resource(uow, row), True

    async def _recurring(
        self, uow: UnitOfWork, req: CreatePaymentRequest
    ) -> tuple[str, Row | None]:
        """`recurring-payment`, or `offer-switch` with the switch in progress."""
        assert req.subscription_id is not None
        sub = await subscriptions_repo.get_for_update(
            uow.conn, uow.context.publisher_id, req.subscription_id
        )
        if sub is None:
            raise Unprocessable(
                "SUBSCRIPTION_NOT_FOUND", f"Subscription with id: {req.subscription_id} not found"
            )
        mismatched = [
            name
            for name, ours, theirs in (
                ("customerId", sub["customer_id"], req.customer_id),
                ("paymentMethodId", sub["payment_method_id"], req.payment_method_id),
            )
            if ours != theirs
        ]
        if mismatched:
            raise Unprocessable(
                "PAYMENT_MISMATCH",
                f"Subscription {sub['id']} has another {', '.join(mismatched)} than this payment",
                {"mismatched": mismatched},
            )
        if sub["pending_switch_id"] is not None:
            switch = await switches_repo.get(
                uow.conn, uow.context.publisher_id, sub["pending_switch_id"]
            )
            if switch is not None and switch["status"] == "inprogress":
                return "offer-switch", switch
        return "recurring-payment", None

    async def _attach(self, uow: UnitOfWork, switch: Row, row: Row) -> Row:
        """Attach an `offer-switch` payment to its switch, which then holds the newest
        captured one (reserved for it); a rejected one is attached only while no captured
        one is. A captured payment displaced by a newer one is released for other use."""
        claim = switch_claim(switch["id"], switch["subscription_id"])
        attached = (
            await repo.get(uow.conn, uow.context.publisher_id, switch["payment_id"])
            if switch["payment_id"] is not None
            else None
        )
        holds_captured = attached is not None and attached["status"] == "captured"
        if row["status"] != "captured" and holds_captured:
            return row
        if attached is not None and attached["used_by"] == claim:
            await repo.update_payment(
                uow.conn, attached["id"], {"switch_id": None, "used_by": None}
            )
        await switches_repo.update_switch(
            uow.conn, switch, {"payment_id": row["id"], "updated_at": uow.now}
        )
        values: dict[str, Any] = {"switch_id": switch["id"]}
        if row["status"] == "captured":
            values["used_by"] = claim
        return await repo.update_payment(uow.conn, row["id"], values)

    async def get(self, ctx: RequestContext, payment_id: int) -> PaymentResource:
        async with self.db.read() as conn:
            row = await repo.get(conn, ctx.publisher_id, payment_id)
            if row is None:
                raise payment_not_found(payment_id)
            return await self._resource_on(conn, ctx.publisher_id, row)

    async def list(
        self,
        ctx: RequestContext,
        *,
        customer_id: int | None,
        subscription_id: int | None,
        offset: int,
        limit: int,
    ) -> list[PaymentResource]:
        if customer_id is None and subscription_id is None:
            return []
        async with self.db.read() as conn:
            rows = await repo.search(
                conn,
                ctx.publisher_id,
                customer_id=customer_id,
                subscription_id=subscription_id,
                offset=offset,
                limit=limit,
            )
            # a page repeats a few payment methods and offers: look each up once
            catalogue: dict[tuple[str, object], Any] = {}
            return [await self._resource_on(conn, ctx.publisher_id, row, catalogue) for row in rows]

    async def update(
        self, ctx: RequestContext, payment_id: int, req: UpdatePaymentRequest
    ) -> PaymentResource:
        if req.refunded_reason is not None and req.status != "refunded":
            raise field_error("refundedReason", "only with status refunded")
        if req.rejected_reason is not None and req.status != "rejected":
            raise field_error("rejectedReason", "only with status rejected")
        async with self.uow(ctx) as uow:
            row = await repo.get(uow.conn, ctx.publisher_id, payment_id)
            if row is None:
                raise payment_not_found(payment_id)
            status = machine.fire(row["status"], machine.EVENT_FOR_STATUS[req.status])
            reason_column = f"{req.status}_reason"
            reason = req.refunded_reason if req.status == "refunded" else req.rejected_reason
            updated = await repo.update_payment(
                uow.conn,
                payment_id,
                {"status": status, reason_column: reason, "updated_at": uow.now},
            )
            used_by = row["used_by"] or {}
            await uow.log(
                "updatePayment",
                {"changes": {"status": [row["status"], status]}, "reason": reason},
                customer_id=row["customer_id"],
                # a payment that paid for a create names its subscription only in `used_by`
                subscription_id=row["subscription_id"] or used_by.get("subscriptionId"),
                switch_id=row["switch_id"],
                payment_id=payment_id,
            )
            await payment_event(uow, "paymentUpdated", updated)
            return await self._resource(uow, updated)

    async def _resource(self, uow: UnitOfWork, row: Row) -> PaymentResource:
        return await self._resource_on(uow.conn, uow.context.publisher_id, row)

    async def _resource_on(
        self,
        conn: Any,
        publisher_id: int,
        row: Row,
        catalogue: dict[tuple[str, object], Any] | None = None,
    ) -> PaymentResource:
        known = {} if catalogue is None else catalogue
        method_key = ("method", row["payment_method_id"])
        if method_key not in known:
            known[method_key] = await methods_repo.get(conn, publisher_id, row["payment_method_id"])
        offer_key = ("offer", row["offer_id"])
        if offer_key not in known:
            known[offer_key] = await offers_repo.get(conn, publisher_id, row["offer_id"])
        method, offer = known[method_key], known[offer_key]
        assert method is not None and offer is not None  # neither can be deleted
        return to_resource(row, method, offer["type"])
