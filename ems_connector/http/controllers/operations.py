"""/3.1/operations: the operations log, oldest first, with a cursor (CONTRACT §8)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.params import Parameter

from ems_connector.http import params
from ems_connector.http.errors import error_responses
from ems_connector.schemas.common import MAX_JSON_INT
from ems_connector.schemas.operations import OperationPage
from ems_connector.services.container import Services


class OperationController(Controller):
    path = "/operations"
    tags = ["Operations"]

    @get("/", summary="Read the operations log", responses=error_responses(400))
    async def list_operations(
        self,
        request: Request[Any, Any, Any],
        services: Services,
        subscription_id: Annotated[
            int | None, Parameter(query="subscriptionId", ge=1, le=MAX_JSON_INT)
        ] = None,
        customer_id: Annotated[
            int | None, Parameter(query="customerId", ge=1, le=MAX_JSON_INT)
        ] = None,
        type_: Annotated[
            list[Annotated[str, Parameter(max_length=40)]] | None,
            Parameter(query="type", description="Repeatable"),
        ] = None,
        since: Annotated[
            int | None, Parameter(query="since", ge=0, le=99_999_999_999, description="Unix s")
        ] = None,
        limit: Annotated[int, Parameter(query="limit", ge=1, le=1000)] = 100,
        cursor: Annotated[str | None, Parameter(query="cursor", max_length=100)] = None,
    ) -> OperationPage:
        return await services.operations.page(
            params.context(request),
            subscription_id=subscription_id,
            customer_id=customer_id,
            types=type_ or (),
            since=since,
            limit=limit,
            cursor=cursor,
        )
