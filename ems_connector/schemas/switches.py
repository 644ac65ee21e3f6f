"""Subscription switch wire types (CONTRACT §5)."""

from __future__ import annotations

from typing import Literal

from ems_connector.schemas.common import (
    Envelope,
    OfferId,
    PaymentId,
    RequestBody,
    ResponseBody,
    SubscriptionId,
)

Direction = Literal["upgrade", "downgrade", "unspecified"]
Algorithm = Literal["IMMEDIATE_WITHOUT_PRORATION", "DEFERRED"]
SwitchStatus = Literal["inprogress", "finished", "cancelled"]


class CreateSwitchRequest(RequestBody):
    subscription_id: SubscriptionId
    to_offer_id: OfferId
    switch_direction: Direction
    algorithm: Algorithm


class UpdateSwitchRequest(RequestBody):
    status: Literal["finished", "cancelled"]
    payment_id: PaymentId | None = None


class SwitchResource(ResponseBody):
    id: str
    subscription_id: int
    customer_id: int
    from_offer_id: str
    to_offer_id: str
    direction: Direction
    algorithm: Algorithm
    status: SwitchStatus
    payment_id: int | None
    created_at: int
    updated_at: int


class SwitchList(Envelope, kw_only=True):
    data: list[SwitchResource]
