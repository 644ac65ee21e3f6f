"""Webhook configuration, delivery log and sync status wire types (CONTRACT §9, §12)."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import UNSET, Meta, UnsetType

from ems_connector.schemas.common import (
    Envelope,
    PaymentMethodId,
    RequestBody,
    ResponseBody,
    Timestamp,
)

Url = Annotated[
    str,
    Meta(
        min_length=8,
        max_length=2048,
        pattern=r"^https?://[^\s/@]+(/[^\s]*)?$",
        examples=["https://example.com/hooks/cleeng"],
    ),
]
Topic = Annotated[str, Meta(min_length=1, max_length=64)]
Topics = Annotated[list[Topic], Meta(min_length=1, max_length=32)]
MaxAttempts = Annotated[int, Meta(ge=1, le=8)]


class Filters(RequestBody):
    payment_method_id: PaymentMethodId | None = None


class FiltersResource(ResponseBody):
    payment_method_id: int | None


class CreateEndpointRequest(RequestBody):
    url: Url
    topics: Topics
    filters: Filters | None = None
    description: Annotated[str, Meta(max_length=255)] | None = None
    enabled: bool = True
    max_attempts: MaxAttempts | None = None


class UpdateEndpointRequest(RequestBody):
    url: Url | UnsetType = UNSET
    topics: Topics | UnsetType = UNSET
    filters: Filters | UnsetType | None = UNSET
    description: Annotated[str, Meta(max_length=255)] | UnsetType | None = UNSET
    enabled: bool | UnsetType = UNSET
    max_attempts: MaxAttempts | UnsetType | None = UNSET


class EndpointResource(ResponseBody):
    id: str
    url: str
    description: str | None
    topics: list[str]
    filters: FiltersResource
    enabled: bool
    disabled_reason: str | None
    max_attempts: int | None
    origin: Literal["api", "subscription"]
    created_at: int
    updated_at: int


class EndpointWithSecret(EndpointResource, kw_only=True):
    """Shown once, at creation and at each rotation."""

    secret: str


class EndpointList(Envelope, kw_only=True):
    data: list[EndpointResource]


class RecoverRequest(RequestBody):
    since: Timestamp


class RecoverResult(ResponseBody):
    endpoint_id: str
    recovered: int


class ResyncResult(ResponseBody):
    endpoint_id: str
    enqueued: int


# ---- Cleeng's webhook_subscriptions ----


class HmacOptions(RequestBody, kw_only=True):
    hash_alg: Literal["SHA256"] = "SHA256"
    shared_secret: Annotated[str, Meta(min_length=16, max_length=255)]


class Verification(RequestBody):
    name: Literal["HMAC"]
    options: HmacOptions


class RetryPolicy(RequestBody):
    max_attempts: MaxAttempts


class WebhookSubscriptionItem(RequestBody):
    url: Url
    filters: Filters | None = None
    verification: Verification | None = None
    retry_policy: RetryPolicy | None = None


WebhookSubscriptionItems = Annotated[list[WebhookSubscriptionItem], Meta(max_length=20)]


class VerificationResource(ResponseBody):
    name: Literal["HMAC"]


class WebhookSubscriptionResource(ResponseBody):
    topic: str
    url: str
    filters: FiltersResource
    verification: VerificationResource | None


class WebhookSubscriptionList(Envelope, kw_only=True):
    data: list[WebhookSubscriptionResource]


# ---- deliveries and sync status ----


class AttemptResource(ResponseBody):
    attempted_at: int
    status_code: int | None
    latency_ms: float
    error: str | None
    response_excerpt: str | None


class DeliveryResource(ResponseBody):
    id: str
    event_id: str
    topic: str
    endpoint_id: str
    subscription_id: int | None
    subscription_version: int | None
    status: Literal["pending", "delivered", "failed"]
    attempt_count: int
    next_attempt_at: int | None
    delivered_at: int | None
    created_at: int
    attempts: list[AttemptResource]


class DeliveryPage(Envelope, kw_only=True):
    data: list[DeliveryResource]
    next: str | None


class EndpointSyncStatus(ResponseBody):
    endpoint_id: str
    url: str
    status: Literal["in_sync", "pending", "out_of_sync", "unreachable"]
    delivered_version: int | None
    last_attempt_at: int | None
    last_error: str | None


class SyncStatus(ResponseBody):
    subscription_id: int
    version: int
    endpoints: list[EndpointSyncStatus]
