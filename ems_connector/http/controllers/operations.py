"""/3.1/operations: the operations log, oldest first, with a cursor (CONTRACT §8)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.params import QueryParameter

from ems_connector.http import params
from ems_connector.http.dependencies import ServicesDep
from ems_connector.http.errors import error_responses
from ems_connector.schemas.common import MAX_JSON_INT
from ems_connector.schemas.operations import OperationPage


class OperationController(Controller):
    path = "/operations"
    tags = ["Operations"]

    @get("/", summary="Read the operations log", responses=error_responses(400))
    async def list_operations(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        subscription_id: Annotated[
            int | None, QueryParameter(name="subscriptionId", ge=1, le=MAX_JSON_INT)
        ] = None,
        customer_id: Annotated[
            int | None, QueryParameter(name="customerId", ge=1, le=MAX_JSON_INT)
        ] = None,
        type_: Annotated[
            list[str] | None,
            QueryParameter(name="type", description="Repeatable"),
        ] = None,
        since: Annotated[
            int | None, QueryParameter(name="since", ge=0, le=99_999_999_999, description="Unix s")
        ] = None,
        limit: Annotated[int, QueryParameter(name="limit", ge=1, le=1000)] = 100,
        cursor: Annotated[str | None, QueryParameter(name="cursor", max_length=100)] = None,
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
