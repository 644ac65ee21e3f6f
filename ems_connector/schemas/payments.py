"""EMS payment wire types (CONTRACT §6)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta

from ems_connector.schemas.common import (
    CountryCode,
    CurrencyCode,
    CustomerId,
    Envelope,
    OfferId,
    PaymentMethodId,
    RequestBody,
    ResponseBody,
    SubscriptionId,
)

Amount = Annotated[float, Meta(ge=0, le=1_000_000_000)]
Reason = Annotated[str, Meta(min_length=1, max_length=512)]
PaymentOperation = Literal["initial-payment", "recurring-payment", "offer-switch"]


class CreatePaymentRequest(RequestBody):
    customer_id: CustomerId
    offer_id: OfferId
    payment_method_id: PaymentMethodId
    status: Literal["captured", "rejected"]
    net_amount: Amount
    tax_amount: Amount | None
    currency: CurrencyCode
    external_payment_id: Annotated[str, Meta(min_length=1, max_length=255)]
    rejected_reason: Reason | None = None
    subscription_id: SubscriptionId | None = None
    country: CountryCode | None = None


class UpdatePaymentRequest(RequestBody):
    status: Literal["refunded", "rejected"]
    refunded_reason: Reason | None = None
    rejected_reason: Reason | None = None


class PaymentResource(ResponseBody):
    """Cleeng's PaymentResource; fields with no meaning for EMS carry fixed values."""

    id: int
    status: Literal["captured", "rejected", "refunded"]
    payment_operation: PaymentOperation
    customer_id: int
    offer_id: str
    offer_type: str
    payment_method_id: int
    payment_method: str
    payment_gateway: str
    subscription_id: int | None
    switch_id: str | None
    external_payment_id: str
    amount: float
    tax_value: float | None
    total_amount: float
    currency: str
    country: str | None
    rejected_reason: str | None
    refunded_reason: str | None
    created_at: int
    updated_at: int
    order_id: None = None
    coupon_code_id: None = None
    payment_method_fee: float = 0.0
    customer_service_fee: None = None
    payment_details_id: None = None
    gateway_specific_params: dict[str, Any] = {}


class PaymentEnvelope(Envelope, kw_only=True):
    payment: PaymentResource


class PaymentList(Envelope, kw_only=True):
    data: list[PaymentResource]
