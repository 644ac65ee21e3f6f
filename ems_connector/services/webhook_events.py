"""Builds the webhook events of a change and puts them in the outbox of its unit of work."""

from __future__ import annotations

from typing import Any

from ems_connector.persistence import customers as customers_repo
from ems_connector.persistence.unit_of_work import UnitOfWork
from prepared_sql import Row
from webhooks.payloads import PaymentEventData, SubscriptionEventData, iso


async def _email(uow: UnitOfWork, customer_id: int) -> str:
    """The customer's email, looked up once per unit of work (a transfer emits three events)."""
    emails: dict[int, str] = uow.memo.setdefault("customer_emails", {})
    if customer_id not in emails:
        customer = await customers_repo.get(uow.conn, uow.context.publisher_id, customer_id)
        emails[customer_id] = customer["email"] if customer is not None else ""
    return emails[customer_id]


async def subscription_event(uow: UnitOfWork, topic: str, row: Row, **extra: Any) -> None:
    """Emit `topic` for the subscription as `row` now stands, with the topic's extra ids."""
    data = SubscriptionEventData(
        subscription_id=row["id"],
        customer_id=row["customer_id"],
        customer_email=await _email(uow, row["customer_id"]),
        offer_id=row["offer_id"],
        status=row["status"],
        expires_at=iso(row["date_to"]),
        in_trial=row["in_trial"],
        external_id=row["external_id"],
        payment_method_id=row["payment_method_id"],
        version=row["version"],
        occurred_at=iso(uow.now),
        **extra,
    )
    await uow.emit(
        topic,
        data,
        subscription_id=row["id"],
        subscription_version=row["version"],
        payment_method_id=row["payment_method_id"],
    )


async def payment_event(uow: UnitOfWork, topic: str, row: Row) -> None:
    tax = row["tax_amount"]
    data = PaymentEventData(
        payment_id=row["id"],
        customer_id=row["customer_id"],
        customer_email=await _email(uow, row["customer_id"]),
        offer_id=row["offer_id"],
        subscription_id=row["subscription_id"],
        payment_method_id=row["payment_method_id"],
        status=row["status"],
        payment_operation=row["payment_operation"],
        amount=row["net_amount"],
        tax_value=tax,
        total_amount=round(row["net_amount"] + (tax or 0.0), 6),
        currency=row["currency"],
        external_payment_id=row["external_payment_id"],
        occurred_at=iso(uow.now),
        switch_id=row["switch_id"],
        rejected_reason=row["rejected_reason"],
        refunded_reason=row["refunded_reason"],
    )
    await uow.emit(
        topic,
        data,
        subscription_id=row["subscription_id"],
        payment_id=row["id"],
        payment_method_id=row["payment_method_id"],
    )
