"""Customer wire types (CONTRACT §3)."""

from __future__ import annotations

from typing import Annotated, Any

from msgspec import UNSET, Meta, UnsetType

from ems_connector.schemas.common import (
    CountryCode,
    CurrencyCode,
    Envelope,
    ExternalId,
    Properties,
    RequestBody,
    ResponseBody,
)

Email = Annotated[
    str,
    Meta(
        min_length=3,
        max_length=254,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        examples=["jane@example.com"],
    ),
]
Locale = Annotated[str, Meta(pattern=r"^[a-z]{2}(_[A-Z]{2})?$", examples=["en_US"])]
PersonName = Annotated[str, Meta(min_length=1, max_length=50)]


class CreateCustomerRequest(RequestBody):
    email: Email
    country: CountryCode | None = None
    currency: CurrencyCode | None = None
    locale: Locale | None = None
    first_name: PersonName | None = None
    last_name: PersonName | None = None
    external_id: ExternalId | None = None
    external_data: Properties | None = None


class UpdateCustomerRequest(RequestBody):
    email: Email | UnsetType = UNSET
    country: CountryCode | UnsetType | None = UNSET
    currency: CurrencyCode | UnsetType | None = UNSET
    locale: Locale | UnsetType | None = UNSET
    first_name: PersonName | UnsetType | None = UNSET
    last_name: PersonName | UnsetType | None = UNSET
    external_id: ExternalId | UnsetType | None = UNSET
    external_data: Properties | UnsetType | None = UNSET


class CustomerResource(ResponseBody):
    id: int
    email: str
    country: str | None
    currency: str | None
    locale: str | None
    first_name: str | None
    last_name: str | None
    external_id: str | None
    external_data: dict[str, Any] | None
    reg_date: int


class CustomerEnvelope(Envelope, kw_only=True):
    data: CustomerResource


class CustomerList(Envelope, kw_only=True):
    data: list[CustomerResource]
