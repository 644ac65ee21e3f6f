"""Customers: find-or-create by email, lookup and update (CONTRACT §3)."""

from __future__ import annotations

from typing import Any

import msgspec

from ems_connector.context import RequestContext
from ems_connector.errors import NotFound, Unprocessable
from ems_connector.persistence import customers as repo
from ems_connector.persistence.database import Database
from ems_connector.persistence.unit_of_work import UnitOfWorkFactory
from ems_connector.schemas.customers import (
    CreateCustomerRequest,
    CustomerResource,
    UpdateCustomerRequest,
)
from prepared_sql import Row

# Request fields that are stored as columns of the same name.
_FIELDS = (
    "email",
    "country",
    "currency",
    "locale",
    "first_name",
    "last_name",
    "external_id",
    "external_data",
)


def to_resource(row: Row) -> CustomerResource:
    return CustomerResource(
        id=row["id"],
        email=row["email"],
        country=row["country"],
        currency=row["currency"],
        locale=row["locale"],
        first_name=row["first_name"],
        last_name=row["last_name"],
        external_id=row["external_id"],
        external_data=row["external_data"],
        reg_date=row["reg_date"],
    )


def customer_not_found(customer_id: int) -> NotFound:
    return NotFound("CUSTOMER_NOT_FOUND", f"Customer with id: {customer_id} not found")


def _email_taken(email: str) -> Unprocessable:
    return Unprocessable(
        "DUPLICATE_EMAIL", f"Another customer already has the email {email}; emails are unique"
    )


class CustomerService:
    def __init__(self, db: Database, uow: UnitOfWorkFactory) -> None:
        self.db = db
        self.uow = uow

    async def find_or_create(
        self, ctx: RequestContext, req: CreateCustomerRequest
    ) -> tuple[CustomerResource, bool]:
        """The customer with this email, created if new; the flag says whether it was."""
        async with self.uow(ctx) as uow:
            existing = await repo.find_by_email(uow.conn, ctx.publisher_id, req.email)
            if existing is not None:
                return to_resource(existing), False
            values: dict[str, Any] = {
                field: getattr(req, field) for field in _FIELDS if field != "email"
            }
            row = await repo.insert_customer(
                uow.conn,
                {
                    **values,
                    "publisher_id": ctx.publisher_id,
                    "email": req.email.strip(),
                    "email_normalized": repo.normalize_email(req.email),
                    "reg_date": uow.now,
                    "updated_at": uow.now,
                },
            )
            if row is None:  # another process created it between our lookup and insert
                raise _email_taken(req.email)
            await uow.log("createCustomer", {"email": row["email"]}, customer_id=row["id"])
            return to_resource(row), True

    async def get(self, ctx: RequestContext, customer_id: int) -> CustomerResource:
        async with self.db.read() as conn:
            row = await repo.get(conn, ctx.publisher_id, customer_id)
        if row is None:
            raise customer_not_found(customer_id)
        return to_resource(row)

    async def search(
        self,
        ctx: RequestContext,
        *,
        email: str | None,
        external_id: str | None,
        offset: int,
        limit: int,
    ) -> list[CustomerResource]:
        if email is None and external_id is None:
            return []
        async with self.db.read() as conn:
            rows = await repo.search(
                conn,
                ctx.publisher_id,
                email=email,
                external_id=external_id,
                offset=offset,
                limit=limit,
            )
        return [to_resource(row) for row in rows]

    async def update(
        self, ctx: RequestContext, customer_id: int, req: UpdateCustomerRequest
    ) -> CustomerResource:
        async with self.uow(ctx) as uow:
            row = await repo.get(uow.conn, ctx.publisher_id, customer_id)
            if row is None:
                raise customer_not_found(customer_id)
            changed: dict[str, Any] = {}
            for field in _FIELDS:
                value = getattr(req, field)
                if value is not msgspec.UNSET and row[field] != value:
                    changed[field] = value
            if "email" in changed:
                changed["email_normalized"] = repo.normalize_email(changed["email"])
                if changed["email_normalized"] == row["email_normalized"]:
                    del changed["email_normalized"]
            if not changed:
                return to_resource(row)
            updated = await repo.update_customer(
                uow.conn, ctx.publisher_id, customer_id, {**changed, "updated_at": uow.now}
            )
            if updated is None:
                raise _email_taken(changed["email"])
            await uow.log(
                "updateCustomer",
                {"fields": sorted(k for k in changed if k != "email_normalized")},
                customer_id=customer_id,
            )
            return to_resource(updated)
