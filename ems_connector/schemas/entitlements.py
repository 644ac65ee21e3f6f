"""Entitlement and channel access wire types (CONTRACT §7)."""

from __future__ import annotations

from typing import Literal

from ems_connector.schemas.common import Envelope, ResponseBody

EntitlementStatus = Literal["active", "stopped", "terminated"]


class EntitlementResource(ResponseBody):
    offer_id: str
    customer_id: int
    access_granted: bool
    expires_at: int | None
    subscription_id: int | None
    # the subscription's status; `active` for a free offer's grant without one
    status: EntitlementStatus | None


class EntitlementList(Envelope, kw_only=True):
    data: list[EntitlementResource]


class AccessResource(ResponseBody):
    access_granted: bool
    offer_ids: list[str]
