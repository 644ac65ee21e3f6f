"""Payment method wire types (CONTRACT §3)."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from ems_connector.schemas.common import Envelope, RequestBody, ResponseBody

Source = Annotated[
    str, Meta(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$", examples=["apple", "telco-acme"])
]
Name = Annotated[str, Meta(min_length=1, max_length=120)]


class CreatePaymentMethodRequest(RequestBody):
    source: Source
    method_name: Name
    payment_gateway: Name
    is_external_payment: bool = True
    auto_terminate: bool = True
    grace_period_seconds: Annotated[int, Meta(ge=0, le=366 * 86400)] = 0


class PaymentMethodResource(ResponseBody):
    id: int
    source: str
    method_name: str
    payment_gateway: str
    is_external_payment: bool
    auto_terminate: bool
    grace_period_seconds: int


class PaymentMethodList(Envelope, kw_only=True):
    data: list[PaymentMethodResource]
