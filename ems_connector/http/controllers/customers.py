"""/3.1/customers: find-or-create by email, search, get and update (CONTRACT §3)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, patch, post
from litestar.params import JSONBody, QueryParameter

from ems_connector.http import params
from ems_connector.http.dependencies import ServicesDep
from ems_connector.http.errors import ENVELOPE_OPT, error_responses
from ems_connector.http.params import IdempotencyKey, PathId
from ems_connector.schemas.common import MAX_JSON_INT
from ems_connector.schemas.customers import (
    CreateCustomerRequest,
    CustomerEnvelope,
    CustomerList,
    UpdateCustomerRequest,
)


class CustomerController(Controller):
    path = "/customers"
    tags = ["Customers"]
    opt = {ENVELOPE_OPT: "data"}

    @post(
        "/",
        status_code=201,
        summary="Find or create a customer by email",
        description="201 with a new customer; 200 with the existing one of that email.",
        responses=error_responses(400, 409, 422, envelope="data"),
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        data: JSONBody[CreateCustomerRequest],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[CustomerEnvelope]:
        customer, created = await services.customers.find_or_create(params.context(request), data)
        message = "Customer created" if created else "Customer already exists"
        return Response(
            CustomerEnvelope(data=customer, message=message), status_code=201 if created else 200
        )

    @get(
        "/",
        summary="Find customers by email or externalId",
        responses=error_responses(400, envelope="data"),
    )
    async def search(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        email: Annotated[
            str | None, QueryParameter(name="email", min_length=1, max_length=254)
        ] = None,
        external_id: Annotated[
            str | None, QueryParameter(name="externalId", min_length=1, max_length=120)
        ] = None,
        offset: Annotated[int, QueryParameter(name="offset", ge=0, le=MAX_JSON_INT)] = 0,
        limit: Annotated[int, QueryParameter(name="limit", ge=1, le=100)] = 20,
    ) -> CustomerList:
        items = await services.customers.search(
            params.context(request),
            email=email,
            external_id=external_id,
            offset=offset,
            limit=limit,
        )
        return CustomerList(data=items)

    @get(
        "/{customer_id:str}",
        summary="Get a customer",
        responses=error_responses(400, 404, envelope="data"),
    )
    async def get_customer(
        self, request: Request[Any, Any, Any], services: ServicesDep, customer_id: PathId
    ) -> CustomerEnvelope:
        customer = await services.customers.get(
            params.context(request), params.int_id(customer_id, "customerId")
        )
        return CustomerEnvelope(data=customer)

    @patch(
        "/{customer_id:str}",
        summary="Update a customer",
        responses=error_responses(400, 404, 409, 422, envelope="data"),
    )
    async def update(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        customer_id: PathId,
        data: JSONBody[UpdateCustomerRequest],
        idempotency_key: IdempotencyKey = None,
    ) -> CustomerEnvelope:
        customer = await services.customers.update(
            params.context(request), params.int_id(customer_id, "customerId"), data
        )
        return CustomerEnvelope(data=customer, message="Customer updated")
