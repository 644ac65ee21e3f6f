"""/3.1/reconciliations: compare a connector's store with the service, and correct (§10)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.params import JSONBody, QueryParameter

from ems_connector.http import params
from ems_connector.http.dependencies import ServicesDep
from ems_connector.http.errors import error_responses
from ems_connector.http.params import IdempotencyKey, PathId
from ems_connector.schemas.common import MAX_JSON_INT
from ems_connector.schemas.reconciliations import (
    CreateReconciliationRequest,
    Outcome,
    ReconciliationResource,
)


class ReconciliationController(Controller):
    path = "/reconciliations"
    tags = ["Reconciliation"]

    @post(
        "/",
        status_code=201,
        summary="Reconcile a connector's view of its store",
        description="Stores the report and answers at once with status `running`; the items "
        "are compared (and with `apply` corrected through the lifecycle) in the background. "
        "Poll GET /3.1/reconciliations/{id} until `status` is `done`. Bodies up to "
        "EMS_MAX_RECONCILIATION_BYTES are accepted here.",
        responses=error_responses(400, 422),
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        data: JSONBody[CreateReconciliationRequest],
        idempotency_key: IdempotencyKey = None,
    ) -> ReconciliationResource:
        return await services.reconciliations.create(params.context(request), data)

    @get(
        "/{reconciliation_id:str}",
        summary="Get a reconciliation report",
        description="Items in submission order, then the missing_there ones; `next` is the "
        "offset of the next page, or null.",
        responses=error_responses(400, 404),
    )
    async def get_reconciliation(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        reconciliation_id: PathId,
        outcome: Annotated[
            list[Outcome] | None, QueryParameter(name="outcome", description="Repeatable")
        ] = None,
        offset: Annotated[int, QueryParameter(name="offset", ge=0, le=MAX_JSON_INT)] = 0,
        limit: Annotated[int, QueryParameter(name="limit", ge=1, le=1000)] = 100,
    ) -> ReconciliationResource:
        return await services.reconciliations.get(
            params.context(request),
            params.uuid_id(reconciliation_id, "reconciliationId"),
            outcomes=outcome or (),
            offset=offset,
            limit=limit,
        )
