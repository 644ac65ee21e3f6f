"""/3.1/offers: the catalogue (CONTRACT §3)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, patch, post
from litestar.params import JSONBody

from ems_connector.http import params
from ems_connector.http.dependencies import ServicesDep
from ems_connector.http.errors import ENVELOPE_OPT, error_responses
from ems_connector.http.params import IdempotencyKey, IfMatch, PathId
from ems_connector.schemas.common import EmptyBody
from ems_connector.schemas.offers import (
    CreateOfferRequest,
    OfferList,
    OfferResource,
    UpdateOfferRequest,
)
from ems_connector.services.container import Services


def _with_etag(offer: OfferResource, status: int = 200) -> Response[OfferResource]:
    return Response(offer, status_code=status, headers=params.etag(offer.version))


async def _set_active(
    request: Request[Any, Any, Any],
    services: Services,
    offer_id: str,
    if_match: str | None,
    *,
    active: bool,
) -> Response[OfferResource]:
    await params.optional_body(request, EmptyBody)  # these actions take no fields
    offer = await services.offers.set_active(
        params.context(request), params.offer_id(offer_id), active, params.if_match(if_match)
    )
    return _with_etag(offer)


class OfferController(Controller):
    path = "/offers"
    tags = ["Offers"]

    @post("/", status_code=201, summary="Create an offer", responses=error_responses(400, 409, 422))
    async def create(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        data: JSONBody[CreateOfferRequest],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[OfferResource]:
        offer = await services.offers.create(params.context(request), data)
        return _with_etag(offer, 201)

    @get(
        "/",
        summary="List offers",
        responses=error_responses(400, envelope="data"),
        opt={ENVELOPE_OPT: "data"},
    )
    async def list_offers(
        self, request: Request[Any, Any, Any], services: ServicesDep
    ) -> OfferList:
        return OfferList(data=await services.offers.list(params.context(request)))

    @get("/{offer_id:str}", summary="Get an offer", responses=error_responses(400, 404))
    async def get_offer(
        self, request: Request[Any, Any, Any], services: ServicesDep, offer_id: PathId
    ) -> Response[OfferResource]:
        offer = await services.offers.get(params.context(request), params.offer_id(offer_id))
        return _with_etag(offer)

    @patch(
        "/{offer_id:str}",
        summary="Update an offer",
        responses=error_responses(400, 404, 409, 412, 422),
    )
    async def update(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        offer_id: PathId,
        data: JSONBody[UpdateOfferRequest],
        if_match: IfMatch = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[OfferResource]:
        offer = await services.offers.update(
            params.context(request), params.offer_id(offer_id), data, params.if_match(if_match)
        )
        return _with_etag(offer)

    @post(
        "/{offer_id:str}/activate",
        status_code=200,
        summary="Activate an offer",
        description="Takes no body; an empty body or `{}` is accepted.",
        responses=error_responses(400, 404, 409, 412),
    )
    async def activate(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        offer_id: PathId,
        if_match: IfMatch = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[OfferResource]:
        return await _set_active(request, services, offer_id, if_match, active=True)

    @post(
        "/{offer_id:str}/deactivate",
        status_code=200,
        summary="Deactivate an offer",
        description="Takes no body; an empty body or `{}` is accepted.",
        responses=error_responses(400, 404, 409, 412),
    )
    async def deactivate(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        offer_id: PathId,
        if_match: IfMatch = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[OfferResource]:
        return await _set_active(request, services, offer_id, if_match, active=False)
