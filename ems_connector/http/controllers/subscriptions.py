"""/3.1/subscriptions: create, read, list, PATCH and the lifecycle actions (CONTRACT §4)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, get, patch, post
from litestar.params import JSONBody, QueryParameter

from ems_connector.http import params
from ems_connector.http.dependencies import ServicesDep
from ems_connector.http.errors import ENVELOPE_OPT, error_responses
from ems_connector.http.params import IdempotencyKey, IfMatch, PathId
from ems_connector.schemas.common import MAX_JSON_INT, EmptyBody
from ems_connector.schemas.subscriptions import (
    CancelRequest,
    CreateSubscriptionRequest,
    RenewRequest,
    ReviveRequest,
    SubscriptionList,
    SubscriptionResource,
    TerminateRequest,
    TransferRequest,
    UpdateSubscriptionRequest,
    UpdateSubscriptionResponse,
)


def _with_etag(resource: SubscriptionResource, status: int = 200) -> Response[SubscriptionResource]:
    return Response(resource, status_code=status, headers=params.etag(resource.version))


class SubscriptionController(Controller):
    path = "/subscriptions"
    tags = ["Subscriptions"]

    @post(
        "/",
        status_code=201,
        summary="Create a subscription",
        responses=error_responses(400, 409, 422),
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        data: JSONBody[CreateSubscriptionRequest],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[SubscriptionResource]:
        resource = await services.subscriptions.create(params.context(request), data)
        return _with_etag(resource, 201)

    @get(
        "/",
        summary="List subscriptions",
        description="Needs customerId, paymentMethodId or externalId; without any the list "
        "is empty. offerId filters only together with customerId.",
        responses=error_responses(400, envelope="data"),
        opt={ENVELOPE_OPT: "data"},
    )
    async def list_subscriptions(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        customer_id: Annotated[
            int | None, QueryParameter(name="customerId", ge=1, le=MAX_JSON_INT)
        ] = None,
        offer_id: Annotated[
            str | None, QueryParameter(name="offerId", pattern=r"^[SPEAR][1-9]\d{8}_[A-Z]{2}$")
        ] = None,
        payment_method_id: Annotated[
            int | None, QueryParameter(name="paymentMethodId", ge=1, le=MAX_JSON_INT)
        ] = None,
        external_id: Annotated[
            str | None, QueryParameter(name="externalId", min_length=1, max_length=120)
        ] = None,
        status: Annotated[
            list[Literal["active", "stopped", "terminated"]] | None,
            QueryParameter(name="status", description="Repeatable"),
        ] = None,
        offset: Annotated[int, QueryParameter(name="offset", ge=0, le=MAX_JSON_INT)] = 0,
        limit: Annotated[int, QueryParameter(name="limit", ge=1, le=100)] = 20,
    ) -> SubscriptionList:
        items = await services.subscriptions.list(
            params.context(request),
            customer_id=customer_id,
            offer_id=offer_id,
            payment_method_id=payment_method_id,
            external_id=external_id,
            statuses=status or (),
            offset=offset,
            limit=limit,
        )
        return SubscriptionList(data=items)

    @get(
        "/{subscription_id:str}",
        summary="Get a subscription",
        responses=error_responses(400, 404),
    )
    async def get_subscription(
        self, request: Request[Any, Any, Any], services: ServicesDep, subscription_id: PathId
    ) -> Response[SubscriptionResource]:
        resource = await services.subscriptions.get(
            params.context(request), params.int_id(subscription_id, "subscriptionId")
        )
        return _with_etag(resource)

    @patch(
        "/{subscription_id:str}",
        summary="Update a subscription (declarative)",
        description="A status equal to the current one is a no-op; any PATCH of a terminated "
        "subscription is refused.",
        responses=error_responses(400, 404, 409, 412, 422, envelope="subscription"),
        opt={ENVELOPE_OPT: "subscription"},
    )
    async def update(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        subscription_id: PathId,
        data: JSONBody[UpdateSubscriptionRequest],
        if_match: IfMatch = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[UpdateSubscriptionResponse]:
        resource = await services.subscriptions.update(
            params.context(request),
            params.int_id(subscription_id, "subscriptionId"),
            data,
            params.if_match(if_match),
        )
        return Response(
            UpdateSubscriptionResponse(subscription=resource, message="Subscription updated"),
            headers=params.etag(resource.version),
        )

    @post(
        "/{subscription_id:str}/cancel",
        status_code=200,
        summary="Cancel: active -> stopped",
        responses=error_responses(400, 404, 409, 412, 422),
    )
    async def cancel(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        subscription_id: PathId,
        data: JSONBody[CancelRequest],
        if_match: IfMatch = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[SubscriptionResource]:
        resource = await services.subscriptions.cancel(
            params.context(request),
            params.int_id(subscription_id, "subscriptionId"),
            data,
            params.if_match(if_match),
        )
        return _with_etag(resource)

    @post(
        "/{subscription_id:str}/activate",
        status_code=200,
        summary="Activate: stopped -> active",
        description="Takes no body; an empty body or `{}` is accepted.",
        responses=error_responses(400, 404, 409, 412, 422),
    )
    async def activate(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        subscription_id: PathId,
        if_match: IfMatch = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[SubscriptionResource]:
        await params.optional_body(request, EmptyBody)
        resource = await services.subscriptions.activate(
            params.context(request),
            params.int_id(subscription_id, "subscriptionId"),
            params.if_match(if_match),
        )
        return _with_etag(resource)

    @post(
        "/{subscription_id:str}/terminate",
        status_code=200,
        summary="Terminate: active or stopped -> terminated",
        responses=error_responses(400, 404, 409, 412, 422),
    )
    async def terminate(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        subscription_id: PathId,
        data: JSONBody[TerminateRequest],
        if_match: IfMatch = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[SubscriptionResource]:
        resource = await services.subscriptions.terminate(
            params.context(request),
            params.int_id(subscription_id, "subscriptionId"),
            data,
            params.if_match(if_match),
        )
        return _with_etag(resource)

    @post(
        "/{subscription_id:str}/renew",
        status_code=200,
        summary="Renew: extend the expiry; a stopped subscription becomes active",
        responses=error_responses(400, 404, 409, 412, 422),
    )
    async def renew(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        subscription_id: PathId,
        if_match: IfMatch = None,
        idempotency_key: IdempotencyKey = None,
        data: JSONBody[RenewRequest | None] = None,
    ) -> Response[SubscriptionResource]:
        resource = await services.subscriptions.renew(
            params.context(request),
            params.int_id(subscription_id, "subscriptionId"),
            data or RenewRequest(),
            params.if_match(if_match),
        )
        return _with_etag(resource)

    @post(
        "/{subscription_id:str}/transfer",
        status_code=200,
        summary="Transfer to another customer",
        description="The source is terminated and answered, with `replacedBy` naming the new "
        "subscription of the target customer.",
        responses=error_responses(400, 404, 409, 412, 422),
    )
    async def transfer(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        subscription_id: PathId,
        data: JSONBody[TransferRequest],
        if_match: IfMatch = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[SubscriptionResource]:
        resource = await services.subscriptions.transfer(
            params.context(request),
            params.int_id(subscription_id, "subscriptionId"),
            data,
            params.if_match(if_match),
        )
        return _with_etag(resource)

    @post(
        "/{subscription_id:str}/revive",
        status_code=200,
        summary="Revive a terminated subscription as a new active copy",
        description="Answers the old subscription, with `replacedBy` naming the new one.",
        responses=error_responses(400, 404, 409, 412, 422),
    )
    async def revive(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        subscription_id: PathId,
        data: JSONBody[ReviveRequest],
        if_match: IfMatch = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[SubscriptionResource]:
        resource = await services.subscriptions.revive(
            params.context(request),
            params.int_id(subscription_id, "subscriptionId"),
            data,
            params.if_match(if_match),
        )
        return _with_etag(resource)
