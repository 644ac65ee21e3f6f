"""Reconciliation wire types (CONTRACT §10, §12)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from ems_connector.schemas.common import (
    ExternalId,
    OfferId,
    PaymentMethodId,
    RequestBody,
    ResponseBody,
    Timestamp,
)

Outcome = Literal["in_sync", "minor_drift", "out_of_sync", "missing_here", "missing_there"]
OUTCOMES: tuple[Outcome, ...] = (
    "in_sync",
    "minor_drift",
    "out_of_sync",
    "missing_here",
    "missing_there",
)
Email = Annotated[str, Meta(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]


class StoreItem(RequestBody):
    """A subscription as the connector's store sees it."""

    external_id: ExternalId
    status: Literal["active", "stopped", "cancelled", "terminated"]
    expires_at: Timestamp
    offer_id: OfferId
    customer_email: Email | None = None


class CreateReconciliationRequest(RequestBody):
    payment_method_id: PaymentMethodId
    items: Annotated[list[StoreItem], Meta(max_length=1_000_000)]
    tolerance_seconds: Annotated[int, Meta(ge=0, le=10**9)] = 3600
    apply: bool = False
    terminate_missing: bool = False


class Progress(ResponseBody):
    total: int
    processed: int


class Counts(msgspec.Struct, kw_only=True):
    """Per outcome; the wire names are the outcomes themselves (snake_case)."""

    in_sync: int = 0
    minor_drift: int = 0
    out_of_sync: int = 0
    missing_here: int = 0
    missing_there: int = 0


class ItemAction(ResponseBody):
    result: Literal["applied", "failed", "not_applied"]
    operations: list[str]
    code: str | None = None
    message: str | None = None


class ReportItem(ResponseBody):
    external_id: str
    outcome: Outcome
    subscription_id: int | None
    differences: dict[str, Any]
    action: ItemAction | None


class ReconciliationResource(ResponseBody):
    id: str
    status: Literal["running", "done"]
    payment_method_id: int
    tolerance_seconds: int
    apply: bool
    terminate_missing: bool
    created_at: int
    finished_at: int | None
    progress: Progress
    counts: Counts
    items: list[ReportItem]
    next: int | None
