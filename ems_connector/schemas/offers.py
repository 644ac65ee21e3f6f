"""Offer wire types (CONTRACT §3)."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import UNSET, Meta, UnsetType

from ems_connector.schemas.common import (
    CurrencyCode,
    Envelope,
    OfferId,
    RequestBody,
    ResponseBody,
    StringProperties,
)

PeriodUnit = Literal["day", "week", "month", "year"]
Channel = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$", examples=["sport-1"])]
Channels = Annotated[list[Channel], Meta(max_length=200)]
Title = Annotated[str, Meta(min_length=1, max_length=255)]
AppStoreId = Annotated[str, Meta(min_length=1, max_length=255)]


class Price(RequestBody):
    amount: Annotated[float, Meta(ge=0, le=1_000_000_000)]
    currency: CurrencyCode


class BillingCycle(RequestBody):
    period_unit: PeriodUnit
    amount: Annotated[int, Meta(ge=1, le=1000)]


class FreeTrial(RequestBody):
    type: Literal["day", "period"]
    duration: Annotated[int, Meta(ge=0, le=10_000)]


class AppStoreProductIds(RequestBody):
    apple: AppStoreId | None = None
    android: AppStoreId | None = None
    amazon: AppStoreId | None = None
    roku: AppStoreId | None = None
    samsung: AppStoreId | None = None
    vizio: AppStoreId | None = None


class CreateOfferRequest(RequestBody):
    offer_id: OfferId
    title: Title
    price: Price
    billing_cycle: BillingCycle | None = None
    active: bool = True
    free_trial: FreeTrial | None = None
    app_store_product_ids: AppStoreProductIds | None = None
    external_properties: StringProperties | None = None
    channels: Channels | None = None
    free: bool = False


class UpdateOfferRequest(RequestBody):
    title: Title | UnsetType = UNSET
    price: Price | UnsetType = UNSET
    billing_cycle: BillingCycle | UnsetType = UNSET
    active: bool | UnsetType = UNSET
    free_trial: FreeTrial | UnsetType | None = UNSET
    app_store_product_ids: AppStoreProductIds | UnsetType = UNSET
    external_properties: StringProperties | UnsetType = UNSET
    channels: Channels | UnsetType = UNSET
    free: bool | UnsetType = UNSET


class OfferResource(ResponseBody):
    offer_id: str
    title: str
    active: bool
    type: Literal["subscription", "pass", "live", "vod"]
    price: Price
    billing_cycle: BillingCycle
    free_trial: FreeTrial | None
    app_store_product_ids: AppStoreProductIds
    external_properties: dict[str, str]
    channels: list[str]
    free: bool
    version: int
    created_at: int
    updated_at: int


class OfferList(Envelope, kw_only=True):
    data: list[OfferResource]
