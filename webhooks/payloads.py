"""The `data` of each topic: subscription and payment events (CONTRACT §9)."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec


def iso(timestamp: float) -> str:
    """Webhook timestamps are ISO-8601 UTC strings ending in Z."""
    return datetime.fromtimestamp(int(timestamp), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SubscriptionEventData(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Every subscription topic carries these; per topic the ids involved are added."""

    subscription_id: int
    customer_id: int
    customer_email: str
    offer_id: str
    status: str
    expires_at: str
    in_trial: bool
    external_id: str
    payment_method_id: int
    version: int
    occurred_at: str
    reason: str | None = None
    switch_id: str | None = None
    from_offer_id: str | None = None
    to_offer_id: str | None = None
    new_subscription_id: int | None = None
    from_customer_id: int | None = None
    to_customer_id: int | None = None
    termination_type: str | None = None
    cancellation_reason: str | None = None
    payment_id: int | None = None


class PaymentEventData(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """`transactionCreated` (a captured payment) and `paymentUpdated`."""

    payment_id: int
    customer_id: int
    customer_email: str
    offer_id: str
    subscription_id: int | None
    payment_method_id: int
    status: str
    payment_operation: str
    amount: float
    tax_value: float | None
    total_amount: float
    currency: str
    external_payment_id: str
    occurred_at: str
    switch_id: str | None = None
    rejected_reason: str | None = None
    refunded_reason: str | None = None
