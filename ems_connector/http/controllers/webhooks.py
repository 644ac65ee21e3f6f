"""/3.1/webhook_endpoints, /3.1/webhook_subscriptions, /3.1/webhook_deliveries and
/3.1/subscriptions/{id}/sync_status (CONTRACT §9)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Controller, Request, delete, get, patch, post, put
from litestar.params import JSONBody, PathParameter, QueryParameter

from ems_connector.http import params
from ems_connector.http.dependencies import ServicesDep
from ems_connector.http.errors import ENVELOPE_OPT, error_responses
from ems_connector.http.params import IdempotencyKey, PathId
from ems_connector.schemas.common import MAX_JSON_INT, EmptyBody
from ems_connector.schemas.webhooks import (
    CreateEndpointRequest,
    DeliveryPage,
    DeliveryResource,
    EndpointList,
    EndpointResource,
    EndpointWithSecret,
    RecoverRequest,
    RecoverResult,
    ResyncResult,
    SyncStatus,
    UpdateEndpointRequest,
    WebhookSubscriptionItems,
    WebhookSubscriptionList,
)


class WebhookEndpointController(Controller):
    path = "/webhook_endpoints"
    tags = ["Webhooks"]

    @post(
        "/",
        status_code=201,
        summary="Create a webhook endpoint",
        description="The generated `whsec_` secret is shown in this answer only.",
        responses=error_responses(400, 409),
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        data: JSONBody[CreateEndpointRequest],
        idempotency_key: IdempotencyKey = None,
    ) -> EndpointWithSecret:
        return await services.webhooks.create_endpoint(params.context(request), data)

    @get(
        "/",
        summary="List webhook endpoints",
        responses=error_responses(),
        opt={ENVELOPE_OPT: "data"},
    )
    async def list_endpoints(
        self, request: Request[Any, Any, Any], services: ServicesDep
    ) -> EndpointList:
        return EndpointList(data=await services.webhooks.list_endpoints(params.context(request)))

    @get(
        "/{endpoint_id:str}", summary="Get a webhook endpoint", responses=error_responses(400, 404)
    )
    async def get_endpoint(
        self, request: Request[Any, Any, Any], services: ServicesDep, endpoint_id: PathId
    ) -> EndpointResource:
        return await services.webhooks.get_endpoint(
            params.context(request), params.uuid_id(endpoint_id, "endpointId")
        )

    @patch(
        "/{endpoint_id:str}",
        summary="Change a webhook endpoint (url, topics, filters, enabled, maxAttempts)",
        responses=error_responses(400, 404, 409),
    )
    async def update(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        endpoint_id: PathId,
        data: JSONBody[UpdateEndpointRequest],
        idempotency_key: IdempotencyKey = None,
    ) -> EndpointResource:
        return await services.webhooks.update_endpoint(
            params.context(request), params.uuid_id(endpoint_id, "endpointId"), data
        )

    @delete(
        "/{endpoint_id:str}",
        status_code=204,
        summary="Delete a webhook endpoint; its undelivered events are dropped",
        responses=error_responses(400, 404, 409),
    )
    async def remove(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        endpoint_id: PathId,
        idempotency_key: IdempotencyKey = None,
    ) -> None:
        await services.webhooks.delete_endpoint(
            params.context(request), params.uuid_id(endpoint_id, "endpointId")
        )

    @post(
        "/{endpoint_id:str}/rotate_secret",
        status_code=200,
        summary="Rotate the secret; for 24 h deliveries carry signatures of both",
        responses=error_responses(400, 404, 409),
    )
    async def rotate_secret(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        endpoint_id: PathId,
        idempotency_key: IdempotencyKey = None,
    ) -> EndpointWithSecret:
        return await services.webhooks.rotate_secret(
            params.context(request), params.uuid_id(endpoint_id, "endpointId")
        )

    @post(
        "/{endpoint_id:str}/recover",
        status_code=200,
        summary="Send again every failed delivery of events since a time",
        responses=error_responses(400, 404, 409),
    )
    async def recover(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        endpoint_id: PathId,
        data: JSONBody[RecoverRequest],
        idempotency_key: IdempotencyKey = None,
    ) -> RecoverResult:
        return await services.webhooks.recover(
            params.context(request), params.uuid_id(endpoint_id, "endpointId"), data.since
        )

    @post(
        "/{endpoint_id:str}/resync",
        status_code=200,
        summary="Send every non-terminated subscription's current state (subscriptionSnapshot)",
        responses=error_responses(400, 404, 409),
    )
    async def resync(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        endpoint_id: PathId,
        idempotency_key: IdempotencyKey = None,
    ) -> ResyncResult:
        await params.optional_body(request, EmptyBody)
        return await services.webhooks.resync(
            params.context(request), params.uuid_id(endpoint_id, "endpointId")
        )


class WebhookSubscriptionController(Controller):
    path = "/webhook_subscriptions"
    tags = ["Webhooks"]
    opt = {ENVELOPE_OPT: "data"}

    @put(
        "/{topic:str}",
        summary="Replace the endpoints of one topic (Cleeng's webhook settings)",
        description="A `sharedSecret` signs deliveries instead of a generated secret and is "
        "never echoed.",
        responses=error_responses(400, 409, envelope="data"),
    )
    async def replace(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        topic: Annotated[str, PathParameter(description="A webhook topic")],
        data: JSONBody[WebhookSubscriptionItems],
        idempotency_key: IdempotencyKey = None,
    ) -> WebhookSubscriptionList:
        items = await services.webhooks.put_subscriptions(params.context(request), topic, data)
        return WebhookSubscriptionList(data=items)

    @get("/", summary="List the topic subscriptions", responses=error_responses(envelope="data"))
    async def list_subscriptions(
        self, request: Request[Any, Any, Any], services: ServicesDep
    ) -> WebhookSubscriptionList:
        items = await services.webhooks.list_subscriptions(params.context(request))
        return WebhookSubscriptionList(data=items)


class WebhookDeliveryController(Controller):
    path = "/webhook_deliveries"
    tags = ["Webhooks"]

    @get(
        "/",
        summary="The delivery log, each delivery with its attempts",
        responses=error_responses(400, envelope="data"),
        opt={ENVELOPE_OPT: "data"},
    )
    async def list_deliveries(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        endpoint_id: Annotated[str | None, QueryParameter(name="endpointId")] = None,
        status: Annotated[
            Literal["pending", "delivered", "failed"] | None, QueryParameter(name="status")
        ] = None,
        subscription_id: Annotated[
            int | None, QueryParameter(name="subscriptionId", ge=1, le=MAX_JSON_INT)
        ] = None,
        limit: Annotated[int, QueryParameter(name="limit", ge=1, le=100)] = 20,
        cursor: Annotated[str | None, QueryParameter(name="cursor", max_length=100)] = None,
    ) -> DeliveryPage:
        return await services.webhooks.deliveries(
            params.context(request),
            endpoint_id=params.uuid_id(endpoint_id, "endpointId") if endpoint_id else None,
            status=status,
            subscription_id=subscription_id,
            limit=limit,
            cursor=cursor,
        )

    @post(
        "/{delivery_id:str}/retry",
        status_code=200,
        summary="Send a delivery again now (same webhook-id)",
        responses=error_responses(400, 404, 409),
    )
    async def retry(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        delivery_id: PathId,
        idempotency_key: IdempotencyKey = None,
    ) -> DeliveryResource:
        await params.optional_body(request, EmptyBody)
        return await services.webhooks.retry_delivery(
            params.context(request), params.uuid_id(delivery_id, "deliveryId")
        )


class SyncStatusController(Controller):
    path = "/subscriptions"
    tags = ["Webhooks"]

    @get(
        "/{subscription_id:str}/sync_status",
        summary="Whether each webhook endpoint has this subscription's current version",
        responses=error_responses(400, 404),
    )
    async def sync_status(
        self, request: Request[Any, Any, Any], services: ServicesDep, subscription_id: PathId
    ) -> SyncStatus:
        return await services.webhooks.sync_status(
            params.context(request), params.int_id(subscription_id, "subscriptionId")
        )
