"""/3.1/payments: EMS payments reported by connectors (CONTRACT §6)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, patch, post
from litestar.params import JSONBody, QueryParameter

from ems_connector.http import params
from ems_connector.http.dependencies import ServicesDep
from ems_connector.http.errors import ENVELOPE_OPT, error_responses
from ems_connector.http.params import IdempotencyKey, PathId
from ems_connector.schemas.common import MAX_JSON_INT
from ems_connector.schemas.payments import (
    CreatePaymentRequest,
    PaymentEnvelope,
    PaymentList,
    PaymentResource,
    UpdatePaymentRequest,
)


class PaymentController(Controller):
    path = "/payments"
    tags = ["Payments"]

    @post(
        "/",
        status_code=200,
        summary="Report an EMS payment (captured or rejected)",
        description="A repeat with the same externalPaymentId and body answers the stored "
        "payment; a different body is 422 DUPLICATE_PAYMENT. `paymentOperation` is "
        "`offer-switch` while the subscription has a switch in progress (the payment is "
        "attached to it), `recurring-payment` with a subscriptionId, else `initial-payment`.",
        responses=error_responses(400, 409, 422),
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        data: JSONBody[CreatePaymentRequest],
        idempotency_key: IdempotencyKey = None,
    ) -> PaymentEnvelope:
        payment, created = await services.payments.create(params.context(request), data)
        message = "Payment created successfully" if created else "Payment already reported"
        return PaymentEnvelope(payment=payment, message=message)

    @get(
        "/",
        summary="List payments of a customer or a subscription",
        responses=error_responses(400, envelope="data"),
        opt={ENVELOPE_OPT: "data"},
    )
    async def list_payments(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        customer_id: Annotated[
            int | None, QueryParameter(name="customerId", ge=1, le=MAX_JSON_INT)
        ] = None,
        subscription_id: Annotated[
            int | None, QueryParameter(name="subscriptionId", ge=1, le=MAX_JSON_INT)
        ] = None,
        offset: Annotated[int, QueryParameter(name="offset", ge=0, le=MAX_JSON_INT)] = 0,
        limit: Annotated[int, QueryParameter(name="limit", ge=1, le=100)] = 20,
    ) -> PaymentList:
        items = await services.payments.list(
            params.context(request),
            customer_id=customer_id,
            subscription_id=subscription_id,
            offset=offset,
            limit=limit,
        )
        return PaymentList(data=items)

    @get("/{payment_id:str}", summary="Get a payment", responses=error_responses(400, 404))
    async def get_payment(
        self, request: Request[Any, Any, Any], services: ServicesDep, payment_id: PathId
    ) -> PaymentResource:
        return await services.payments.get(
            params.context(request), params.int_id(payment_id, "paymentId")
        )

    @patch(
        "/{payment_id:str}",
        summary="Refund or reject a captured payment",
        responses=error_responses(400, 404, 409, 422),
    )
    async def update(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        payment_id: PathId,
        data: JSONBody[UpdatePaymentRequest],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[PaymentEnvelope]:
        payment = await services.payments.update(
            params.context(request), params.int_id(payment_id, "paymentId"), data
        )
        return Response(PaymentEnvelope(payment=payment, message="Payment updated"))
