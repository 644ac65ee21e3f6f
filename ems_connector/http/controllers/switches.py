"""/3.1/subscription_switches: upgrades and downgrades (CONTRACT §5)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Controller, Request, get, patch, post
from litestar.params import JSONBody, QueryParameter

from ems_connector.http import params
from ems_connector.http.dependencies import ServicesDep
from ems_connector.http.errors import ENVELOPE_OPT, error_responses
from ems_connector.http.params import IdempotencyKey, PathId
from ems_connector.schemas.common import MAX_JSON_INT
from ems_connector.schemas.switches import (
    CreateSwitchRequest,
    SwitchList,
    SwitchResource,
    UpdateSwitchRequest,
)


class SwitchController(Controller):
    path = "/subscription_switches"
    tags = ["Subscription switches"]

    @post(
        "/",
        status_code=200,
        summary="Request a switch of a subscription to another offer",
        description="The subscription gets `pendingSwitchId`. Refusals (422): VALIDATION_ERROR "
        "(subscription not active or stopped), SAME_TARGET_OFFER, OFFER_NOT_FOUND, "
        "OFFER_NOT_SUBSCRIPTION, OFFER_INACTIVE, TO_FREE_OFFER_NOT_ALLOWED, SWITCH_IN_PROGRESS, "
        "ALREADY_HAS_ACCESS.",
        responses=error_responses(400, 409, 422),
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        data: JSONBody[CreateSwitchRequest],
        idempotency_key: IdempotencyKey = None,
    ) -> SwitchResource:
        return await services.switches.request(params.context(request), data)

    @get(
        "/",
        summary="List switches of a customer or a subscription",
        responses=error_responses(400, envelope="data"),
        opt={ENVELOPE_OPT: "data"},
    )
    async def list_switches(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        customer_id: Annotated[
            int | None, QueryParameter(name="customerId", ge=1, le=MAX_JSON_INT)
        ] = None,
        subscription_id: Annotated[
            int | None, QueryParameter(name="subscriptionId", ge=1, le=MAX_JSON_INT)
        ] = None,
        status: Annotated[
            list[Literal["inprogress", "finished", "cancelled"]] | None,
            QueryParameter(name="status", description="Repeatable"),
        ] = None,
        offset: Annotated[int, QueryParameter(name="offset", ge=0, le=MAX_JSON_INT)] = 0,
        limit: Annotated[int, QueryParameter(name="limit", ge=1, le=100)] = 20,
    ) -> SwitchList:
        items = await services.switches.list(
            params.context(request),
            customer_id=customer_id,
            subscription_id=subscription_id,
            statuses=status or (),
            offset=offset,
            limit=limit,
        )
        return SwitchList(data=items)

    @get("/{switch_id:str}", summary="Get a switch", responses=error_responses(400, 404))
    async def get_switch(
        self, request: Request[Any, Any, Any], services: ServicesDep, switch_id: PathId
    ) -> SwitchResource:
        return await services.switches.get(
            params.context(request), params.uuid_id(switch_id, "switchId")
        )

    @patch(
        "/{switch_id:str}",
        summary="Finish or cancel a switch in progress",
        description="`finished` applies an IMMEDIATE_WITHOUT_PRORATION switch at once and a "
        "DEFERRED one at the next renew; neither changes status or expiry. Finished and "
        "cancelled are final (422 INVALID_TRANSITION).",
        responses=error_responses(400, 404, 409, 422),
    )
    async def update(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        switch_id: PathId,
        data: JSONBody[UpdateSwitchRequest],
        idempotency_key: IdempotencyKey = None,
    ) -> SwitchResource:
        return await services.switches.update(
            params.context(request), params.uuid_id(switch_id, "switchId"), data
        )
