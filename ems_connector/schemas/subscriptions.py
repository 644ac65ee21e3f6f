"""Subscription wire types (CONTRACT §4)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, UnsetType

from ems_connector.schemas.common import (
    CustomerId,
    Envelope,
    ExternalId,
    OfferId,
    PaymentId,
    PaymentMethodId,
    Properties,
    RequestBody,
    ResponseBody,
    Timestamp,
)

Status = Literal["active", "stopped", "terminated"]
TerminationType = Literal["paymentCancel", "userCancel", "publisherCancel"]


class CreateSubscriptionRequest(RequestBody):
    customer_id: CustomerId
    offer_id: OfferId
    payment_method_id: PaymentMethodId
    external_id: ExternalId
    expires_at: Timestamp | None = None
    in_trial: bool = False
    payment_id: PaymentId | None = None
    external_properties: Properties | None = None


class UpdateSubscriptionRequest(RequestBody):
    status: Status | UnsetType = UNSET
    expires_at: Timestamp | UnsetType = UNSET
    in_trial: bool | UnsetType = UNSET
    external_properties: Properties | UnsetType = UNSET
    external_id: ExternalId | UnsetType = UNSET


class CancelRequest(RequestBody):
    cancellation_reason: Annotated[str, Meta(min_length=1, max_length=512)]


class TerminateRequest(RequestBody):
    termination_type: TerminationType


class RenewRequest(RequestBody):
    expires_at: Timestamp | None = None
    payment_id: PaymentId | None = None
    convert_trial: bool = False


class TransferRequest(RequestBody):
    customer_id: CustomerId


class ReviveRequest(RequestBody):
    expiration_date: Timestamp | None = None
    expires_at: Annotated[Timestamp | None, Meta(description="Alias of expirationDate")] = None
    payment_id: PaymentId | None = None


class RenewalCycle(ResponseBody):
    completed: int
    unit: str
    amount: int


class SubscriptionLink(ResponseBody):
    subscription_id: int
    reason: Literal["transfer", "revive"]
    date: int


class SubscriptionResource(ResponseBody):
    subscription_id: int
    publisher_id: int
    customer_id: int
    offer_id: str
    status: Status
    date_from: int
    date_to: int
    in_trial: bool
    subscription_external_id: str
    external_properties: dict[str, Any]
    payment_method_id: int
    source: str
    is_externally_managed: bool
    latest_payment_external_id: str | None
    pending_switch_id: str | None
    replaced_by: SubscriptionLink | None
    originated_from: SubscriptionLink | None
    renewal_cycle: RenewalCycle
    version: int
    payment_details_id: None = None
    coupon_code: None = None


class UpdateSubscriptionResponse(Envelope, kw_only=True):
    subscription: SubscriptionResource


class SubscriptionList(Envelope, kw_only=True):
    data: list[SubscriptionResource]
