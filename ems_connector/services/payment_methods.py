"""Payment methods: the EMS sources a connector reports from (CONTRACT §3)."""

from __future__ import annotations

from ems_connector.context import RequestContext
from ems_connector.errors import NotFound
from ems_connector.persistence import payment_methods as repo
from ems_connector.persistence.database import Database
from ems_connector.persistence.unit_of_work import UnitOfWorkFactory
from ems_connector.schemas.payment_methods import (
    CreatePaymentMethodRequest,
    PaymentMethodResource,
)
from prepared_sql import Row


def to_resource(row: Row) -> PaymentMethodResource:
    return PaymentMethodResource(
        id=row["id"],
        source=row["source"],
        method_name=row["method_name"],
        payment_gateway=row["payment_gateway"],
        is_external_payment=row["is_external_payment"],
        auto_terminate=row["auto_terminate"],
        grace_period_seconds=row["grace_period_seconds"],
    )


class PaymentMethodService:
    def __init__(self, db: Database, uow: UnitOfWorkFactory) -> None:
        self.db = db
        self.uow = uow

    async def create(
        self, ctx: RequestContext, req: CreatePaymentMethodRequest
    ) -> PaymentMethodResource:
        async with self.uow(ctx) as uow:
            row = await repo.insert_method(
                uow.conn,
                {
                    "publisher_id": ctx.publisher_id,
                    "source": req.source,
                    "method_name": req.method_name,
                    "payment_gateway": req.payment_gateway,
                    "is_external_payment": req.is_external_payment,
                    "auto_terminate": req.auto_terminate,
                    "grace_period_seconds": req.grace_period_seconds,
                    "created_at": uow.now,
                },
            )
            await uow.log(
                "createPaymentMethod", {"paymentMethodId": row["id"], "source": req.source}
            )
            return to_resource(row)

    async def get(self, ctx: RequestContext, method_id: int) -> PaymentMethodResource:
        async with self.db.read() as conn:
            row = await repo.get(conn, ctx.publisher_id, method_id)
        if row is None:
            raise NotFound(
                "PAYMENT_METHOD_NOT_FOUND", f"Payment method with id: {method_id} not found"
            )
        return to_resource(row)

    async def list(self, ctx: RequestContext) -> list[PaymentMethodResource]:
        async with self.db.read() as conn:
            return [to_resource(row) for row in await repo.list_all(conn, ctx.publisher_id)]
