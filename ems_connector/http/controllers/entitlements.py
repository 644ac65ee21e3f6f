"""/3.1/entitlements and /3.1/access: what a customer may watch (CONTRACT §7)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from litestar import Controller, Request, get
from litestar.params import PathParameter, QueryParameter

from ems_connector.errors import BadRequest
from ems_connector.http import params
from ems_connector.http.dependencies import ServicesDep
from ems_connector.http.errors import ENVELOPE_OPT, error_responses
from ems_connector.http.params import PathId
from ems_connector.schemas.common import MAX_JSON_INT
from ems_connector.schemas.entitlements import (
    AccessResource,
    EntitlementList,
    EntitlementResource,
)
from ems_connector.services.entitlements import DEFAULT_STATUSES

# the offers' channel pattern (schemas/offers.py): anything else can never be granted
_CHANNEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
# the list filter's words -> statuses; `cancelled` is Cleeng's older word for stopped
_STATUS_FILTER = {
    "active": ("active",),
    "stopped": ("stopped",),
    "cancelled": ("stopped",),
    "terminated": ("terminated",),
    "all": ("active", "stopped", "terminated"),
}


class EntitlementController(Controller):
    path = "/entitlements"
    tags = ["Entitlements"]

    @get(
        "/",
        summary="List a customer's entitlements",
        description="One item per subscription in the status filter (by subscriptionId), then "
        "one per free offer when the filter includes active. Needs customerId or "
        "customerEmail; without either the list is empty.",
        responses=error_responses(400, envelope="data"),
        opt={ENVELOPE_OPT: "data"},
    )
    async def list_entitlements(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        customer_id: Annotated[
            int | None, QueryParameter(name="customerId", ge=1, le=MAX_JSON_INT)
        ] = None,
        customer_email: Annotated[
            str | None, QueryParameter(name="customerEmail", min_length=1, max_length=254)
        ] = None,
        status: Annotated[
            list[Literal["active", "stopped", "cancelled", "terminated", "all"]] | None,
            QueryParameter(
                name="status",
                description="Repeatable; `cancelled` means stopped. Default: active and stopped",
            ),
        ] = None,
        offset: Annotated[int, QueryParameter(name="offset", ge=0, le=MAX_JSON_INT)] = 0,
        limit: Annotated[int, QueryParameter(name="limit", ge=1, le=100)] = 20,
    ) -> EntitlementList:
        statuses = (
            sorted({s for word in status for s in _STATUS_FILTER[word]})
            if status
            else list(DEFAULT_STATUSES)
        )
        items = await services.entitlements.list(
            params.context(request),
            customer_id=customer_id,
            customer_email=customer_email,
            statuses=statuses,
            offset=offset,
            limit=limit,
        )
        return EntitlementList(data=items)

    @get(
        "/customer_id/{customer_id:str}/offer_id/{offer_id:str}",
        summary="Get a customer's entitlement to an offer",
        description="Access follows status (active or stopped), not expiresAt; among several "
        "subscriptions the latest dateTo wins; a free offer entitles every customer.",
        responses=error_responses(400, 404),
    )
    async def get_entitlement(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        customer_id: PathId,
        offer_id: PathId,
    ) -> EntitlementResource:
        return await services.entitlements.get(
            params.context(request),
            params.int_id(customer_id, "customerId"),
            params.offer_id(offer_id),
        )


class AccessController(Controller):
    path = "/access"
    tags = ["Entitlements"]

    @get(
        "/customer_id/{customer_id:str}/channel/{channel:str}",
        summary="May this customer watch this channel",
        description="Granted by the channels of the offers of the customer's active and "
        "stopped subscriptions and of free offers; `offerIds` names each granting offer. "
        "Answered from memory, never from state older than the last acknowledged change.",
        responses=error_responses(400, 404),
    )
    async def check_access(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        customer_id: PathId,
        channel: Annotated[str, PathParameter(description="A channel of an offer's `channels`")],
    ) -> AccessResource:
        if not _CHANNEL.match(channel):
            raise BadRequest(
                "INVALID_CHANNEL",
                f"channel must be 1-64 letters, digits or ._:- starting with a letter or "
                f"digit, like sport-1; got {channel!r}",
                {"fields": [{"field": "channel", "message": f"must match {_CHANNEL.pattern}"}]},
            )
        return await services.entitlements.access(
            params.context(request), params.int_id(customer_id, "customerId"), channel
        )
