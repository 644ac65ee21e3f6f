"""The rule for naming a payment in an operation: captured, matching, and used only once."""

from __future__ import annotations

from typing import Any

from ems_connector.errors import Conflict, Unprocessable
from ems_connector.persistence import payments as repo
from ems_connector.persistence.unit_of_work import UnitOfWork
from prepared_sql import Row


async def usable_payment(
    uow: UnitOfWork,
    payment_id: int,
    *,
    customer_id: int,
    payment_method_id: int,
    offer_id: str | None = None,
    subscription_id: int | None = None,
    switch_id: str | None = None,
) -> Row:
    """The payment, if this operation may use it; else the contract's 422.

    `offer_id` is checked on create only (a renewal may be paid at a switched-to price);
    a payment that names a subscription pays only that one (`subscription_id` None, on
    create, means none exists yet); `switch_id` lets a switch use the payment already
    attached to it.
    """
    payment = await repo.get(uow.conn, uow.context.publisher_id, payment_id)
    if payment is None:
        raise Unprocessable("PAYMENT_NOT_FOUND", f"Payment with id: {payment_id} not found")
    if payment["status"] != "captured":
        raise Unprocessable(
            "PAYMENT_NOT_CAPTURED",
            f"Payment {payment_id} is {payment['status']}; only a captured payment can be used",
        )
    mismatched = []
    if payment["customer_id"] != customer_id:
        mismatched.append("customerId")
    if payment["payment_method_id"] != payment_method_id:
        mismatched.append("paymentMethodId")
    if offer_id is not None and payment["offer_id"] != offer_id:
        mismatched.append("offerId")
    if payment["subscription_id"] not in (None, subscription_id):
        mismatched.append("subscriptionId")
    if mismatched:
        raise Unprocessable(
            "PAYMENT_MISMATCH",
            f"Payment {payment_id} was made for another {', '.join(mismatched)}; "
            "use a payment of this customer, offer and payment method",
            {"mismatched": mismatched},
        )
    used_by = payment["used_by"]
    if used_by is not None and not (switch_id is not None and used_by.get("switchId") == switch_id):
        raise Unprocessable(
            "PAYMENT_ALREADY_USED",
            f"Payment {payment_id} was already used by {used_by['type']}; "
            "each payment pays for one operation",
            {"usedBy": used_by},
        )
    return payment


async def claim(uow: UnitOfWork, payment: Row, used_by: dict[str, Any]) -> None:
    """Mark the payment used by this operation, in the same transaction."""
    if payment["used_by"] == used_by:
        return
    if not await repo.mark_used(uow.conn, payment["id"], used_by, uow.now):
        # another process claimed it between our check and now (PostgreSQL only)
        raise Conflict(
            "CONCURRENT_MODIFICATION", f"Payment {payment['id']} was used meanwhile; retry"
        )
