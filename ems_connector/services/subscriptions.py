"""The subscription lifecycle (CONTRACT §4): each use case is one unit of work."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from ems_connector.context import RequestContext
from ems_connector.errors import (
    BadRequest,
    Conflict,
    NotFound,
    PreconditionFailed,
    Unprocessable,
    field_error,
)
from ems_connector.persistence import customers as customers_repo
from ems_connector.persistence import offers as offers_repo
from ems_connector.persistence import payment_methods as methods_repo
from ems_connector.persistence import subscriptions as repo
from ems_connector.persistence import switches as switches_repo
from ems_connector.persistence.database import Database
from ems_connector.persistence.unit_of_work import UnitOfWork, UnitOfWorkFactory
from ems_connector.schemas.subscriptions import (
    CancelRequest,
    CreateSubscriptionRequest,
    RenewalCycle,
    RenewRequest,
    ReviveRequest,
    SubscriptionLink,
    SubscriptionResource,
    TerminateRequest,
    TransferRequest,
    UpdateSubscriptionRequest,
)
from ems_connector.services import payment_links
from ems_connector.services.entitlements import note_subscription_write
from ems_connector.services.periods import add_period
from ems_connector.services.switches import offer_change
from ems_connector.services.webhook_events import subscription_event
from prepared_sql import Row
from state_machines import InvalidTransition
from state_machines import subscription as machine

# PATCH `status` values and the lifecycle event each one fires.
_STATUS_EVENTS = {"stopped": "cancel", "active": "activate", "terminated": "terminate"}
_EVENT_OPERATIONS = {
    "cancel": "cancelSubscription",
    "activate": "activateSubscription",
    "terminate": "terminateSubscription",
}
# Lifecycle event -> the webhook topic it raises (CONTRACT §12).
_EVENT_TOPICS = {
    "cancel": "subscriptionCancelled",
    "activate": "subscriptionActivated",
    "terminate": "subscriptionTerminated",
}
# Request field -> column, for the PATCH fields other than status.
_PATCH_COLUMNS = {
    "expires_at": "date_to",
    "in_trial": "in_trial",
    "external_properties": "external_properties",
    "external_id": "external_id",
}
# Column -> wire name, for the `changes` recorded in operations.
_WIRE_NAMES = {
    "status": "status",
    "date_to": "expiresAt",
    "in_trial": "inTrial",
    "external_properties": "externalProperties",
    "external_id": "externalId",
    "renewals_completed": "renewalCycleCompleted",
    "offer_id": "offerId",
    "latest_payment_external_id": "latestPaymentExternalId",
}


def to_resource(row: Row) -> SubscriptionResource:
    return SubscriptionResource(
        subscription_id=row["id"],
        publisher_id=row["publisher_id"],
        customer_id=row["customer_id"],
        offer_id=row["offer_id"],
        status=row["status"],
        date_from=row["date_from"],
        date_to=row["date_to"],
        in_trial=row["in_trial"],
        subscription_external_id=row["external_id"],
        external_properties=row["external_properties"],
        payment_method_id=row["payment_method_id"],
        source=row["source"],
        is_externally_managed=True,
        latest_payment_external_id=row["latest_payment_external_id"],
        pending_switch_id=row["pending_switch_id"],
        replaced_by=_link(row["replaced_by"]),
        originated_from=_link(row["originated_from"]),
        renewal_cycle=RenewalCycle(
            completed=row["renewals_completed"],
            unit=row["period_unit"],
            amount=row["period_amount"],
        ),
        version=row["version"],
    )


def _link(value: dict[str, Any] | None) -> SubscriptionLink | None:
    return msgspec.convert(value, SubscriptionLink) if value else None


def subscription_not_found(subscription_id: int) -> NotFound:
    return NotFound("SUBSCRIPTION_NOT_FOUND", f"Subscription with id: {subscription_id} not found")


def _changes(row: Row, values: dict[str, Any]) -> dict[str, list[Any]]:
    return {
        _WIRE_NAMES[column]: [row[column], value]
        for column, value in values.items()
        if column in _WIRE_NAMES
    }


def _duplicate_external_id(external_id: str, source: str) -> Unprocessable:
    return Unprocessable(
        "DUPLICATE_EXTERNAL_ID",
        f"A non-terminated subscription with externalId {external_id!r} already exists "
        f"for source {source!r}; terminate it first or use another externalId",
    )


class SubscriptionService:
    def __init__(self, db: Database, uow: UnitOfWorkFactory) -> None:
        self.db = db
        self.uow = uow

    # ---- reads ---------------------------------------------------------------------------

    async def get(self, ctx: RequestContext, subscription_id: int) -> SubscriptionResource:
        async with self.db.read() as conn:
            row = await repo.get(conn, ctx.publisher_id, subscription_id)
        if row is None:
            raise subscription_not_found(subscription_id)
        return to_resource(row)

    async def list(
        self,
        ctx: RequestContext,
        *,
        customer_id: int | None = None,
        offer_id: str | None = None,
        payment_method_id: int | None = None,
        external_id: str | None = None,
        statuses: Sequence[str] = (),
        offset: int = 0,
        limit: int = 20,
    ) -> list[SubscriptionResource]:
        if offer_id is not None and customer_id is None:
            raise BadRequest(
                "INVALID_FILTER",
                "offerId filters only together with customerId; add customerId",
                {"fields": [{"field": "offerId", "message": "requires customerId"}]},
            )
        if customer_id is None and payment_method_id is None and external_id is None:
            return []  # Cleeng answers an empty list, not an error, when nothing narrows it
        async with self.db.read() as conn:
            rows = await repo.search(
                conn,
                ctx.publisher_id,
                customer_id=customer_id,
                offer_id=offer_id,
                payment_method_id=payment_method_id,
                external_id=external_id,
                statuses=statuses,
                offset=offset,
                limit=limit,
            )
        return [to_resource(row) for row in rows]

    # ---- create --------------------------------------------------------------------------

    async def create(
        self, ctx: RequestContext, req: CreateSubscriptionRequest
    ) -> SubscriptionResource:
        async with self.uow(ctx) as uow:
            machine.fire("new", "create")
            customer = await customers_repo.get(uow.conn, ctx.publisher_id, req.customer_id)
            if customer is None:
                raise Unprocessable(
                    "CUSTOMER_NOT_FOUND", f"Customer with id: {req.customer_id} not found"
                )
            offer = await self._subscription_offer(uow, req.offer_id)
            method = await methods_repo.get(uow.conn, ctx.publisher_id, req.payment_method_id)
            if method is None:
                raise Unprocessable(
                    "PAYMENT_METHOD_NOT_FOUND",
                    f"Payment method with id: {req.payment_method_id} not found",
                )
            payment = None
            if req.payment_id is not None:
                payment = await payment_links.usable_payment(
                    uow,
                    req.payment_id,
                    customer_id=req.customer_id,
                    payment_method_id=req.payment_method_id,
                    offer_id=req.offer_id,
                )
            await self._ensure_external_id_free(uow, method["source"], req.external_id)
            expires_at = req.expires_at or add_period(
                uow.now, offer["period_unit"], offer["period_amount"]
            )
            row = await self._insert(
                uow,
                {
                    "customer_id": req.customer_id,
                    "offer_id": req.offer_id,
                    "date_from": uow.now,
                    "date_to": expires_at,
                    "in_trial": req.in_trial,
                    "external_id": req.external_id,
                    "external_properties": req.external_properties or {},
                    "payment_method_id": req.payment_method_id,
                    "source": method["source"],
                    "latest_payment_external_id": _external_id_of(payment),
                    "period_unit": offer["period_unit"],
                    "period_amount": offer["period_amount"],
                },
            )
            if payment is not None:
                await payment_links.claim(
                    uow, payment, {"type": "createSubscription", "subscriptionId": row["id"]}
                )
            await uow.log(
                "createSubscription",
                {
                    "offerId": req.offer_id,
                    "externalId": req.external_id,
                    "expiresAt": expires_at,
                    "inTrial": req.in_trial,
                    "paymentMethodId": req.payment_method_id,
                },
                customer_id=req.customer_id,
                subscription_id=row["id"],
                payment_id=req.payment_id,
            )
            await subscription_event(uow, "subscriptionCreated", row, payment_id=req.payment_id)
            return to_resource(row)

    # ---- declarative update ----------------------------------------------------------------

    async def update(
        self,
        ctx: RequestContext,
        subscription_id: int,
        req: UpdateSubscriptionRequest,
        expected_version: int | None = None,
    ) -> SubscriptionResource:
        async with self.uow(ctx) as uow:
            row = await self._load(uow, subscription_id, expected_version)
            event: str | None = None
            if req.status is not msgspec.UNSET and (
                req.status != row["status"] or row["status"] == "terminated"
            ):
                event = _STATUS_EVENTS[req.status]
            if row["status"] == "terminated":
                # A terminated subscription is final for PATCH; revive is the way back.
                raise InvalidTransition(
                    "subscription",
                    "terminated",
                    event or "update",
                    machine.allowed_events("terminated", replaced=bool(row["replaced_by"])),
                )
            values: dict[str, Any] = {}
            if event is not None:
                values["status"] = machine.fire(row["status"], event)
            for field, column in _PATCH_COLUMNS.items():
                value = getattr(req, field)
                if value is not msgspec.UNSET and row[column] != value:
                    values[column] = value
            if not values:
                return to_resource(row)  # declarative: nothing differs, nothing is written
            if "external_id" in values:
                await self._ensure_external_id_free(
                    uow, row["source"], values["external_id"], except_id=row["id"]
                )
            payload: dict[str, Any] = {"changes": _changes(row, values)}
            if values.get("status") == "terminated":
                payload["terminationType"] = "publisherCancel"
            updated = await self._update(uow, row, values, expected_version)
            only_status = set(values) == {"status"}
            op_type = _EVENT_OPERATIONS[event] if only_status and event else "updateSubscription"
            await uow.log(
                op_type,
                payload,
                customer_id=row["customer_id"],
                subscription_id=row["id"],
            )
            if event is not None:
                termination = (
                    {"termination_type": "publisherCancel"} if event == "terminate" else {}
                )
                await subscription_event(uow, _EVENT_TOPICS[event], updated, **termination)
            if not only_status:
                await subscription_event(uow, "subscriptionUpdated", updated)
            return to_resource(updated)

    # ---- imperative actions ----------------------------------------------------------------

    async def cancel(
        self,
        ctx: RequestContext,
        subscription_id: int,
        req: CancelRequest,
        expected_version: int | None = None,
    ) -> SubscriptionResource:
        return await self._simple_transition(
            ctx,
            subscription_id,
            "cancel",
            expected_version,
            {"cancellationReason": req.cancellation_reason},
        )

    async def activate(
        self, ctx: RequestContext, subscription_id: int, expected_version: int | None = None
    ) -> SubscriptionResource:
        return await self._simple_transition(ctx, subscription_id, "activate", expected_version, {})

    async def terminate(
        self,
        ctx: RequestContext,
        subscription_id: int,
        req: TerminateRequest,
        expected_version: int | None = None,
    ) -> SubscriptionResource:
        return await self._simple_transition(
            ctx,
            subscription_id,
            "terminate",
            expected_version,
            {"terminationType": req.termination_type},
        )

    async def _simple_transition(
        self,
        ctx: RequestContext,
        subscription_id: int,
        event: str,
        expected_version: int | None,
        extra: dict[str, Any],
    ) -> SubscriptionResource:
        async with self.uow(ctx) as uow:
            row = await self._load(uow, subscription_id, expected_version)
            updated = await self._transition(uow, row, event, expected_version, extra)
            return to_resource(updated)

    async def _transition(
        self,
        uow: UnitOfWork,
        row: Row,
        event: str,
        expected_version: int | None,
        extra: dict[str, Any],
    ) -> Row:
        values = {"status": _fire(row, event)}
        updated = await self._update(uow, row, values, expected_version)
        await uow.log(
            _EVENT_OPERATIONS[event],
            {"changes": _changes(row, values), **extra},
            customer_id=row["customer_id"],
            subscription_id=row["id"],
        )
        await subscription_event(
            uow,
            _EVENT_TOPICS[event],
            updated,
            termination_type=extra.get("terminationType"),
            cancellation_reason=extra.get("cancellationReason"),
        )
        return updated

    async def terminate_expired(self, ctx: RequestContext, subscription_id: int) -> bool:
        """The expiry sweep's terminate (CONTRACT §4): only if, read inside this unit of
        work, the subscription is still active or stopped, past its dateTo plus the grace
        period, on a method with autoTerminate. False when there is nothing (left) to do."""
        async with self.uow(ctx) as uow:
            row = await repo.get_for_update(uow.conn, ctx.publisher_id, subscription_id)
            if row is None or row["status"] == "terminated":
                return False
            method = await methods_repo.get(uow.conn, ctx.publisher_id, row["payment_method_id"])
            assert method is not None  # payment methods are never deleted
            if not method["auto_terminate"]:
                return False
            if row["date_to"] + method["grace_period_seconds"] >= uow.now:
                return False
            termination = "paymentCancel" if row["status"] == "active" else "userCancel"
            await self._transition(
                uow, row, "terminate", None, {"terminationType": termination, "reason": "expired"}
            )
            return True

    async def renew(
        self,
        ctx: RequestContext,
        subscription_id: int,
        req: RenewRequest,
        expected_version: int | None = None,
    ) -> SubscriptionResource:
        async with self.uow(ctx) as uow:
            row = await self._load(uow, subscription_id, expected_version)
            status = _fire(row, "renew")
            # A finished DEFERRED switch takes effect now, before the new period is computed.
            values: dict[str, Any] = await self._deferred_switch(uow, row)
            period_unit: str = values.get("period_unit") or row["period_unit"]
            period_amount: int = values.get("period_amount") or row["period_amount"]
            if req.expires_at is not None:
                if req.expires_at <= row["date_to"]:
                    raise Unprocessable(
                        "INVALID_EXPIRATION",
                        f"expiresAt {req.expires_at} must be later than the current "
                        f"expiry {row['date_to']}",
                        {"fields": [{"field": "expiresAt", "message": "must be after dateTo"}]},
                    )
                expires_at = req.expires_at
            else:
                expires_at = add_period(max(row["date_to"], uow.now), period_unit, period_amount)
            values.update(
                status=status,
                date_to=expires_at,
                renewals_completed=row["renewals_completed"] + 1,
            )
            if req.convert_trial:
                values["in_trial"] = False
            if req.payment_id is not None:
                payment = await payment_links.usable_payment(
                    uow,
                    req.payment_id,
                    customer_id=row["customer_id"],
                    payment_method_id=row["payment_method_id"],
                    subscription_id=row["id"],
                )
                await payment_links.claim(
                    uow, payment, {"type": "renewSubscription", "subscriptionId": row["id"]}
                )
                values["latest_payment_external_id"] = payment["external_payment_id"]
            updated = await self._update(uow, row, values, expected_version)
            payload: dict[str, Any] = {
                "changes": _changes(row, values),
                "convertTrial": req.convert_trial,
            }
            if "offer_id" in values:
                payload["appliedSwitchId"] = row["pending_switch_id"]
            await uow.log(
                "renewSubscription",
                payload,
                customer_id=row["customer_id"],
                subscription_id=row["id"],
                payment_id=req.payment_id,
            )
            switched = (
                {
                    "switch_id": row["pending_switch_id"],
                    "from_offer_id": row["offer_id"],
                    "to_offer_id": values["offer_id"],
                }
                if "offer_id" in values
                else {}
            )
            await subscription_event(
                uow, "subscriptionRenewed", updated, payment_id=req.payment_id, **switched
            )
            return to_resource(updated)

    async def transfer(
        self,
        ctx: RequestContext,
        subscription_id: int,
        req: TransferRequest,
        expected_version: int | None = None,
    ) -> SubscriptionResource:
        async with self.uow(ctx) as uow:
            row = await self._load(uow, subscription_id, expected_version)
            status = _fire(row, "transfer")
            target = await customers_repo.get(uow.conn, ctx.publisher_id, req.customer_id)
            if target is None:
                raise Unprocessable(
                    "CUSTOMER_NOT_FOUND", f"Customer with id: {req.customer_id} not found"
                )
            if req.customer_id == row["customer_id"]:
                raise Unprocessable(
                    "SAME_CUSTOMER",
                    f"Subscription {row['id']} already belongs to customer {req.customer_id}; "
                    "transfer it to another customer",
                )
            # Terminate first: the copy takes over the same (source, externalId).
            terminated = await self._update(uow, row, {"status": status}, expected_version)
            copy = await self._insert(
                uow,
                {
                    "customer_id": req.customer_id,
                    "offer_id": row["offer_id"],
                    "date_from": uow.now,
                    "date_to": row["date_to"],
                    "in_trial": row["in_trial"],
                    "external_id": row["external_id"],
                    "external_properties": row["external_properties"],
                    "payment_method_id": row["payment_method_id"],
                    "source": row["source"],
                    "latest_payment_external_id": row["latest_payment_external_id"],
                    "period_unit": row["period_unit"],
                    "period_amount": row["period_amount"],
                    "originated_from": _link_value(row["id"], "transfer", uow.now),
                },
            )
            final = await repo.set_replaced_by(
                uow.conn, terminated, _link_value(copy["id"], "transfer", uow.now)
            )
            await uow.log(
                "transferSubscription",
                {
                    "changes": _changes(row, {"status": status}),
                    "fromCustomerId": row["customer_id"],
                    "toCustomerId": req.customer_id,
                    "newSubscriptionId": copy["id"],
                    "terminationType": "transfer",
                },
                customer_id=row["customer_id"],
                subscription_id=row["id"],
            )
            moved = {
                "new_subscription_id": copy["id"],
                "from_customer_id": row["customer_id"],
                "to_customer_id": req.customer_id,
            }
            await subscription_event(uow, "subscriptionTransferred", final, **moved)
            await subscription_event(
                uow, "subscriptionTerminated", final, termination_type="transfer"
            )
            await subscription_event(uow, "subscriptionCreated", copy, reason="transfer", **moved)
            return to_resource(final)

    async def revive(
        self,
        ctx: RequestContext,
        subscription_id: int,
        req: ReviveRequest,
        expected_version: int | None = None,
    ) -> SubscriptionResource:
        expires_at = req.expiration_date if req.expiration_date is not None else req.expires_at
        if expires_at is None:
            raise field_error("expirationDate", "required: the new expiry, in Unix seconds")
        async with self.uow(ctx) as uow:
            row = await self._load(uow, subscription_id, expected_version)
            if row["status"] == "terminated" and row["replaced_by"]:
                replacement = row["replaced_by"]
                raise Unprocessable(
                    "ALREADY_REPLACED",
                    f"Subscription {row['id']} was already replaced by "
                    f"{replacement['subscriptionId']} ({replacement['reason']}); "
                    "revive that one instead",
                    {"replacedBy": replacement},
                )
            _fire(row, "revive")
            if expires_at <= uow.now:
                raise Unprocessable(
                    "INVALID_EXPIRATION",
                    f"expirationDate {expires_at} is not in the future",
                    {"fields": [{"field": "expirationDate", "message": "must be in the future"}]},
                )
            offer = await offers_repo.get(uow.conn, ctx.publisher_id, row["offer_id"])
            if offer is None or not offer["active"]:
                raise Unprocessable(
                    "OFFER_INACTIVE",
                    f"Offer {row['offer_id']} is not active; activate it before reviving",
                )
            payment = None
            if req.payment_id is not None:
                payment = await payment_links.usable_payment(
                    uow,
                    req.payment_id,
                    customer_id=row["customer_id"],
                    payment_method_id=row["payment_method_id"],
                    subscription_id=row["id"],
                )
            await self._ensure_external_id_free(uow, row["source"], row["external_id"])
            copy = await self._insert(
                uow,
                {
                    "customer_id": row["customer_id"],
                    "offer_id": row["offer_id"],
                    "date_from": row["date_from"],
                    "date_to": expires_at,
                    "in_trial": False,
                    "external_id": row["external_id"],
                    "external_properties": row["external_properties"],
                    "payment_method_id": row["payment_method_id"],
                    "source": row["source"],
                    "latest_payment_external_id": _external_id_of(payment)
                    or row["latest_payment_external_id"],
                    "period_unit": offer["period_unit"],
                    "period_amount": offer["period_amount"],
                    "originated_from": _link_value(row["id"], "revive", uow.now),
                },
            )
            if payment is not None:
                await payment_links.claim(
                    uow, payment, {"type": "reviveSubscription", "subscriptionId": copy["id"]}
                )
            updated = await self._update(
                uow,
                row,
                {"replaced_by": _link_value(copy["id"], "revive", uow.now)},
                expected_version,
            )
            await uow.log(
                "reviveSubscription",
                {"newSubscriptionId": copy["id"], "expiresAt": expires_at},
                customer_id=row["customer_id"],
                subscription_id=row["id"],
                payment_id=req.payment_id,
            )
            await subscription_event(
                uow, "subscriptionRevived", updated, new_subscription_id=copy["id"]
            )
            await subscription_event(
                uow, "subscriptionCreated", copy, reason="revive", payment_id=req.payment_id
            )
            return to_resource(updated)

    # ---- helpers -----------------------------------------------------------------------------

    async def _deferred_switch(self, uow: UnitOfWork, row: Row) -> dict[str, Any]:
        """The columns a finished DEFERRED switch changes at this renew (none if there is none)."""
        if row["pending_switch_id"] is None:
            return {}
        switch = await switches_repo.get(
            uow.conn, uow.context.publisher_id, row["pending_switch_id"]
        )
        if switch is None or switch["status"] != "finished":
            return {}  # still in progress: the renew keeps the current offer
        target = await offers_repo.get(uow.conn, uow.context.publisher_id, switch["to_offer_id"])
        assert target is not None  # offers are never deleted
        return {**offer_change(target), "pending_switch_id": None}

    async def _load(
        self, uow: UnitOfWork, subscription_id: int, expected_version: int | None
    ) -> Row:
        row = await repo.get_for_update(uow.conn, uow.context.publisher_id, subscription_id)
        if row is None:
            raise subscription_not_found(subscription_id)
        if expected_version is not None and expected_version != row["version"]:
            raise _version_mismatch(row, expected_version)
        return row

    async def _update(
        self,
        uow: UnitOfWork,
        row: Row,
        values: dict[str, Any],
        expected_version: int | None,
    ) -> Row:
        try:
            updated = await repo.update_subscription(
                uow.conn, row, {**values, "updated_at": uow.now}
            )
        except repo.DuplicateExternalId as exc:
            raise _duplicate_external_id(values.get("external_id", ""), row["source"]) from exc
        if updated is None:
            # Another process committed in between (possible on PostgreSQL only).
            if expected_version is not None:
                raise _version_mismatch(row, expected_version)
            raise Conflict(
                "CONCURRENT_MODIFICATION",
                f"Subscription {row['id']} changed while this request ran; retry",
            )
        note_subscription_write(uow, row, updated)
        return updated

    async def _insert(self, uow: UnitOfWork, values: dict[str, Any]) -> Row:
        defaults = {
            "publisher_id": uow.context.publisher_id,
            "status": "active",
            "latest_payment_external_id": None,
            "pending_switch_id": None,
            "replaced_by": None,
            "originated_from": None,
            "renewals_completed": 0,
            "version": 1,
            "created_at": uow.now,
            "updated_at": uow.now,
        }
        try:
            row = await repo.insert_subscription(uow.conn, {**defaults, **values})
        except repo.DuplicateExternalId as exc:
            raise _duplicate_external_id(values["external_id"], values["source"]) from exc
        note_subscription_write(uow, None, row)
        return row

    async def _subscription_offer(self, uow: UnitOfWork, offer_id: str) -> Row:
        offer = await offers_repo.get(uow.conn, uow.context.publisher_id, offer_id)
        if offer is None:
            raise Unprocessable("OFFER_NOT_FOUND", f"Offer with id: {offer_id} not found")
        if not offer["active"]:
            raise Unprocessable(
                "OFFER_INACTIVE", f"Offer {offer_id} is not active; activate it first"
            )
        if offer["type"] != "subscription":
            raise Unprocessable(
                "OFFER_NOT_SUBSCRIPTION",
                f"Offer {offer_id} is a {offer['type']} offer; subscriptions need an S… offer",
            )
        return offer

    async def _ensure_external_id_free(
        self, uow: UnitOfWork, source: str, external_id: str, except_id: int | None = None
    ) -> None:
        holder = await repo.find_live_by_external_id(
            uow.conn, uow.context.publisher_id, source, external_id
        )
        if holder is not None and holder["id"] != except_id:
            raise _duplicate_external_id(external_id, source)


def _fire(row: Row, event: str) -> machine.Status:
    """The status after `event`; a refusal's `allowed` knows whether the row was replaced."""
    return machine.fire(row["status"], event, replaced=bool(row["replaced_by"]))


def _link_value(subscription_id: int, reason: str, date: int) -> dict[str, Any]:
    return {"subscriptionId": subscription_id, "reason": reason, "date": date}


def _version_mismatch(row: Row, expected_version: int) -> PreconditionFailed:
    return PreconditionFailed(
        "VERSION_MISMATCH",
        f"Subscription {row['id']} is at version {row['version']}, not {expected_version}; "
        "fetch it again and retry",
        {"currentVersion": row["version"]},
    )


def _external_id_of(payment: Row | None) -> str | None:
    return payment["external_payment_id"] if payment is not None else None
