"""Operations log wire types (CONTRACT §8)."""

from __future__ import annotations

from typing import Any

from ems_connector.schemas.common import ResponseBody


class OperationResource(ResponseBody):
    operation_id: str
    type: str
    publisher_id: int
    customer_id: int | None
    subscription_id: int | None
    switch_id: str | None
    payment_id: int | None
    actor: str
    request_id: str | None
    created_at: int
    payload: dict[str, Any]


class OperationPage(ResponseBody):
    operations: list[OperationResource]
    next: str | None
