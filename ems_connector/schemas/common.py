"""Shared wire types: base Structs, id and timestamp constraints, error bodies."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta


class RequestBody(msgspec.Struct, forbid_unknown_fields=True, rename="camel", kw_only=True):
    """Base of every request body: an unknown field is a 400, not silently dropped."""


class EmptyBody(RequestBody):
    """The body of actions that take no fields: empty, or `{}`."""


class ResponseBody(msgspec.Struct, rename="camel", kw_only=True):
    """Base of every response body."""


MAX_JSON_INT = 2**53 - 1

CustomerId = Annotated[
    int, Meta(ge=100_000_000, le=999_999_999, description="Customer id", examples=[100000001])
]
SubscriptionId = Annotated[
    int,
    Meta(ge=100_000_000, le=1_999_999_999, description="Subscription id", examples=[100000001]),
]
PaymentId = Annotated[int, Meta(ge=100_000_000, le=MAX_JSON_INT, description="Payment id")]
PaymentMethodId = Annotated[int, Meta(ge=1, le=MAX_JSON_INT, description="Payment method id")]
OfferId = Annotated[
    str,
    Meta(
        pattern=r"^[SPEAR][1-9]\d{8}_[A-Z]{2}$",
        description="Localized offer id",
        examples=["S123456789_US"],
    ),
]
Timestamp = Annotated[
    int, Meta(ge=1, le=99_999_999_999, description="Unix seconds", examples=[1767225600])
]
ExternalId = Annotated[str, Meta(min_length=1, max_length=120)]
CountryCode = Annotated[str, Meta(pattern=r"^[A-Z]{2}$", examples=["US"])]
CurrencyCode = Annotated[str, Meta(pattern=r"^[A-Z]{3}$", examples=["USD"])]
ShortText = Annotated[str, Meta(min_length=1, max_length=255)]
Properties = Annotated[
    dict[Annotated[str, Meta(min_length=1, max_length=255)], Any],
    Meta(max_length=100, description="Free-form key/value properties"),
]
StringProperties = Annotated[
    dict[
        Annotated[str, Meta(min_length=1, max_length=255)],
        Annotated[str, Meta(max_length=4096)],
    ],
    Meta(max_length=100, description="String-to-string properties"),
]


class FieldProblem(ResponseBody):
    field: str
    message: str


class ErrorBody(ResponseBody, kw_only=True):
    """Every error: `code` is stable and UPPER_SNAKE, `message` says what to fix."""

    success: bool = False
    code: str
    message: str
    details: dict[str, Any] | None = None


class SubscriptionErrorBody(ErrorBody):
    """Errors of PATCH /3.1/subscriptions/{id} carry Cleeng's `subscription: null`."""

    subscription: None = None


class DataErrorBody(ErrorBody):
    """Errors of list and customer endpoints carry Cleeng's `data: null`."""

    data: None = None


class Envelope(ResponseBody):
    success: bool = True
    message: str = ""
