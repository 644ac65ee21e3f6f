"""/3.1/payment_methods: the EMS payment methods of a publisher (CONTRACT §3)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.params import JSONBody

from ems_connector.http import params
from ems_connector.http.dependencies import ServicesDep
from ems_connector.http.errors import ENVELOPE_OPT, error_responses
from ems_connector.http.params import IdempotencyKey, PathId
from ems_connector.schemas.payment_methods import (
    CreatePaymentMethodRequest,
    PaymentMethodList,
    PaymentMethodResource,
)


class PaymentMethodController(Controller):
    path = "/payment_methods"
    tags = ["Payment methods"]

    @post(
        "/",
        status_code=201,
        summary="Create a payment method",
        responses=error_responses(400, 409),
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        data: JSONBody[CreatePaymentMethodRequest],
        idempotency_key: IdempotencyKey = None,
    ) -> PaymentMethodResource:
        return await services.payment_methods.create(params.context(request), data)

    @get(
        "/",
        summary="List payment methods",
        responses=error_responses(400, envelope="data"),
        opt={ENVELOPE_OPT: "data"},
    )
    async def list_methods(
        self, request: Request[Any, Any, Any], services: ServicesDep
    ) -> PaymentMethodList:
        return PaymentMethodList(data=await services.payment_methods.list(params.context(request)))

    @get(
        "/{payment_method_id:str}",
        summary="Get a payment method",
        responses=error_responses(400, 404),
    )
    async def get_method(
        self, request: Request[Any, Any, Any], services: ServicesDep, payment_method_id: PathId
    ) -> PaymentMethodResource:
        return await services.payment_methods.get(
            params.context(request), params.int_id(payment_method_id, "paymentMethodId")
        )
